//! The per-container supervisor, `berth shim <container dir>`.
//!
//! The engine starts one shim per running container, detached (setsid), so the server
//! can die and come back while containers keep running. The shim clones the container's
//! init into new namespaces, holds its pty master or stdio pipes, writes the json-file
//! log, serves attach/resize/wait on `shim.sock`, proxies published ports, and writes
//! `exit.json` when init ends.
//!
//! Start handshake with the engine (shim stdin/stdout are pipes to it):
//! engine → the container's directory and `\n` (the shim may have been started before
//! the container was: `berth shim -`, see `engine::standby`) · shim → `Network` (only
//! when the clone made the container's network namespace: the engine plugs it in while
//! the child sets up its root) · shim → `Ready` (socket up, child set up and waiting) ·
//! engine connects the attach clients that were waiting for the start · engine →
//! `go\n` · shim → `Started` or `Failed`, then closes stdout.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::cgroup::Cgroup;
use crate::detach::{DetachScanner, Scan};
use crate::logs::{self, Stream};
use crate::runtime::linux::{self, ChildStdio};
use crate::runtime::wasm;
use crate::spec::{ExitInfo, PortSpec, RuntimeSpec, ShimRequest, StartReport};

struct Client {
    id: u64,
    out: UnixStream,
    stdout: bool,
    stderr: bool,
}

struct Shared {
    tty: bool,
    clients: Mutex<Vec<Client>>,
    /// Where attached input goes: the pty master or the stdin pipe (None once closed).
    stdin: Mutex<Option<fs::File>>,
    pty_master: Option<RawFd>,
    log: Mutex<logs::LogWriter>,
    waiters: Mutex<Vec<UnixStream>>,
    exit: Mutex<Option<ExitInfo>>,
    next_id: AtomicU64,
    /// Set when init has exited: the pumps then drain what is left at once, without
    /// the output budget (see `throttle`), so the exit is not held back by it.
    ended: Mutex<bool>,
    ended_changed: Condvar,
}

impl Shared {
    /// Logs `data` and sends it to the attached clients; returns what it cost against
    /// the output budget: the bytes logged, or the bytes themselves without a log.
    fn broadcast(&self, stream: Stream, data: &[u8]) -> u64 {
        let logged = self.log.lock().ok().and_then(|mut w| w.append(stream, data).ok()).unwrap_or(0);
        let bytes = if self.tty { data.to_vec() } else { logs::frame(stream, data) };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain_mut(|c| {
            let wanted = match stream {
                Stream::Stdout => c.stdout,
                Stream::Stderr => c.stderr,
                Stream::Stdin => false,
            };
            !wanted || c.out.write_all(&bytes).is_ok()
        });
        logged.max(data.len() as u64)
    }

    /// Waits `d` to keep within the output budget, or less if init exits meanwhile.
    fn hold_output(&self, d: Duration) {
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.ended_changed.wait_timeout_while(ended, d, |ended| !*ended);
    }

    fn drop_client(&self, id: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|c| {
            if c.id == id {
                let _ = c.out.shutdown(Shutdown::Both);
            }
            c.id != id
        });
    }
}

fn report(out: &mut impl Write, r: &StartReport) {
    if let Ok(mut line) = serde_json::to_vec(r) {
        line.push(b'\n');
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// Entry point of `berth shim DIR`, and of `berth shim -`, which reads DIR from its
/// stdin first (a shim started before its container was; see `engine::standby`).
/// Returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    // Out of the server's session and process group, so what is sent to those (a
    // Ctrl-C where the server was started) does not reach us or the container. The
    // engine starts us without a fork hook (see `engine::standby`): we do it here.
    let _ = nix::unistd::setsid();
    // A spare (see `engine::standby`) makes the network namespace of its container
    // while it waits: that is a millisecond or two of the kernel's time, which a start
    // no longer waits for.
    let mut prepared_network = None;
    let dir = if dir == Path::new("-") {
        prepared_network = prepare_network().map_err(|e| eprintln!("prepare a network namespace: {e}")).ok();
        let mut line = String::new();
        match io::stdin().lock().read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => std::path::PathBuf::from(line.trim_end_matches('\n')),
            // The engine went away without a container for us.
            _ => return 0,
        }
    } else {
        dir.to_path_buf()
    };
    let dir = dir.as_path();
    // Our messages (and panics) go to the container's shim.log, which the engine shows
    // when a start fails.
    if let Ok(log) = fs::OpenOptions::new().append(true).create(true).open(dir.join("shim.log")) {
        let _ = nix::unistd::dup2(log.as_raw_fd(), 2);
    }
    // SAFETY: fd 1 is the report pipe the engine gave us; we own it from here on.
    let mut reporter = unsafe { fs::File::from_raw_fd(1) };
    let spec: RuntimeSpec = match fs::read(dir.join("spec.json")).map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
        Ok(s) => s,
        Err(e) => {
            report(&mut reporter, &StartReport::Failed { message: format!("read spec: {e}") });
            return 1;
        }
    };
    match run(&spec, dir, &mut reporter, prepared_network) {
        Ok(code) => code,
        Err(message) => {
            report(&mut reporter, &StartReport::Failed { message });
            1
        }
    }
}

/// A host socket bound for one published port.
enum HostSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Binds every published port on the host before the container starts, so a taken
/// port fails the start with Docker's message.
fn bind_ports(ports: &[PortSpec]) -> Result<Vec<(PortSpec, HostSocket)>, String> {
    let mut out = Vec::new();
    for p in ports {
        let ip = if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() };
        let taken = |e: io::Error| {
            if e.kind() == io::ErrorKind::AddrInUse {
                format!("driver failed programming external connectivity on endpoint: Bind for {ip}:{} failed: port is already allocated", p.host_port)
            } else {
                // dockerd's words (its proxy's listen), e.g. for an address the host lacks.
                let family = if ip.contains(':') { "6" } else { "4" };
                format!(
                    "driver failed programming external connectivity on endpoint: Error starting userland proxy: listen {}{family} {ip}:{}: bind: {}",
                    p.proto,
                    p.host_port,
                    crate::error::go_io_error(&e)
                )
            }
        };
        let (sock, port) = match p.proto.as_str() {
            "tcp" => {
                let l = TcpListener::bind((ip, p.host_port)).map_err(taken)?;
                let port = l.local_addr().map(|a| a.port()).unwrap_or(p.host_port);
                (HostSocket::Tcp(l), port)
            }
            "udp" => {
                let u = UdpSocket::bind((ip, p.host_port)).map_err(taken)?;
                let port = u.local_addr().map(|a| a.port()).unwrap_or(p.host_port);
                (HostSocket::Udp(u), port)
            }
            other => return Err(format!("invalid proto: {other}")),
        };
        out.push((PortSpec { host_port: port, host_ip: ip.to_string(), ..p.clone() }, sock));
    }
    Ok(out)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A new network namespace (with its loopback only, down), made by a thread of its
/// own so the caller stays where it is; kept by the returned fd.
fn prepare_network() -> io::Result<fs::File> {
    thread::spawn(|| -> io::Result<fs::File> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        fs::File::open("/proc/thread-self/ns/net")
    })
    .join()
    .map_err(|_| io::Error::other("the thread making it panicked"))?
}

fn run(spec: &RuntimeSpec, dir: &Path, reporter: &mut fs::File, prepared_network: Option<fs::File>) -> Result<i32, String> {
    if let Some(name) = &spec.shim_cgroup {
        // Before the clone: the container's init starts here too, then moves to its own.
        // Still single-threaded, so the shim may enter it itself (the fast way in).
        let cg = Cgroup::new(name);
        cg.create(&Default::default()).and_then(|_| cg.enter()).map_err(|e| format!("shim cgroup: {e}"))?;
    }
    if let Some(net) = &spec.network {
        // Still single-threaded: the whole shim moves, so its listeners and the
        // container it clones (when it shares the network) are there.
        let f = fs::File::open(net).map_err(|e| format!("open network {}: {e}", net.display()))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("enter network {}: {e}", net.display()))?;
    }
    // Namespaces shared with another container: entered here, so the clone below
    // starts the container in them.
    let mut shared = nix::sched::CloneFlags::empty();
    // The pid namespace is entered only around the clone: while a process's children
    // would be born in another pid namespace, it cannot start threads (EINVAL).
    let mut pid_join: Option<(fs::File, fs::File)> = None;
    for (ns, flag) in [(&spec.pid_ns, nix::sched::CloneFlags::CLONE_NEWPID), (&spec.ipc_ns, nix::sched::CloneFlags::CLONE_NEWIPC), (&spec.uts_ns, nix::sched::CloneFlags::CLONE_NEWUTS)] {
        match ns {
            crate::spec::Namespace::New => {}
            crate::spec::Namespace::Host => shared |= flag,
            crate::spec::Namespace::Join(path) => {
                let f = fs::File::open(path).map_err(|e| format!("open namespace {}: {e}", path.display()))?;
                if flag == nix::sched::CloneFlags::CLONE_NEWPID {
                    let own = fs::File::open("/proc/self/ns/pid").map_err(|e| format!("open own pid namespace: {e}"))?;
                    pid_join = Some((f, own));
                } else {
                    nix::sched::setns(&f, flag).map_err(|e| format!("enter namespace {}: {e}", path.display()))?;
                }
                shared |= flag;
            }
        }
    }
    let listeners = bind_ports(&spec.ports)?;
    let _ = fs::remove_file(&spec.socket_path);
    let sock = UnixListener::bind(&spec.socket_path).map_err(|e| format!("listen on {}: {e}", spec.socket_path.display()))?;
    let log = logs::LogWriter::open(&spec.log_path, spec.log_mode).map_err(|e| format!("open log: {e}"))?;

    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sync_parent, sync_child) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))?;
    // Pipes for a container without a TTY: (child end, our end).
    let (stdin_pipe, out_pipe, err_pipe) = if spec.tty {
        (None, None, None)
    } else {
        let si = if spec.open_stdin { let (r, w) = pipe()?; Some((r, w)) } else { None };
        let (or, ow) = pipe()?;
        let (er, ew) = pipe()?;
        (si, Some((ow, or)), Some((ew, er)))
    };
    let stdio = if spec.tty {
        ChildStdio::Tty { sock: sync_child.as_raw_fd() }
    } else {
        ChildStdio::Pipes {
            stdin: stdin_pipe.as_ref().map(|(r, _)| r.as_raw_fd()),
            stdout: out_pipe.as_ref().map(|(w, _)| w.as_raw_fd()).unwrap_or(-1),
            stderr: err_pipe.as_ref().map(|(w, _)| w.as_raw_fd()).unwrap_or(-1),
        }
    };

    let mut stack = vec![0u8; 1024 * 1024];
    let (go_fd, err_fd, sync_fd) = (go_r.as_raw_fd(), err_w.as_raw_fd(), sync_child.as_raw_fd());
    let tty = spec.tty;
    let sync = if tty { None } else { Some(sync_fd) };
    // A lab session's user namespace, made here with its mapping (the child, still
    // the host's root, needs it for its idmapped mounts before it joins it).
    let userns = match spec.userns.filter(|_| spec.wasm.is_none()) {
        Some(map) => Some(crate::userns::create(map).map_err(|e| match (e.raw_os_error(), &spec.shim_cgroup) {
            // Its helper process is the first one the envelope has no room for.
            (Some(libc::EAGAIN), Some(cg)) => format!("clone: {}: {} is at its process limit", nix::Error::EAGAIN, cg.trim_end_matches("/shims")),
            _ => format!("make the user namespace: {e}"),
        })?),
        None => None,
    };
    let userns_fd = userns.as_ref().map(|f| f.as_raw_fd());
    let (namespaces, child_fn): (_, Box<dyn FnMut() -> isize>) = match &spec.wasm {
        None => (
            // With a user namespace the child makes its network namespace inside it.
            if spec.new_network && userns.is_none() { linux::NAMESPACES } else { linux::NAMESPACES.difference(nix::sched::CloneFlags::CLONE_NEWNET) }.difference(shared),
            Box::new(|| linux::child_main(spec, go_fd, err_fd, &stdio, sync, userns_fd)),
        ),
        Some(w) => (
            if w.isolated { wasm::namespaces(spec.new_network) } else { nix::sched::CloneFlags::empty() },
            Box::new(|| wasm::child_main(spec, w, dir, go_fd, err_fd, &stdio, sync)),
        ),
    };
    // A wasm guest on a host without namespaces shares the shim's: no network of its
    // own to serve DNS in, and cgroups may be out of reach too.
    let own_network = spec.new_network && spec.wasm.as_ref().is_none_or(|w| w.isolated);
    let need_cgroup = spec.wasm.as_ref().is_none_or(|w| w.isolated);
    // Made before the clone, so the container's setup finds its cgroup to show at
    // /sys/fs/cgroup and can enter it (a Linux container's init enters it first
    // thing); a wasm guest is moved into it right after the clone.
    let cgroup = Cgroup::new(&spec.cgroup);
    let created = cgroup.create(&spec.limits);
    if let Err(e) = &created {
        if need_cgroup {
            cgroup.remove();
            return Err(format!("cgroup: {e}"));
        }
    }
    if let Some((target, _)) = &pid_join {
        nix::sched::setns(target, nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| format!("enter the pid namespace: {e}"))?;
    }
    // A new network namespace made ahead (see `main`): entered around the clone, as
    // the pid namespace above, so the child starts in it instead of making one. Only
    // for a Linux container outside a user namespace (one in a user namespace makes
    // its own inside it, so that it owns it).
    let prepared_network = prepared_network.filter(|_| namespaces.contains(nix::sched::CloneFlags::CLONE_NEWNET) && spec.wasm.is_none());
    let (mut clone_flags, mut returns_to) = (namespaces, None);
    if let Some(net) = &prepared_network {
        let own = fs::File::open("/proc/thread-self/ns/net").map_err(|e| format!("open own network namespace: {e}"))?;
        nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("enter the prepared network namespace: {e}"))?;
        returns_to = Some(own);
        clone_flags = namespaces.difference(nix::sched::CloneFlags::CLONE_NEWNET);
    }
    // SAFETY: we are single-threaded here (no thread has been spawned yet), so the
    // child may allocate and run ordinary Rust code until it execs.
    let cloned = unsafe { nix::sched::clone(child_fn, &mut stack, clone_flags, Some(Signal::SIGCHLD as i32)) };
    if let Some(own) = returns_to.take() {
        nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("leave the network namespace: {e}"))?;
    }
    // The container holds it now: it goes with the container.
    drop(prepared_network);
    if let Some((_, own)) = &pid_join {
        nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| format!("leave the pid namespace: {e}"))?;
    }
    let pid = cloned
        .map_err(|e| match (e, &spec.shim_cgroup) {
            // Out of processes in the parent (a lab session's envelope full of them).
            (nix::Error::EAGAIN, Some(cg)) => format!("clone: {e}: {} is at its process limit", cg.trim_end_matches("/shims")),
            _ => format!("clone: {e}"),
        })?;
    drop((go_r, err_w, sync_child, userns));
    if namespaces.contains(nix::sched::CloneFlags::CLONE_NEWNET) {
        report(reporter, &StartReport::Network { pid: pid.as_raw() });
    }
    let stdin_pipe = stdin_pipe.map(|(r, w)| { drop(r); w });
    let out_pipe = out_pipe.map(|(w, r)| { drop(w); r });
    let err_pipe = err_pipe.map(|(w, r)| { drop(w); r });

    let kill_child = || {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    };
    let moved = if spec.wasm.is_some() { created.and_then(|_| cgroup.add(pid.as_raw())) } else { created };
    if let Err(e) = moved {
        cgroup.remove();
        if need_cgroup {
            kill_child();
            return Err(format!("cgroup: {e}"));
        }
    }
    // The child sends the pty master (TTY) or one byte (pipes) when set up.
    let child_error = |err_r: &OwnedFd| {
        let mut msg = String::new();
        // Read through a duplicate: the pipe itself is read again after "go".
        if let Ok(dup) = err_r.try_clone() {
            let _ = fs::File::from(dup).read_to_string(&mut msg);
        }
        if msg.is_empty() { "container init exited during setup".to_string() } else { msg }
    };
    let master = if spec.tty {
        match linux::recv_fd(sync_parent.as_fd()) {
            Ok(m) => Some(m),
            Err(_) => {
                let m = child_error(&err_r);
                kill_child();
                cgroup.remove();
                return Err(m);
            }
        }
    } else {
        let mut b = [0u8; 1];
        if nix::unistd::read(sync_parent.as_raw_fd(), &mut b).unwrap_or(0) != 1 {
            let m = child_error(&err_r);
            kill_child();
            cgroup.remove();
            return Err(m);
        }
        None
    };

    // Held until the exit is told: otherwise the kernel tears the container's mounts
    // down as its init exits, before the shim hears of it, and that waits for an RCU
    // grace period (`namespace_unlock`), 1-20 ms of every container's end here.
    let mount_namespace = fs::File::open(format!("/proc/{}/ns/mnt", pid.as_raw())).ok();
    let stdin_writer = match (&master, stdin_pipe) {
        (Some(m), _) => Some(fs::File::from(m.try_clone().map_err(|e| format!("dup pty: {e}"))?)),
        (None, Some(w)) => Some(fs::File::from(w)),
        (None, None) => None,
    };
    let shared = Arc::new(Shared {
        tty: spec.tty,
        clients: Mutex::new(Vec::new()),
        stdin: Mutex::new(stdin_writer),
        pty_master: master.as_ref().map(|m| m.as_raw_fd()),
        log: Mutex::new(log),
        waiters: Mutex::new(Vec::new()),
        exit: Mutex::new(None),
        next_id: AtomicU64::new(1),
        ended: Mutex::new(false),
        ended_changed: Condvar::new(),
    });
    {
        let shared = shared.clone();
        thread::spawn(move || {
            for conn in sock.incoming().flatten() {
                let shared = shared.clone();
                thread::spawn(move || handle_client(conn, &shared));
            }
        });
    }
    if let Some(names) = spec.dns.as_ref().filter(|_| own_network) {
        if spec.dns_on_start {
            if let Err(e) = start_dns(pid.as_raw(), names) {
                kill_child();
                cgroup.remove();
                return Err(e);
            }
        } else {
            // Nothing asks it yet: not on the start's way.
            let (pid, names) = (pid.as_raw(), names.clone());
            thread::spawn(move || {
                if let Err(e) = start_dns(pid, &names) {
                    eprintln!("embedded DNS: {e}");
                }
            });
        }
    }
    report(reporter, &StartReport::Ready { pid: pid.as_raw() });
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    if line.trim() != "go" {
        kill_child();
        cgroup.remove();
        return Err("start cancelled".into());
    }
    let _ = nix::unistd::write(&go_w, b"g");
    drop(go_w);
    // Exec closes the CLOEXEC error pipe: EOF with no message means it ran.
    let mut msg = String::new();
    let _ = fs::File::from(err_r).read_to_string(&mut msg);
    if !msg.is_empty() {
        kill_child();
        cgroup.remove();
        return Err(msg);
    }
    let ports: Vec<PortSpec> = listeners.iter().map(|(p, _)| p.clone()).collect();
    report(reporter, &StartReport::Started { pid: pid.as_raw(), shim_pid: std::process::id() as i32, ports });
    // From here on the engine does not listen; stdout goes nowhere.
    drop(std::mem::replace(reporter, fs::File::open("/dev/null").map_err(|e| e.to_string())?));

    for (p, sock) in listeners {
        let netns = fs::File::open(format!("/proc/{}/ns/net", pid.as_raw())).map_err(|e| format!("open netns: {e}"))?;
        match sock {
            HostSocket::Tcp(l) => thread::spawn(move || proxy_tcp(l, netns, p.container_port)),
            HostSocket::Udp(u) => thread::spawn(move || proxy_udp(u, netns, p.container_port)),
        };
    }
    let mut pumps = 0;
    let (pump_done, pumps_done) = std::sync::mpsc::channel::<()>();
    let output_rate = spec.output_rate;
    let pump = |fd: OwnedFd, stream: Stream, shared: Arc<Shared>| {
        let done = pump_done.clone();
        thread::spawn(move || {
            let _done = DropSignal(done);
            let mut f = fs::File::from(fd);
            let mut buf = vec![0u8; 32 * 1024];
            // Per stream: a container's stdout and stderr each get the budget.
            let mut throttle = crate::throttle::Throttle::new(output_rate, std::time::Instant::now());
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let cost = shared.broadcast(stream, &buf[..n]);
                        if let Some(t) = &mut throttle {
                            // Not reading meanwhile: the writer blocks once its pipe is full.
                            shared.hold_output(t.charge(cost, std::time::Instant::now()));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // EIO: the last holder of the pty slave closed it.
                    Err(_) => break,
                }
            }
        })
    };
    if let Some(m) = master {
        pump(m, Stream::Stdout, shared.clone());
        pumps += 1;
    }
    if let Some(o) = out_pipe {
        pump(o, Stream::Stdout, shared.clone());
        pumps += 1;
    }
    if let Some(e) = err_pipe {
        pump(e, Stream::Stderr, shared.clone());
        pumps += 1;
    }

    let exit_code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Err(nix::Error::EINTR) | Ok(_) => continue,
            Err(_) => break 255,
        }
    };
    *shared.ended.lock().unwrap_or_else(|p| p.into_inner()) = true;
    shared.ended_changed.notify_all();
    // Init is gone, so the kernel killed the rest of the pid namespace; the pumps see
    // EOF soon. Wait for the last output, but not forever.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if pumps_done.recv_timeout(left).is_err() {
            break;
        }
    }
    // The last line may have had no newline: it is logged before the exit is known.
    let _ = shared.log.lock().unwrap_or_else(|p| p.into_inner()).flush();
    let oom_killed = cgroup.oom_kills() > 0;
    let info = ExitInfo { exit_code, finished_at: chrono::Utc::now(), oom_killed };
    // The engine hears first (a watch that connects from now on gets it from here).
    *shared.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(info.clone());
    for mut w in shared.waiters.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = writeln!(w, "{}", serde_json::to_string(&info).unwrap_or_default());
    }
    // Then `exit.json`, for an engine that was down (read when it comes back): after
    // the engine heard, as making a file can wait milliseconds for ext4's journal
    // when the engine has just written the container's record; before the attach
    // streams end, as `Engine::detached` tells an exit from a detach by it. An `--rm`
    // container's directory may be gone already: it is not made again.
    let exit_file = serde_json::to_vec(&info).ok().and_then(|bytes| crate::fsutil::write_atomic_unsynced_in_dir(&spec.exit_path, &bytes).ok());
    for c in shared.clients.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = c.out.shutdown(Shutdown::Both);
    }
    // Now the mounts go (see where it is opened); before the socket and the cgroup,
    // so a next run that waits for this shim finds its upper dir free.
    drop(mount_namespace);
    // Not at idle priority: the container's next run waits for this (see
    // `Engine::wait_for_ending_shim`), which a busy machine could then put off for long.
    let _ = fs::remove_file(&spec.socket_path);
    cgroup.remove();
    // Durable last: the fsync would hold back the end of every `docker run`'s output.
    if let Some(f) = exit_file.filter(|_| spec.exit_durable) {
        let _ = f.sync_all();
    }
    Ok(0)
}

/// Sends on a channel when dropped: a pump thread's "I am done", even on panic.
struct DropSignal(std::sync::mpsc::Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn handle_client(conn: UnixStream, shared: &Shared) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let Ok(req) = serde_json::from_str::<ShimRequest>(&line) else {
        let _ = (&conn).write_all(b"error bad request\n");
        return;
    };
    match req {
        ShimRequest::Wait => {
            let exit = shared.exit.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match exit {
                Some(info) => {
                    let _ = writeln!(&conn, "{}", serde_json::to_string(&info).unwrap_or_default());
                }
                None => shared.waiters.lock().unwrap_or_else(|p| p.into_inner()).push(conn),
            }
        }
        ShimRequest::Resize { height, width } => {
            if let Some(fd) = shared.pty_master {
                let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                // SAFETY: TIOCSWINSZ with a valid winsize on our pty master.
                unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
            }
            let _ = (&conn).write_all(b"ok\n");
        }
        ShimRequest::Attach { stdin, stdout, stderr, detach_keys, stdin_once } => {
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            {
                // Register and acknowledge under the lock, so no output slips between.
                let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
                let Ok(out) = conn.try_clone() else { return };
                if (&conn).write_all(b"ok\n").is_err() {
                    return;
                }
                if stdout || stderr {
                    clients.push(Client { id, out, stdout, stderr });
                }
            }
            if !stdin {
                return;
            }
            let mut scanner = DetachScanner::new(detach_keys);
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    // stdin closed: with a TTY that ends this attach; without one,
                    // `stdin_once` closes the container's stdin (cat sees EOF).
                    if shared.tty {
                        shared.drop_client(id);
                    } else if stdin_once {
                        shared.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
                    }
                    return;
                }
                let (data, detach) = match scanner.feed(&buf[..n]) {
                    Scan::Forward(d) => (d, false),
                    Scan::Detach(d) => (d, true),
                };
                if !data.is_empty() {
                    if let Some(w) = shared.stdin.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        let _ = w.write_all(&data);
                    }
                }
                if detach {
                    shared.drop_client(id);
                    let _ = conn.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Forwards connections on a host port to `port` on the container's loopback.
/// Docker's embedded DNS for the container: sockets bound at 127.0.0.11:53 inside its
/// network namespace, served from the shim's own, so forwarded queries leave through
/// the shim's network rather than the container's.
fn start_dns(pid: i32, names: &std::path::Path) -> Result<(), String> {
    let netns = fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| format!("open netns: {e}"))?;
    let (udp, tcp) = thread::spawn(move || -> Result<(UdpSocket, TcpListener), String> {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("enter netns: {e}"))?;
        let udp = UdpSocket::bind("127.0.0.11:53").map_err(|e| format!("embedded DNS: {e}"))?;
        let tcp = TcpListener::bind("127.0.0.11:53").map_err(|e| format!("embedded DNS: {e}"))?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| "embedded DNS thread panicked".to_string())??;
    let source = crate::dns::NameSource::new(names);
    let tcp_source = source.clone();
    thread::spawn(move || crate::dns::serve_udp(udp, source));
    thread::spawn(move || crate::dns::serve_tcp(tcp, tcp_source));
    Ok(())
}

fn proxy_tcp(listener: TcpListener, netns: fs::File, port: u16) {
    let netns = Arc::new(netns);
    for conn in listener.incoming().flatten() {
        let netns = netns.clone();
        thread::spawn(move || {
            // setns is per thread: only this thread enters the container's network.
            if nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return;
            }
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                let _ = conn.shutdown(Shutdown::Both);
                return;
            };
            splice(conn, upstream);
        });
    }
}

/// Forwards datagrams between host clients and `port` on the container's loopback:
/// one socket inside the container per client address, so replies find their way.
fn proxy_udp(host: UdpSocket, netns: fs::File, port: u16) {
    // Sockets made by this thread from now on live in the container's network.
    if nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return;
    }
    let host = Arc::new(host);
    // Client address → its socket inside the container. An entry goes when its reply
    // thread ends (idle for a while, as conntrack would forget it), so a client that
    // comes back gets a fresh socket and a fresh reply thread.
    let inner: Arc<Mutex<std::collections::HashMap<std::net::SocketAddr, UdpSocket>>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = host.recv_from(&mut buf) else { return };
        let mut map = inner.lock().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(client) {
            let Ok(s) = UdpSocket::bind(("127.0.0.1", 0)) else { continue };
            if s.connect(("127.0.0.1", port)).is_err() {
                continue;
            }
            let (Ok(reader), host, inner) = (s.try_clone(), host.clone(), inner.clone()) else { continue };
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let _ = reader.set_read_timeout(Some(Duration::from_secs(120)));
                while let Ok(n) = reader.recv(&mut buf) {
                    if host.send_to(&buf[..n], client).is_err() {
                        break;
                    }
                }
                inner.lock().unwrap_or_else(|p| p.into_inner()).remove(&client);
            });
            slot.insert(s);
        }
        if let Some(s) = map.get(&client) {
            let _ = s.send(&buf[..n]);
        }
    }
}

fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else { return };
    let t = thread::spawn(move || {
        let mut a = a;
        let mut b = b;
        let _ = io::copy(&mut a, &mut b);
        let _ = b.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut b2, &mut a2);
    let _ = a2.shutdown(Shutdown::Write);
    let _ = t.join();
}
