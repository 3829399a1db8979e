//! Docker's default seccomp profile, written out as tables: an allow-list of system
//! calls, a few calls allowed only with certain arguments, and calls allowed only when
//! the container holds a capability (or runs on an architecture).
//!
//! The behaviour follows moby's `profiles/seccomp/default.json` (Docker 28): every
//! call not listed fails with EPERM; `clone3` fails with ENOSYS without CAP_SYS_ADMIN
//! (so libc falls back to `clone`, whose namespace flags are then checked);
//! `personality` only takes the harmless personas; `socket` refuses AF_VSOCK.
//! Left out, as Docker leaves them out: `keyctl`, `add_key`, `request_key` (the kernel
//! keyring is not namespaced), `unshare`/`setns`/`mount` (without CAP_SYS_ADMIN),
//! `open_by_handle_at` (without CAP_DAC_READ_SEARCH: the "shocker" escape),
//! `userfaultfd`, `kexec_*`, `swapon`/`swapoff`, `reboot`, module loading, `ptrace` on
//! kernels before 4.8, `uselib`, `nfsservctl`, `vm86`, `lookup_dcookie`, `bpf` and
//! `perf_event_open` without their capabilities.

use super::{Action, ArgCondition, Filter, Op, Profile, Rule};

/// Allowed for every container.
const ALWAYS: &[&str] = &[
    // files and directories
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd", "chmod", "fchmod", "fchmodat",
    "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "creat", "open", "openat",
    "openat2", "close", "close_range", "dup", "dup2", "dup3", "link", "linkat", "unlink", "unlinkat",
    "symlink", "symlinkat", "readlink", "readlinkat", "rename", "renameat", "renameat2", "mkdir",
    "mkdirat", "rmdir", "mknod", "mknodat", "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64",
    "fstatat64", "newfstatat", "statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "truncate",
    "truncate64", "ftruncate", "ftruncate64", "fallocate", "getdents", "getdents64", "umask", "utime",
    "utimes", "utimensat", "utimensat_time64", "futimesat", "flock", "fcntl", "fcntl64", "fsync",
    "fdatasync", "sync", "syncfs", "sync_file_range", "fadvise64", "fadvise64_64", "readahead",
    "copy_file_range", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "fanotify_mark",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "name_to_handle_at",
    // extended attributes
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    // reading and writing
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev",
    "pwritev2", "lseek", "_llseek", "ioctl",
    // asynchronous and polled I/O
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_uring_setup", "io_uring_enter", "io_uring_register", "poll", "ppoll",
    "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64", "pipe", "pipe2",
    "ioprio_get", "ioprio_set",
    // memory
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock",
    "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages", "membarrier", "memfd_create",
    "memfd_secret", "pkey_alloc", "pkey_free", "pkey_mprotect", "process_mrelease",
    // processes, threads and scheduling
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid", "kill",
    "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid", "getpgid",
    "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list",
    "rseq", "futex", "futex_time64", "futex_waitv", "prctl", "getpriority", "setpriority",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
    "sched_rr_get_interval_time64", "getcpu", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64",
    "getrusage", "times", "get_thread_area", "set_thread_area", "restart_syscall", "seccomp",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // identity and capabilities (what a process may do with them is the kernel's check)
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid",
    "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32", "setresuid",
    "setresuid32", "setresgid", "setresgid32", "setgroups", "setgroups32", "setfsuid", "setfsuid32",
    "setfsgid", "setfsgid32", "capget", "capset",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaltstack",
    "sigprocmask", "sigreturn", "pause", "alarm", "getitimer", "setitimer",
    // time
    "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
    "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "adjtimex", "clock_adjtime",
    "clock_adjtime64", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64",
    // sockets (`socket` itself is below: AF_VSOCK is refused)
    "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "shutdown", "send", "sendto", "sendmsg", "sendmmsg",
    "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",
    // System V and POSIX IPC (namespaced by the container's IPC namespace)
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify",
    "mq_getsetattr",
    // the system, read only
    "uname", "sysinfo", "getrandom",
];

/// Namespace flags of `clone`: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
/// NEWPID | NEWNET. Without CAP_SYS_ADMIN, a `clone` asking for any is refused.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `personality` personas that change nothing a container could abuse: PER_LINUX,
/// PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query 0xffffffff.
const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// AF_VSOCK: talks to the hypervisor or host directly, outside any network namespace.
const AF_VSOCK: u64 = 40;

/// Calls allowed only to a container holding the capability.
const WITH_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
            "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
            "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Calls that exist on some architectures only (Docker's architecture names).
const BY_ARCHITECTURE: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["arm", "arm64"], &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"]),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn allow(list: &[&str]) -> Rule {
    Rule { names: names(list), action: Action::Allow, ..Default::default() }
}

fn arg(index: u32, value: u64, op: Op) -> ArgCondition {
    ArgCondition { index, value, value_two: 0, op }
}

/// Docker's default profile.
pub fn profile() -> Profile {
    let mut rules = vec![allow(ALWAYS)];
    // Reading another process's memory was only made safe to allow in 4.8.
    rules.push(Rule {
        includes: Filter { min_kernel: Some("4.8".into()), ..Default::default() },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    rules.push(Rule { args: vec![arg(0, AF_VSOCK, Op::NotEqual)], ..allow(&["socket"]) });
    for persona in PERSONAS {
        rules.push(Rule { args: vec![arg(0, *persona, Op::Equal)], ..allow(&["personality"]) });
    }
    for (arches, list) in BY_ARCHITECTURE {
        rules.push(Rule { includes: Filter { arches: names(arches), ..Default::default() }, ..allow(list) });
    }
    for (cap, list) in WITH_CAPABILITY {
        rules.push(Rule { includes: Filter { caps: vec![cap.to_string()], ..Default::default() }, ..allow(list) });
    }
    let without_sys_admin = |arches: &[&str]| Filter { caps: vec!["CAP_SYS_ADMIN".into()], arches: names(arches), ..Default::default() };
    // clone's flags are its first argument, except on s390 where they are the second.
    rules.push(Rule {
        args: vec![ArgCondition { index: 0, value: CLONE_NAMESPACE_FLAGS, value_two: 0, op: Op::MaskedEqual }],
        excludes: without_sys_admin(&["s390", "s390x"]),
        ..allow(&["clone"])
    });
    rules.push(Rule {
        args: vec![ArgCondition { index: 1, value: CLONE_NAMESPACE_FLAGS, value_two: 0, op: Op::MaskedEqual }],
        includes: Filter { arches: names(&["s390", "s390x"]), ..Default::default() },
        excludes: without_sys_admin(&[]),
        ..allow(&["clone"])
    });
    // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes libc
    // fall back to clone, whose flags the rule above checks.
    rules.push(Rule {
        names: names(&["clone3"]),
        action: Action::Errno,
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: without_sys_admin(&[]),
        ..Default::default()
    });
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: vec![
            super::ArchMap { architecture: "SCMP_ARCH_X86_64".into(), sub_architectures: names(&["SCMP_ARCH_X86", "SCMP_ARCH_X32"]) },
            super::ArchMap { architecture: "SCMP_ARCH_AARCH64".into(), sub_architectures: names(&["SCMP_ARCH_ARM"]) },
            super::ArchMap { architecture: "SCMP_ARCH_S390X".into(), sub_architectures: names(&["SCMP_ARCH_S390"]) },
            super::ArchMap { architecture: "SCMP_ARCH_RISCV64".into(), sub_architectures: vec![] },
        ],
        syscalls: rules,
        ..Default::default()
    }
}
