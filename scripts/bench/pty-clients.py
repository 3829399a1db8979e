#!/usr/bin/python3
"""The peers' students: N docker CLI users, each typing into a shell on a pty of its
own (busybox sh, as in a Berth workstation), all at once, phase by phase, as
same-command.mjs and same-build.mjs do on Berth's terminals. Standard library only.

  pty-clients.py same-command N PORT0
      run-it  docker run -it --name it-I busybox sh    until the container's prompt
      exit    exit                                     until the shell's prompt
      run-d   docker run -d --name web-I -p PORT0+I:80 busybox sh -c '... httpd ...'
      http-up GET http://127.0.0.1:PORT0+I/ (curl) every 20 ms until it shows page-I
      http    one more GET: curl's time_total
  pty-clients.py same-build N DIR0 [ONE]
      build   cd DIR0/I && docker build -t helloI:v1 .  until the prompt
      (with ONE: only client 0, alone, in DIR0/0, tag hello-alone:v1)

The docker CLI talks to DOCKER_HOST (inherited). Prints
{"phases": {name: [ms...]}, "failures": [...], "cached": builds that said "Using cache",
"outputs": {client: the end of its build output}} on stdout.
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

SETTLE = 0.3          # after a prompt, before typing (busybox's line editor, see terminal.mjs)
TIMEOUT = 120.0
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHELL_PROMPT = re.compile(r"\$ $")
CONTAINER_PROMPT = re.compile(r"# $")


def plain(s):
    return CSI.sub("", s)


class Pty:
    """A busybox shell on a pty; a thread reads it, answers the line editor's cursor
    queries (as xterm.js does) and wakes whoever waits for some output."""

    def __init__(self, n):
        self.n = n
        master, slave = pty.openpty()
        # 120x30, as the Berth clients ask for.
        import fcntl
        import struct
        import termios
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        env = dict(os.environ, PS1="~ $ ", TERM="xterm-256color", HOME=os.environ.get("HOME", "/root"))
        self.proc = subprocess.Popen(["/bin/busybox", "sh"], stdin=slave, stdout=slave, stderr=slave,
                                     env=env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.text = ""
        self.mark = 0
        self.cond = threading.Condition()
        self.last = time.perf_counter()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                r, _, _ = select.select([self.fd], [], [], 1.0)
                if not r:
                    continue
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            t = time.perf_counter()
            chunk = data.decode("utf-8", "replace")
            with self.cond:
                self.text += chunk
                if "\x1b[6n" in chunk:
                    line = re.split(r"[\r\n]", "".join(self.text.split("\x1b[6n")[:-1]))[-1]
                    self.send("\x1b[1;%dR" % (len(plain(line)) + 1))
                self.last = t
                self.cond.notify_all()

    def send(self, s):
        os.write(self.fd, s.encode())

    def until(self, test, what, timeout=TIMEOUT):
        """The time of the read after which test(text since the mark) holds."""
        end = time.perf_counter() + timeout
        with self.cond:
            while True:
                if test(plain(self.text[self.mark:])):
                    self.mark = len(self.text)
                    return self.last
                left = end - time.perf_counter()
                if left <= 0:
                    raise RuntimeError("client %d: no %s within %.0f s; it shows %r" % (self.n, what, timeout, self.text[-300:]))
                self.cond.wait(left)

    def typed(self, line, test, what):
        with self.cond:
            self.mark = len(self.text)
        sent = time.perf_counter()
        self.send(line + "\r")
        return (self.until(test, what) - sent) * 1000

    def close(self):
        try:
            self.send("exit\r")
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
        os.close(self.fd)


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    one = len(sys.argv) > 4 and sys.argv[4] == "ONE"
    clients = [Pty(i) for i in range(1 if one else n)]
    for c in clients:
        c.until(lambda s: SHELL_PROMPT.search(s), "first prompt", 30)
    phases, failures, outputs = {}, [], {}
    alive = set(range(len(clients)))
    lock = threading.Lock()

    def phase(name, step):
        phases[name] = []
        time.sleep(SETTLE)
        start = time.perf_counter() + 0.05

        def run(i):
            time.sleep(max(0.0, start - time.perf_counter()))
            try:
                ms = step(clients[i], i)
                with lock:
                    phases[name].append(ms)
            except Exception as e:  # one client failing leaves the others measured
                with lock:
                    alive.discard(i)
                    failures.append("%s, client %d: %s" % (name, i, str(e)[:300]))
        threads = [threading.Thread(target=run, args=(i,)) for i in sorted(alive)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    if mode == "same-command":
        port0 = int(sys.argv[3])

        def get(i):
            """curl, as same-command.mjs: its time_total (ms) when the page answered, else None."""
            r = subprocess.run(["curl", "-s", "--max-time", "10", "-w", "\n%{http_code} %{time_total}",
                                "http://127.0.0.1:%d/" % (port0 + i)], capture_output=True, text=True)
            code, _, total = r.stdout.rsplit("\n", 1)[-1].partition(" ")
            return float(total) * 1000 if code == "200" and ("page-%d" % i) in r.stdout else None

        def http_up(c, i):
            t0 = time.perf_counter()
            while get(i) is None:
                if time.perf_counter() - t0 > TIMEOUT:
                    raise RuntimeError("port %d did not answer with page-%d" % (port0 + i, i))
                time.sleep(0.02)
            return (time.perf_counter() - t0) * 1000

        def http(c, i):
            ms = get(i)
            if ms is None:
                raise RuntimeError("port %d stopped answering" % (port0 + i))
            return ms

        phase("run-it", lambda c, i: c.typed("docker run -it --name it-%d busybox sh" % i,
                                             lambda s: CONTAINER_PROMPT.search(s), "container prompt"))
        phase("exit", lambda c, i: c.typed("exit", lambda s: SHELL_PROMPT.search(s), "prompt after exit"))
        phase("run-d", lambda c, i: c.typed(
            "docker run -d --name web-%d -p %d:80 busybox sh -c 'mkdir -p /www && echo page-%d > /www/index.html && exec httpd -f -p 80 -h /www'"
            % (i, port0 + i, i),
            lambda s: re.search(r"\n[0-9a-f]{64}\r?\n[\s\S]*\$ $", s), "container id and prompt after docker run -d"))
        phase("http-up", http_up)
        phase("http", http)
    elif mode == "same-build":
        dir0 = sys.argv[3]

        def build(c, i):
            tag = "hello-alone:v1" if one else "hello%d:v1" % i
            with c.cond:
                c.mark = len(c.text)
            start = c.mark
            ms = c.typed("docker build -t %s . ; echo build-status-$?" % tag,
                         lambda s: re.search(r"build-status-\d+\r?\n[\s\S]*\$ $", s), "prompt after docker build")
            out = plain(c.text[start:])
            outputs[str(i)] = out[-2000:]
            if "build-status-0" not in out:
                raise RuntimeError("docker build failed: %r" % out[-400:])
            return ms
        # Into the context first (not a timed phase: dropped below), then all build at once.
        phase("cd", lambda c, i: c.typed("cd %s/%d" % (dir0, i), lambda s: SHELL_PROMPT.search(s), "prompt after cd"))
        del phases["cd"]
        phase("build", build)
    else:
        sys.exit("unknown mode " + mode)
    for c in clients:
        c.close()
    cached = sum(1 for o in outputs.values() if "Using cache" in o)
    print(json.dumps({"phases": phases, "failures": failures, "cached": cached, "outputs": outputs}))


main()
