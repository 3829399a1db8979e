/* Wake-up latency between two processes over pipes (scripts/bench/vcpu-wakeups).
 *
 *   wakeups N GAP_US PARENT_CPU CHILD_CPU
 *
 * The parent, on PARENT_CPU, writes a byte the child (on CHILD_CPU) echoes back, N
 * times, sleeping GAP_US between round trips (so the child's CPU is left to whatever
 * else runs there, as a student's shell is between keystrokes). Prints the round
 * trip's p50, p99, p99.9 and maximum in microseconds, on one line. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) {
        perror("sched_setaffinity");
        exit(2);
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s N GAP_US PARENT_CPU CHILD_CPU\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), gap = atoi(argv[2]);
    int to_child[2], to_parent[2];
    char c = 'x';
    if (n < 1 || pipe(to_child) != 0 || pipe(to_parent) != 0) {
        perror("pipe");
        return 2;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 2;
    }
    if (child == 0) {
        pin(atoi(argv[4]));
        close(to_child[1]);
        close(to_parent[0]);
        while (read(to_child[0], &c, 1) == 1)
            if (write(to_parent[1], &c, 1) != 1) _exit(1);
        _exit(0);
    }
    pin(atoi(argv[3]));
    close(to_child[0]);
    close(to_parent[1]);
    double *rtt = malloc(n * sizeof *rtt);
    if (!rtt) return 2;
    usleep(100000); /* the child is on its CPU */
    for (int i = 0; i < n; i++) {
        double t = now_us();
        if (write(to_child[1], &c, 1) != 1 || read(to_parent[0], &c, 1) != 1) {
            perror("round trip");
            return 1;
        }
        rtt[i] = now_us() - t;
        if (gap > 0) usleep(gap);
    }
    close(to_child[1]);
    qsort(rtt, n, sizeof *rtt, by_value);
    printf("%.0f %.0f %.0f %.0f\n", rtt[n / 2], rtt[(int)(n * 0.99)], rtt[(int)(n * 0.999)], rtt[n - 1]);
    return 0;
}
