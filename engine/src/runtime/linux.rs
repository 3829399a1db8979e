//! The Linux container runtime: code that runs inside the freshly cloned child, in its
//! new pid, mount, uts, ipc and network namespaces, and ends in `execve`.
//!
//! The child is created by the shim with `clone(2)` while the shim is still
//! single-threaded, so allocating here is safe. Every failure is written to the error
//! pipe (the shim turns it into the `docker start` error) and ends the child.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::unistd::{chdir, dup2, pivot_root, sethostname, setsid, Gid, Uid};

use crate::spec::{MountSpec, RuntimeSpec, Security};
use crate::userns::IdMap;

pub const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWPID
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the child's stdio is wired.
pub enum ChildStdio {
    /// Make a pty inside the container and send its master over this socket.
    Tty { sock: RawFd },
    /// Pipe ends for 0, 1, 2 (stdin may be None: /dev/null).
    Pipes { stdin: Option<RawFd>, stdout: RawFd, stderr: RawFd },
}

/// Runs in the cloned child. Never returns on success (execve); returns the exit code
/// to use after writing the reason to `err_fd`.
///
/// Order: set up mounts and stdio, tell the shim (`sync_fd`, or the pty master sent over
/// the tty socket), wait for "go" on `go_fd` (attach clients are connected by then),
/// then switch user and exec.
///
/// `userns` is the user namespace the container runs in (a lab session's), made by the
/// shim with `spec.userns`'s mapping; see [`crate::userns`] for the steps it adds.
pub fn child_main(spec: &RuntimeSpec, go_fd: RawFd, err_fd: RawFd, stdio: &ChildStdio, sync_fd: Option<RawFd>, userns: Option<RawFd>) -> isize {
    // SAFETY: the shim keeps the descriptor open until the child has started.
    let userns = userns.zip(spec.userns).map(|(fd, map)| (unsafe { BorrowedFd::borrow_raw(fd) }, map));
    match setup_and_exec(spec, stdio, go_fd, sync_fd, userns) {
        Ok(never) => match never {},
        Err(msg) => {
            // SAFETY: err_fd is the write end of the shim's error pipe, owned by us now.
            let mut f = unsafe { fs::File::from_raw_fd(err_fd) };
            let _ = f.write_all(msg.as_bytes());
            127
        }
    }
}

fn e<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> Result<T, String> {
    r.map_err(|err| format!("{}: {err}", what()))
}

fn setup_and_exec(spec: &RuntimeSpec, stdio: &ChildStdio, go_fd: RawFd, sync_fd: Option<RawFd>, userns: Option<(BorrowedFd<'_>, IdMap)>) -> Result<std::convert::Infallible, String> {
    // If the shim dies (kill -9), the container dies with it instead of running on
    // unsupervised: nobody would log it, attach to it or record its exit.
    set_parent_death_signal(libc::SIGKILL)?;
    // First, so all it does and makes from here on counts against its limits. Made by
    // the shim before the clone; we move ourselves because only a process moving
    // itself skips the kernel's global migration lock (see `Cgroup::enter`).
    e(crate::cgroup::Cgroup::new(&spec.cgroup).enter(), || "join the container's cgroup".into())?;
    // Read while the host's paths are still in view (before pivot_root).
    let seccomp = read_seccomp(&spec.security)?;
    e(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>), || "make / private".into())?;
    mount_rootfs(spec, userns.map(|(fd, _)| fd))?;
    let root = &spec.rootfs;

    mount_special(root, userns.map(|(_, map)| map), spec.shm_size)?;
    mount_cgroup_view(root, &spec.cgroup)?;
    // The user's mounts first, then Docker's /etc files on top (a volume at /etc keeps
    // them), but not where a user mount is at that very path. A read-only mount that
    // holds one is made read-only after it is there, as runc does, so that its mount
    // point can be made.
    let mut read_only_later = Vec::new();
    for m in &spec.mounts {
        if m.readonly && spec.etc_files.iter().any(|(_, dst)| strictly_below(dst, &m.destination)) {
            // A tmpfs says `ro` in its options too.
            let tmpfs = m.tmpfs.as_ref().map(|o| o.split(',').filter(|o| *o != "ro").collect::<Vec<_>>().join(","));
            bind_mount(root, &MountSpec { readonly: false, tmpfs, ..m.clone() }, userns.map(|(fd, _)| fd), userns.map(|(_, map)| map))?;
            read_only_later.push(root.join(m.destination.trim_start_matches('/')));
        } else {
            bind_mount(root, m, userns.map(|(fd, _)| fd), userns.map(|(_, map)| map))?;
        }
    }
    for (src, dst) in &spec.etc_files {
        if spec.mounts.iter().any(|m| m.destination.trim_end_matches('/') == dst) {
            continue;
        }
        let target = root.join(dst.trim_start_matches('/'));
        if let Some((_, map)) = userns {
            // Root in the container may edit /etc/hosts, as in Docker.
            e(nix::unistd::chown(src, Some(Uid::from_raw(map.base)), Some(Gid::from_raw(map.base))), || format!("chown {}", src.display()))?;
            make_mount_point_as(&target, map)?;
        }
        bind(src, &target, false, true, None)?;
    }
    for dst in read_only_later {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV | kept_flags(&dst);
        e(mount(None::<&str>, &dst, None::<&str>, flags, None::<&str>), || format!("remount {} read-only", dst.display()))?;
    }
    if let Some(init) = &spec.init {
        // Root-owned 0755 on the host: any user of the container may run it.
        bind(init, &root.join(crate::runtime::INIT_PATH.trim_start_matches('/')), true, false, None)?;
    }
    if spec.uts_ns == crate::spec::Namespace::New {
        e(sethostname(&spec.hostname), || "set hostname".into())?;
        if !spec.domainname.is_empty() {
            set_domainname(&spec.domainname)?;
        }
    }
    if let Some(shm) = &spec.shm_from {
        // A tmpfs on the host, shared by the containers of one IPC namespace.
        bind(shm, &root.join("dev/shm"), false, false, None)?;
    }
    // In a user namespace the network namespace is made once inside it (below).
    if userns.is_none() {
        loopback_up()?;
    }

    e(chdir(root), || "chdir rootfs".into())?;
    e(pivot_root(".", "."), || "pivot_root".into())?;
    e(umount2(".", MntFlags::MNT_DETACH), || "detach old root".into())?;
    e(chdir("/"), || "chdir /".into())?;
    // Kept open through mask_paths (which makes /proc/sys read-only) to write the
    // sysctls below.
    let proc_sys = if spec.sysctls.is_empty() { None } else { Some(e(fs::File::open("/proc/sys"), || "open /proc/sys".into())?) };
    if spec.oom_score_adj != 0 {
        e(fs::write("/proc/self/oom_score_adj", spec.oom_score_adj.to_string()), || "set oom_score_adj".into())?;
    }
    // Docker makes a missing working directory when the container is made, from the
    // host's side, owned by the container's root: so before / may turn read-only.
    make_workdir(&spec.cwd, userns.map_or(0, |(_, map)| map.base))?;
    mask_paths(&spec.masked_paths, &spec.readonly_paths)?;
    if spec.readonly_rootfs {
        e(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY, None::<&str>), || "remount / read-only".into())?;
    }
    // Only its owner may write an IPC namespace's settings, and the container's was
    // made by the clone, outside the session's user namespace: they are written now,
    // the network's once its namespace is final (below).
    if let Some(dir) = &proc_sys {
        write_sysctls(dir, spec.sysctls.iter().filter(|(k, _)| crate::sysctl::is_ipc(k)))?;
    }
    if let Some((fd, _)) = userns {
        crate::userns::enter(fd)?;
        // The kernel clears it when our ids change, as they just did.
        set_parent_death_signal(libc::SIGKILL)?;
        if spec.new_network {
            // Owned by the user namespace: root inside may use raw sockets (`ping`)
            // and ports below 1024 in it, as in a Docker container.
            e(nix::sched::unshare(CloneFlags::CLONE_NEWNET), || "make the network namespace".into())?;
            loopback_up()?;
        }
    }

    if let Some(dir) = &proc_sys {
        write_sysctls(dir, spec.sysctls.iter().filter(|(k, _)| !crate::sysctl::is_ipc(k)))?;
    }
    let (uid, gid, groups, home) = resolve_user(&spec.user, &spec.security.extra_groups)?;
    setup_stdio(stdio, uid, gid)?;
    if spec.cgroupns {
        // We are in our cgroup (entered first thing): it becomes our cgroup root.
        e(nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP), || "make the cgroup namespace".into())?;
    }
    // Loaded now, not just before the exec: the kernel takes about a millisecond to
    // check and compile Docker's profile, and now that overlaps the shim's and the
    // engine's last steps of the start. What runs under it from here to the exec is in
    // Docker's profile: read, write, stat, chdir, mkdir, chown, setrlimit, prctl,
    // capset, setgroups, setuid, execve.
    if let Some(program) = &seccomp {
        crate::seccomp::install(program)?;
    }
    if let Some(fd) = sync_fd {
        // SAFETY: fd is our end of the shim's sync socket, open for the whole setup.
        e(nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, b"s"), || "report setup".into())?;
    }
    let mut buf = [0u8; 1];
    if nix::unistd::read(go_fd, &mut buf).unwrap_or(0) != 1 {
        return Err("start cancelled".into());
    }

    let mut env = spec.env.clone();
    if !env.iter().any(|v| v.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    // The filter is in place already (above).
    match become_and_exec(&spec.args, env, &spec.cwd, (uid, gid, &groups), &spec.security, None)? {}
}

/// Writes each sysctl through `dir` (an fd of a writable /proc/sys): the values land
/// in the namespaces this process is in now.
fn write_sysctls<'a>(dir: &fs::File, sysctls: impl Iterator<Item = (&'a String, &'a String)>) -> Result<(), String> {
    for (key, value) in sysctls {
        let path = CString::new(crate::sysctl::proc_path(key)).map_err(|_| format!("bad sysctl {key}"))?;
        // SAFETY: openat on our own open directory fd with a NUL-terminated relative path.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            // Some kernels show namespaced settings only to namespaces of the host's
            // user namespace (net.core.* on Debian 12's 6.1, in a lab session).
            if err.kind() == std::io::ErrorKind::NotFound {
                return Err(format!("open sysctl {key}: this kernel offers no such setting in the container's namespaces"));
            }
            return Err(format!("open sysctl {key}: {err}"));
        }
        // SAFETY: fd was just opened by us and is owned by this File from now on.
        let mut f = unsafe { fs::File::from_raw_fd(fd) };
        e(f.write_all(value.as_bytes()), || format!("write sysctl {key}={value}"))?;
    }
    Ok(())
}

fn set_domainname(name: &str) -> Result<(), String> {
    // SAFETY: setdomainname reads `len` bytes of a valid buffer.
    if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(format!("set domainname: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Applies `--ulimit`s to this process (inherited by what it execs).
fn set_rlimits(limits: &[crate::container::Ulimit]) -> Result<(), String> {
    for l in limits {
        let Some(resource) = crate::sysctl::resource(&l.name) else { return Err(format!("invalid ulimit type: {}", l.name)) };
        let v = |n: i64| if n < 0 { libc::RLIM_INFINITY } else { n as libc::rlim_t };
        let lim = libc::rlimit { rlim_cur: v(l.soft), rlim_max: v(l.hard) };
        // SAFETY: setrlimit with a valid resource number and struct.
        if unsafe { libc::setrlimit(resource as _, &lim) } != 0 {
            return Err(format!("setrlimit {}: {}", l.name, std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// /sys/fs/cgroup as a container sees it in Docker: its own cgroup in each hierarchy,
/// read-only, so `cat /sys/fs/cgroup/memory/memory.limit_in_bytes` (v1) or
/// `/sys/fs/cgroup/memory.max` (v2) shows the container's own limit.
fn mount_cgroup_view(root: &Path, cgroup: &str) -> Result<(), String> {
    let host = Path::new("/sys/fs/cgroup");
    let view = root.join("sys/fs/cgroup");
    let name = cgroup.trim_matches('/');
    if crate::cgroup::is_v2() {
        let own = host.join(name);
        return if own.is_dir() { bind(&own, &view, true, false, None) } else { Ok(()) };
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    e(mount(Some("tmpfs"), &view, Some("tmpfs"), flags, Some("mode=755")), || "mount tmpfs on /sys/fs/cgroup".into())?;
    // Bound writable, then the whole view made read-only in one call: a remount of
    // each bind was 18 more mount calls of every start.
    let mut bound = Vec::new();
    for entry in e(fs::read_dir(host), || "read /sys/fs/cgroup".into())?.flatten() {
        let target = view.join(entry.file_name());
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_symlink() {
            // `cpu -> cpu,cpuacct` and the like.
            if let Ok(to) = fs::read_link(entry.path()) {
                e(symlink(&to, &target), || format!("symlink {}", target.display()))?;
            }
            continue;
        }
        // A hierarchy the container has a cgroup in (others stay hidden).
        let own = entry.path().join(name);
        if kind.is_dir() && own.is_dir() {
            e(fs::create_dir(&target), || format!("create mountpoint {}", target.display()))?;
            e(mount(Some(&own), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>), || format!("bind {} on {}", own.display(), target.display()))?;
            bound.push(target);
        }
    }
    let sealed = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
    if set_tree_attrs(&view, sealed).is_err() {
        // A kernel before 5.12: one remount each.
        for target in &bound {
            let again = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags | kept_flags(target);
            e(mount(None::<&str>, target, None::<&str>, again, None::<&str>), || format!("remount {} read-only", target.display()))?;
        }
        e(mount(None::<&str>, &view, None::<&str>, flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>), || "remount /sys/fs/cgroup read-only".into())?;
    }
    Ok(())
}

/// Sets `attrs` (`MOUNT_ATTR_*`) on the mount at `path` and every mount below it.
fn set_tree_attrs(path: &Path, attrs: u64) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let attr = libc::mount_attr { attr_set: attrs, attr_clr: 0, propagation: 0, userns_fd: 0 };
    crate::userns::set_mount_attrs(libc::AT_FDCWD, &c, libc::AT_RECURSIVE, &attr)
}

/// The signal we get when our parent (the shim) dies; 0 for none.
fn set_parent_death_signal(sig: libc::c_int) -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(format!("set parent death signal: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn parent_death_signal() -> libc::c_int {
    let mut sig: libc::c_int = 0;
    // SAFETY: PR_GET_PDEATHSIG writes one int through the pointer we pass.
    unsafe { libc::prctl(libc::PR_GET_PDEATHSIG, &mut sig as *mut libc::c_int, 0, 0, 0) };
    sig
}

/// The container's compiled seccomp program, if it has one.
pub fn read_seccomp(security: &Security) -> Result<Option<Vec<u8>>, String> {
    security.seccomp.as_ref().map(|p| e(fs::read(p), || format!("read seccomp program {}", p.display()))).transpose()
}

/// The last steps before a container's process runs its program: no_new_privs, the
/// seccomp filter (loaded while the process still has CAP_SYS_ADMIN, which installing
/// one without no_new_privs needs; the default profile allows every call made after
/// it), the bounding set, then the user, then the process's own capability sets.
fn confine(security: &Security, seccomp: Option<&[u8]>, user: (u32, u32, &[u32])) -> Result<(), String> {
    if security.no_new_privileges {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!("set no_new_privs: {}", std::io::Error::last_os_error()));
        }
    }
    if let Some(program) = seccomp {
        crate::seccomp::install(program)?;
    }
    crate::capabilities::limit_bounding(&security.capabilities)?;
    let (uid, gid, groups) = user;
    e(nix::unistd::setgroups(&groups.iter().map(|g| Gid::from_raw(*g)).collect::<Vec<_>>()), || "setgroups".into())?;
    e(nix::unistd::setgid(Gid::from_raw(gid)), || "setgid".into())?;
    e(nix::unistd::setuid(Uid::from_raw(uid)), || "setuid".into())?;
    crate::capabilities::set_process(&security.capabilities, uid == 0)
}

/// Mounts the container's overlay (image layers below, its own upper dir on top) at
/// `spec.rootfs`, in the caller's mount namespace (a private one). With a user
/// namespace, each layer is first covered by an idmapped view of itself.
pub(crate) fn mount_rootfs(spec: &RuntimeSpec, userns: Option<BorrowedFd<'_>>) -> Result<(), String> {
    let root = &spec.rootfs;
    if let Some(ns) = userns {
        for dir in &spec.lowerdirs {
            crate::userns::shift_in_place(dir, ns)?;
        }
    }
    let lower = spec.lowerdirs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let opts = format!("lowerdir={lower},upperdir={},workdir={}", spec.upperdir.display(), spec.workdir.display());
    // nodev: a device node the container makes (CAP_MKNOD is a default capability)
    // cannot be opened, so `mknod /disk b 8 0` cannot reach the host's disk.
    e(mount(Some("overlay"), root, Some("overlay"), MsFlags::MS_NODEV, Some(opts.as_str())), || format!("mount overlay on {}", root.display()))
}

/// Makes the missing directories of `cwd` (mode 0755, owned by host id `root`, the
/// container's root) as dockerd's `SetupWorkingDirectory` does; a file in the way is
/// its error. `exec` makes none (runc's exec only changes into it).
fn make_workdir(cwd: &str, root: u32) -> Result<(), String> {
    let mut at = PathBuf::from("/");
    for c in Path::new(cwd).components() {
        let Component::Normal(name) = c else { continue };
        at.push(name);
        match fs::metadata(&at) {
            Ok(md) if md.is_dir() => continue,
            Ok(_) => return Err(format!("Cannot mkdir: {cwd} is not a directory")),
            Err(_) => {}
        }
        match fs::DirBuilder::new().mode(0o755).create(&at) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // Read-only below a mount, say: the chdir that follows says why.
            Err(_) => return Ok(()),
        }
        e(nix::unistd::chown(&at, Some(Uid::from_raw(root)), Some(Gid::from_raw(root))), || format!("chown {}", at.display()))?;
    }
    Ok(())
}

/// The last steps shared by a container's init and `exec`: default PATH, working
/// directory, seccomp, capabilities, user, execve.
pub fn become_and_exec(
    args: &[String],
    mut env: Vec<String>,
    cwd: &str,
    user: (u32, u32, &[u32]),
    security: &Security,
    seccomp: Option<&[u8]>,
) -> Result<std::convert::Infallible, String> {
    if !env.iter().any(|v| v.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let cwd = if cwd.is_empty() { "/" } else { cwd };
    // runc's words, with Go's errno text: "... failed: no such file or directory".
    chdir(cwd).map_err(|err| format!("chdir to cwd (\"{cwd}\") set in config.json failed: {}", crate::error::go_errno(err)))?;

    let program = find_program(args, &env)?;
    // While still privileged: raising a hard limit needs CAP_SYS_RESOURCE.
    set_rlimits(&security.rlimits)?;
    // Switching to a user other than root clears the parent death signal: set it again.
    let death = parent_death_signal();
    confine(security, seccomp, user)?;
    if death != 0 {
        set_parent_death_signal(death)?;
    }

    let c = |s: &str| CString::new(s).map_err(|_| format!("argument contains a NUL byte: {s:?}"));
    let argv = args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let prog = c(&program)?;
    let err = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    Err(exec_error(&args[0], &program, err))
}

fn exec_error(arg0: &str, program: &str, err: nix::Error) -> String {
    match err {
        nix::Error::ENOENT => format!("exec: \"{arg0}\": stat {program}: no such file or directory"),
        nix::Error::EACCES => format!("exec: \"{arg0}\": permission denied"),
        other => format!("exec: \"{arg0}\": {}", other.desc().to_lowercase()),
    }
}

/// The exit code of a process that could not be started, as dockerd gives it
/// (`translateContainerdStartErr`): 127 when the error is that `program` itself is
/// missing, 126 when it may not be run, else `otherwise` (128 for a container, 126 for
/// an exec). A missing working directory is not a missing program.
pub fn start_failure_code(msg: &str, program: &str, otherwise: i32) -> i32 {
    let missing = msg.contains("executable file not found") || msg.contains("no such file or directory");
    if missing && !program.is_empty() && msg.contains(&format!("\"{program}\"")) {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        otherwise
    }
}

/// Looks `args[0]` up in the container's PATH, like Go's exec.LookPath in runc.
fn find_program(args: &[String], env: &[String]) -> Result<String, String> {
    let Some(arg0) = args.first() else {
        return Err("no command specified".into());
    };
    if arg0.contains('/') {
        return match fs::metadata(arg0) {
            Ok(m) if m.is_dir() => Err(format!("exec: \"{arg0}\": is a directory")),
            Ok(_) => Ok(arg0.clone()),
            Err(_) => Err(format!("exec: \"{arg0}\": stat {arg0}: no such file or directory")),
        };
    }
    let path = env.iter().find_map(|v| v.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let p = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if let Ok(m) = fs::metadata(&p) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(p.display().to_string());
            }
        }
    }
    Err(format!("exec: \"{arg0}\": executable file not found in $PATH"))
}

/// /proc, /dev and /sys. With a user namespace, /dev and /dev/shm belong to the
/// container's root and ptys to its tty group (5), as they would inside one.
fn mount_special(root: &Path, userns: Option<IdMap>, shm_size: i64) -> Result<(), String> {
    let owner = userns.map(|m| format!(",uid={},gid={}", m.base, m.base)).unwrap_or_default();
    let tty_gid = userns.map_or(5, |m| m.to_host(5));
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mk = |p: &PathBuf| e(fs::create_dir_all(p), || format!("create {}", p.display()));
    let m = |src: &str, target: &str, fstype: &str, flags: MsFlags, data: &str| -> Result<(), String> {
        let t = at(target);
        mk(&t)?;
        e(mount(Some(src), &t, Some(fstype), flags, if data.is_empty() { None } else { Some(data) }), || format!("mount {fstype} on {target}"))
    };
    m("proc", "/proc", "proc", nosuid_nodev_noexec, "")?;
    // /dev is nodev like every other filesystem the container can write to; its
    // standard devices are bind mounts of the host's nodes, which keep working.
    m("tmpfs", "/dev", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME, &format!("mode=755,size=65536k{owner}"))?;
    m("devpts", "/dev/pts", "devpts", MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, &format!("newinstance,ptmxmode=0666,mode=0620,gid={tty_gid}"))?;
    let shm = if shm_size > 0 { shm_size.to_string() } else { "65536k".into() };
    m("shm", "/dev/shm", "tmpfs", nosuid_nodev_noexec, &format!("mode=1777,size={shm}{owner}"))?;
    m("mqueue", "/dev/mqueue", "mqueue", nosuid_nodev_noexec, "")?;
    m("sysfs", "/sys", "sysfs", nosuid_nodev_noexec | MsFlags::MS_RDONLY, "")?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = at("/dev").join(name);
        e(fs::File::create(&p), || format!("create /dev/{name}"))?;
        let host = Path::new("/dev").join(name);
        e(mount(Some(&host), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>), || format!("bind /dev/{name}"))?;
    }
    for (link, target) in [("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore")] {
        e(symlink(target, at("/dev").join(link)), || format!("symlink /dev/{link}"))?;
    }
    Ok(())
}

/// Bind-mounts `src` on `dst`, creating `dst` as a file or directory like the source.
/// With a user namespace the bind is an idmapped one (always recursive): the files
/// keep the ids they have on disk as the container's own.
fn bind(src: &Path, dst: &Path, readonly: bool, recursive: bool, userns: Option<BorrowedFd<'_>>) -> Result<(), String> {
    let is_dir = fs::metadata(src).map(|m| m.is_dir()).map_err(|err| format!("bind source path does not exist: {}: {err}", src.display()))?;
    if is_dir {
        e(fs::create_dir_all(dst), || format!("create mountpoint {}", dst.display()))?;
    } else if fs::symlink_metadata(dst).is_err() {
        if let Some(p) = dst.parent() {
            e(fs::create_dir_all(p), || format!("create {}", p.display()))?;
        }
        e(fs::File::create(dst), || format!("create mountpoint {}", dst.display()))?;
    }
    if let Some(ns) = userns {
        // nodev as below; the clone keeps the source's other flags.
        let attrs = libc::MOUNT_ATTR_NODEV | if readonly { libc::MOUNT_ATTR_RDONLY } else { 0 };
        if crate::userns::bind_mapped(src, ns, attrs, dst)? {
            return Ok(());
        }
    }
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    e(mount(Some(src), dst, None::<&str>, flags, None::<&str>), || format!("bind {} on {}", src.display(), dst.display()))?;
    // nodev as on the root: a bind of the host's /dev, or a device node made in a
    // volume, opens nothing.
    let mut again = flags | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | kept_flags(dst);
    if readonly {
        again |= MsFlags::MS_RDONLY;
    }
    e(mount(None::<&str>, dst, None::<&str>, again, None::<&str>), || format!("remount {} nodev{}", dst.display(), if readonly { ", read-only" } else { "" }))?;
    Ok(())
}

/// The flags of the mount at `path` that a bind remount must repeat, or it would
/// clear them (nosuid, noexec and the atime settings of the source).
fn kept_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(v) = nix::sys::statvfs::statvfs(path) else { return MsFlags::empty() };
    let f = v.flags();
    [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| f.contains(*st))
    .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// Makes the empty file `path` (a mount point) if it is missing. In a volume idmapped
/// for the user namespace the host's root has no id there (EOVERFLOW): it is made as
/// the container's root instead, as runc inside the namespace would.
fn make_mount_point_as(path: &Path, map: IdMap) -> Result<(), String> {
    if fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    match fs::File::create(path) {
        Err(err) if err.raw_os_error() == Some(libc::EOVERFLOW) => {
            let uid = nix::unistd::setfsuid(Uid::from_raw(map.base));
            let gid = nix::unistd::setfsgid(Gid::from_raw(map.base));
            let made = fs::File::create(path);
            nix::unistd::setfsuid(uid);
            nix::unistd::setfsgid(gid);
            e(made.map(drop), || format!("create mountpoint {}", path.display()))
        }
        // Anything else as before: `bind` makes it (and its parents) or says why not.
        _ => Ok(()),
    }
}

/// Whether container path `path` is inside directory `dir` (and not `dir` itself).
fn strictly_below(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path.strip_prefix(dir).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
}

/// A tmpfs's `uid=`/`gid=` as host ids for a container in the user namespace `map`
/// (its root's when the options name none).
fn tmpfs_owner_in(data: &str, map: IdMap) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut named = [false, false];
    for o in data.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some((k @ ("uid" | "gid"), v)) => {
                named[usize::from(k == "gid")] = true;
                match v.parse::<u32>() {
                    Ok(id) => out.push(format!("{k}={}", map.to_host(id))),
                    Err(_) => out.push(o.to_string()),
                }
            }
            _ => out.push(o.to_string()),
        }
    }
    for (i, key) in ["uid", "gid"].into_iter().enumerate() {
        if !named[i] {
            out.push(format!("{key}={}", map.base));
        }
    }
    out.join(",")
}

fn bind_mount(root: &Path, m: &MountSpec, userns: Option<BorrowedFd<'_>>, map: Option<IdMap>) -> Result<(), String> {
    let dst = root.join(m.destination.trim_start_matches('/'));
    // A destination that climbs out through a symlink would mount on the host.
    if m.destination.split('/').any(|c| c == "..") {
        return Err(format!("invalid mount destination: {}", m.destination));
    }
    if let Some(opts) = &m.tmpfs {
        let (mut flags, mut data) = crate::mounts::split_options(opts);
        if m.readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        // Made by the host's root before the user namespace is entered: owned by the
        // container's root unless the options say otherwise, and an owner the options
        // name is the container's id, as when runc mounts it inside the namespace.
        if let Some(map) = map {
            data = tmpfs_owner_in(&data, map);
        }
        e(fs::create_dir_all(&dst), || format!("create mountpoint {}", dst.display()))?;
        return e(mount(Some("tmpfs"), &dst, Some("tmpfs"), flags, (!data.is_empty()).then_some(data.as_str())), || format!("mount tmpfs on {}", m.destination));
    }
    if m.device {
        // Not through `bind`: that one adds nodev, which would make the node useless.
        if let Some(parent) = dst.parent() {
            e(fs::create_dir_all(parent), || format!("create {}", parent.display()))?;
        }
        e(fs::File::create(&dst), || format!("create {}", m.destination))?;
        e(mount(Some(&m.source), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>), || format!("bind device {}", m.source.display()))?;
        return e(mount(None::<&str>, &dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, None::<&str>), || format!("remount device {}", m.destination));
    }
    match &m.beneath {
        Some(root) => {
            let fd = open_beneath(root, &m.source)?;
            bind(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())), &dst, m.readonly, !m.non_recursive, userns)
        }
        None => bind(&m.source, &dst, m.readonly, !m.non_recursive, userns),
    }
}

/// Opens `path` (under `root`) as an O_PATH fd with openat2's RESOLVE_BENEATH: no
/// `..`, absolute symlink or magic link may lead out of `root`.
fn open_beneath(root: &Path, path: &Path) -> Result<OwnedFd, String> {
    let rel = path.strip_prefix(root).map_err(|_| format!("bind source {} is not in {}", path.display(), root.display()))?;
    let dir = e(fs::File::open(root), || format!("open {}", root.display()))?;
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), rel, how)
        .map_err(|err| format!("bind source {}: it leads out of the session's home: {err}", path.display()))?;
    // SAFETY: a new fd returned by the kernel, owned by us from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Hides `masked` (a file under /dev/null, a directory under an empty read-only
/// tmpfs) and makes `readonly` read-only, inside the container's root. A path the
/// container does not have is skipped, as runc does; any other failure stops the
/// start, since a mask that did not take would leave open what it promised to hide.
fn mask_paths(masked: &[String], readonly: &[String]) -> Result<(), String> {
    use nix::errno::Errno;
    let absent = |err: Errno| matches!(err, Errno::ENOENT | Errno::ENOTDIR);
    for p in masked {
        let res = match fs::metadata(p) {
            Ok(md) if md.is_dir() => mount(Some("tmpfs"), p.as_str(), Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>),
            Ok(_) => mount(Some("/dev/null"), p.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>),
            Err(_) => continue,
        };
        match res {
            Err(err) if !absent(err) => return Err(format!("mask {p}: {err}")),
            _ => {}
        }
    }
    for p in readonly {
        match mount(Some(p.as_str()), p.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>) {
            Err(err) if absent(err) => continue,
            Err(err) => return Err(format!("make {p} read-only: {err}")),
            Ok(()) => {}
        }
        mount(Some(p.as_str()), p.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
            .map_err(|err| format!("make {p} read-only: {err}"))?;
    }
    Ok(())
}

pub(crate) fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket + ioctl on a zeroed ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(s);
        if !ok {
            return Err(format!("bring up lo: {err}"));
        }
    }
    Ok(())
}

/// Finds uid, gid, supplementary groups and home for a Docker `--user` value.
/// The uid, gid, supplementary groups (with `extra`: `--group-add` names or ids) and
/// home directory of `user` in the container's /etc/passwd and /etc/group.
pub fn resolve_user(user: &str, extra: &[String]) -> Result<(u32, u32, Vec<u32>, String), String> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 7 && (f[0] == u || f[2] == u));
    let (uid, mut gid, home, name) = match (entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().map_err(|_| format!("bad uid in /etc/passwd for {u}"))?,
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            f[0].to_string(),
        ),
        (None, Ok(n)) => (n, n, "/".to_string(), String::new()),
        (None, Err(_)) => return Err(format!("unable to find user {u}: no matching entries in passwd file")),
    };
    if let Some(g) = g {
        let ge = group.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 3 && (f[0] == g || f[2] == g));
        gid = match (ge, g.parse::<u32>()) {
            (Some(f), _) => f[2].parse().unwrap_or(0),
            (None, Ok(n)) => n,
            (None, Err(_)) => return Err(format!("unable to find group {g}: no matching entries in group file")),
        };
    }
    let mut groups = vec![gid];
    if !name.is_empty() {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse() {
                    groups.push(n);
                }
            }
        }
    }
    for g in extra {
        let ge = group.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 3 && f[0] == g);
        let n = match (ge, g.parse::<u32>()) {
            (Some(f), _) => f[2].parse().map_err(|_| format!("bad gid in /etc/group for {g}"))?,
            (None, Ok(n)) => n,
            (None, Err(_)) => return Err(format!("Unable to find group {g}: no matching entries in group file")),
        };
        if !groups.contains(&n) {
            groups.push(n);
        }
    }
    Ok((uid, gid, groups, if home.is_empty() { "/".into() } else { home }))
}

pub(crate) fn setup_stdio(stdio: &ChildStdio, uid: u32, gid: u32) -> Result<(), String> {
    match stdio {
        ChildStdio::Tty { sock } => open_tty_and_send(*sock, uid, gid)?,
        ChildStdio::Pipes { stdin, stdout, stderr } => {
            let null;
            let fd0 = match stdin {
                Some(fd) => *fd,
                None => {
                    null = e(fs::File::open("/dev/null"), || "open /dev/null".into())?;
                    null.as_raw_fd()
                }
            };
            e(dup2(fd0, 0), || "dup2 stdin".into())?;
            e(dup2(*stdout, 1), || "dup2 stdout".into())?;
            e(dup2(*stderr, 2), || "dup2 stderr".into())?;
            e(setsid(), || "setsid".into())?;
        }
    }
    Ok(())
}

/// Opens a pty in the current mount namespace (the container's devpts), sends the
/// master over `sock`, and makes the slave our controlling terminal and stdio.
pub fn open_tty_and_send(sock: RawFd, uid: u32, gid: u32) -> Result<(), String> {
    use nix::fcntl::OFlag;
    let master = e(nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC), || "open /dev/ptmx".into())?;
    e(nix::pty::grantpt(&master), || "grantpt".into())?;
    e(nix::pty::unlockpt(&master), || "unlockpt".into())?;
    let name = e(nix::pty::ptsname_r(&master), || "ptsname".into())?;
    let slave = e(fs::OpenOptions::new().read(true).write(true).open(&name), || format!("open {name}"))?;
    let _ = nix::unistd::chown(name.as_str(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"m")];
    e(nix::sys::socket::sendmsg::<()>(sock, &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None), || "send pty master".into())?;
    drop(master);
    e(setsid(), || "setsid".into())?;
    // SAFETY: TIOCSCTTY on an open tty fd; makes it our controlling terminal.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!("set controlling tty: {}", std::io::Error::last_os_error()));
    }
    for fd in 0..3 {
        e(dup2(slave.as_raw_fd(), fd), || "dup2 tty".into())?;
    }
    Ok(())
}

/// Receives the pty master the child sent with `ScmRights`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), nix::sys::socket::MsgFlags::empty())?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor; we are its only owner.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(std::io::Error::other("no pty master received"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below() {
        assert!(strictly_below("/etc/hosts", "/etc"));
        assert!(strictly_below("/etc/hosts", "/etc/"));
        assert!(!strictly_below("/etc/hosts", "/etc/hosts"));
        assert!(!strictly_below("/etc/hosts", "/et"));
        assert!(!strictly_below("/etc/hosts", "/etc/hosts/x"));
    }

    #[test]
    fn a_tmpfs_owner_is_the_containers_id() {
        let map = IdMap { base: 100_000, size: 65_536 };
        assert_eq!(tmpfs_owner_in("size=1m", map), "size=1m,uid=100000,gid=100000");
        assert_eq!(tmpfs_owner_in("uid=1000,mode=700", map), "uid=101000,mode=700,gid=100000");
        assert_eq!(tmpfs_owner_in("gid=5,uid=0", map), "gid=100005,uid=100000");
        assert_eq!(tmpfs_owner_in("", map), "uid=100000,gid=100000");
    }

    #[test]
    fn only_a_missing_program_exits_127() {
        assert_eq!(start_failure_code("exec: \"nope\": executable file not found in $PATH", "nope", 126), 127);
        assert_eq!(start_failure_code("exec: \"/x\": stat /x: no such file or directory", "/x", 128), 127);
        let chdir = "chdir to cwd (\"/x\") set in config.json failed: no such file or directory";
        assert_eq!(start_failure_code(chdir, "pwd", 126), 126);
        assert_eq!(start_failure_code(chdir, "pwd", 128), 128);
        assert_eq!(start_failure_code("exec: \"/etc/shadow\": permission denied", "/etc/shadow", 128), 126);
        assert_eq!(start_failure_code("exec: \"/etc\": is a directory", "/etc", 128), 128);
    }
}
