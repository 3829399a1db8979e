//! The WebAssembly runtime: a container whose image is a wasm module runs it under
//! wasmtime instead of exec'ing a Linux program: a core module with WASI preview 1
//! (its `_start`, or another export), a component with WASI preview 2 (its
//! `wasi:cli/run`).
//!
//! It reuses the Linux runtime's supervision whole: the shim clones a child as for any
//! container (stdio, pty, the start handshake, logs, attach, ports and cgroups work the
//! same), and that child, once set up, execs `berth wasm-guest DIR FD` — a fresh
//! process, so wasmtime's threads and memory reservations start clean — which loads
//! the module and calls its entry point. The guest's exit code is the container's.
//!
//! On a host with namespaces the child gets the same ones a Linux container does
//! (minus a pid namespace: there is one process) and the overlay root, so networks,
//! `docker diff` and the rest behave alike. Without them (`WasmSpec::isolated` false)
//! the child runs beside the shim on a copy of the image root: WASI only reaches
//! what is preopened, so the guest still sees nothing of the host but its root and
//! its volumes.
//!
//! Start errors (no module, a file that is not wasm, a module that does not
//! validate, a missing export) are written to the shim's error pipe (`FD`) before the
//! guest runs, so `docker run` fails the way it does for a missing Linux program.
//! `docker stop`/`kill` with any signal but SIGKILL interrupt the guest through
//! wasmtime's epoch interruption, even in a loop that never calls the host.

use std::ffi::CString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::path::{self, Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::linux::{self, ChildStdio};
use crate::spec::{RuntimeSpec, WasmSpec};

/// Namespaces of an isolated wasm container: a Linux container's, without the pid
/// namespace (its one process would be an init that ignores default signals).
pub fn namespaces(new_network: bool) -> CloneFlags {
    let all = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if new_network { all | CloneFlags::CLONE_NEWNET } else { all }
}

/// The export WASI commands start at.
pub const START: &str = "_start";

/// Splits an entrypoint `module.wasm#func` into the module path and the export.
pub fn split_entry(arg0: &str) -> (&str, &str) {
    match arg0.rsplit_once('#') {
        Some((module, func)) if !func.is_empty() && !module.is_empty() => (module, func),
        _ => (arg0, START),
    }
}

/// Cgroup memory on top of `--memory` for a wasm container: the cap applies to the
/// guest's linear memory, and wasmtime with its compiled code needs room beside it.
pub const RUNTIME_ALLOWANCE: i64 = 64 << 20;

/// Exit code of a guest that trapped (wasmtime's own CLI uses the same: SIGABRT's).
pub const TRAP_EXIT: i32 = 134;

fn e<T, E: std::fmt::Display>(r: Result<T, E>, what: impl FnOnce() -> String) -> Result<T, String> {
    r.map_err(|err| format!("{}: {err}", what()))
}

/// Runs in the shim's cloned child. Never returns on success (it execs the guest
/// process); returns the exit code after writing the reason to `err_fd`.
pub fn child_main(spec: &RuntimeSpec, wasm: &WasmSpec, dir: &Path, go_fd: RawFd, err_fd: RawFd, stdio: &ChildStdio, sync_fd: Option<RawFd>) -> isize {
    match setup_and_exec(spec, wasm, dir, go_fd, err_fd, stdio, sync_fd) {
        Ok(never) => match never {},
        Err(msg) => {
            // SAFETY: err_fd is the write end of the shim's error pipe, owned by us now.
            let mut f = unsafe { fs::File::from_raw_fd(err_fd) };
            let _ = f.write_all(msg.as_bytes());
            127
        }
    }
}

fn setup_and_exec(spec: &RuntimeSpec, wasm: &WasmSpec, dir: &Path, go_fd: RawFd, err_fd: RawFd, stdio: &ChildStdio, sync_fd: Option<RawFd>) -> Result<std::convert::Infallible, String> {
    // As for a Linux container: the guest does not outlive its supervisor.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(format!("set parent death signal: {}", std::io::Error::last_os_error()));
    }
    if wasm.isolated {
        e(mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>), || "make / private".into())?;
        linux::mount_rootfs(spec, None)?;
        e(nix::unistd::sethostname(&spec.hostname), || "set hostname".into())?;
        if spec.new_network {
            linux::loopback_up()?;
        }
    } else {
        copy_root_once(spec, dir)?;
    }
    linux::setup_stdio(stdio, 0, 0)?;
    if let Some(fd) = sync_fd {
        // SAFETY: fd is our end of the shim's sync socket, open for the whole setup.
        e(nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, b"s"), || "report setup".into())?;
    }
    let mut buf = [0u8; 1];
    if nix::unistd::read(go_fd, &mut buf).unwrap_or(0) != 1 {
        return Err("start cancelled".into());
    }
    // The error pipe stays open across exec: the guest process closes it once the
    // module is loaded, or writes why it could not be.
    // SAFETY: err_fd is open (ours); F_SETFD only changes its close-on-exec flag.
    if unsafe { libc::fcntl(err_fd, libc::F_SETFD, 0) } != 0 {
        return Err(format!("keep error pipe: {}", std::io::Error::last_os_error()));
    }
    let cstr = |s: &str| CString::new(s).map_err(|_| format!("NUL in {s:?}"));
    let argv = [cstr("berth")?, cstr("wasm-guest")?, cstr(&dir.display().to_string())?, cstr(&err_fd.to_string())?];
    let env: [CString; 0] = [];
    let err = nix::unistd::execve(c"/proc/self/exe", &argv, &env).unwrap_err();
    Err(format!("exec the wasm runtime: {err}"))
}

/// A host without overlay mounts: the root is a plain copy of the image's, made at
/// the first start and kept (it is the container's writable root from then on).
fn copy_root_once(spec: &RuntimeSpec, dir: &Path) -> Result<(), String> {
    let done = dir.join("rootfs.copied");
    if done.exists() {
        return Ok(());
    }
    e(fs::create_dir_all(&spec.rootfs), || format!("create {}", spec.rootfs.display()))?;
    crate::volume::copy_root(&spec.lowerdirs, &spec.rootfs).map_err(|err| format!("copy the image root: {err}"))?;
    e(fs::write(&done, b""), || format!("write {}", done.display()))
}

/// What a core module's (WASI preview 1) store holds.
struct Guest {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// What a component's (WASI preview 2, `wasi:cli/command`) store holds.
struct ComponentGuest {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for ComponentGuest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// The guest, instantiated: calling it runs it to the end (its exit code when it
/// returns; an error for `proc_exit`, an interruption or a trap).
type Run = Box<dyn FnOnce() -> wasmtime::Result<i32>>;

/// The signal that interrupted the guest (0: none yet).
static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);

/// Signals `docker stop`/`kill` send that end the guest. SIGKILL needs no help.
const STOP_SIGNALS: &[Signal] = &[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGALRM];

/// How long an interrupted guest gets to reach a point where wasmtime checks the
/// epoch (a guest blocked in a host call, reading stdin say, never does).
const INTERRUPT_GRACE: Duration = Duration::from_millis(200);

/// Entry point of `berth wasm-guest DIR FD`: loads and runs the container's module.
/// Returns the exit code.
pub fn guest_main(dir: &Path, err_fd: RawFd) -> i32 {
    // SAFETY: the child passed its error pipe's write end as `err_fd`; nothing else in
    // this process owns it.
    let mut err_pipe = unsafe { fs::File::from_raw_fd(err_fd) };
    // Block the stop signals before any thread exists, so every thread inherits the
    // mask and only the watcher below receives them.
    let mut stops = SigSet::empty();
    for s in STOP_SIGNALS {
        stops.add(*s);
    }
    if let Err(err) = stops.thread_block() {
        let _ = write!(err_pipe, "block signals: {err}");
        return 127;
    }
    let prepared = read_spec(dir).and_then(|spec| {
        let p = prepare(&spec)?;
        confine(&spec)?;
        Ok(p)
    });
    let (engine, run) = match prepared {
        Ok(p) => p,
        Err(msg) => {
            let _ = err_pipe.write_all(msg.as_bytes());
            return 127;
        }
    };
    // EOF on the pipe: the shim reports the container started.
    drop(err_pipe);

    std::thread::spawn(move || {
        if let Ok(sig) = stops.wait() {
            INTERRUPTED_BY.store(sig as i32, Ordering::SeqCst);
            engine.increment_epoch();
            std::thread::sleep(INTERRUPT_GRACE);
            std::process::exit(128 + sig as i32);
        }
    });
    let result = run();
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(exit) = err.downcast_ref::<I32Exit>() {
                return exit.0;
            }
            if err.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                let sig = INTERRUPTED_BY.load(Ordering::SeqCst);
                return 128 + if sig > 0 { sig } else { libc::SIGTERM };
            }
            eprintln!("wasm trap: {err:?}");
            TRAP_EXIT
        }
    }
}

/// Defense in depth behind wasmtime's own sandbox, once everything the guest may
/// reach is open (the preopened directories are file descriptors): the process
/// moves into the container's root, keeps only the container's capabilities and runs
/// under its seccomp filter, so a guest that broke out of WASI would still be a
/// container's root, not the host's.
/// Without namespaces (not root) there is nothing to drop.
fn confine(spec: &RuntimeSpec) -> Result<(), String> {
    if !spec.wasm.as_ref().is_some_and(|w| w.isolated) {
        return Ok(());
    }
    let seccomp = linux::read_seccomp(&spec.security)?;
    // The bounding set first: it reads /proc, which the new root does not have.
    crate::capabilities::limit_bounding(&spec.security.capabilities)?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("set no_new_privs: {}", std::io::Error::last_os_error()));
    }
    e(nix::unistd::chroot(&spec.rootfs), || "chroot into the container root".into())?;
    e(nix::unistd::chdir("/"), || "chdir /".into())?;
    crate::capabilities::set_process(&spec.security.capabilities, true)?;
    // Last: wasmtime's own calls (memory, signals, threads) are all in Docker's profile.
    if let Some(program) = seccomp {
        crate::seccomp::install(&program)?;
    }
    Ok(())
}

fn read_spec(dir: &Path) -> Result<RuntimeSpec, String> {
    let bytes = e(fs::read(dir.join("spec.json")), || "read spec".into())?;
    e(serde_json::from_slice(&bytes), || "parse spec".into())
}

/// Loads the module or component (from the cache when it was compiled before), links
/// WASI and instantiates it: everything that can fail before the guest runs.
fn prepare(spec: &RuntimeSpec) -> Result<(Engine, Run), String> {
    let wasm = spec.wasm.as_ref().ok_or("not a wasm container")?;
    let module_path = spec.args.first().ok_or("no entrypoint")?;
    let host_path = resolve_in_root(&spec.rootfs, &spec.cwd, module_path)?;
    let bytes = fs::read(&host_path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => format!("exec: \"{module_path}\": stat {module_path}: no such file or directory"),
        _ => format!("read {module_path}: {err}"),
    })?;
    let kind = check_header(module_path, &bytes)?;

    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = e(Engine::new(&config), || "start wasmtime".into())?;
    let code = load_code(&engine, &bytes, kind, &wasm.cache_dir, module_path)?;

    let mut builder = WasiCtxBuilder::new();
    builder.inherit_stdio().allow_blocking_current_thread(true).arg(module_path).args(&spec.args[1..]);
    for kv in &spec.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        builder.env(k, v);
    }
    let perms = |readonly: bool| if readonly { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
    e(builder.preopened_dir(&spec.rootfs, "/", perms(spec.readonly_rootfs)), || "open the root".into())?;
    for m in &spec.mounts {
        e(builder.preopened_dir(&m.source, &m.destination, perms(m.readonly)), || format!("open the mount {}", m.destination))?;
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    if cwd != "/" {
        // Docker creates a missing working directory; WASI preview 1 has no current
        // directory of its own, so relative paths go through a "." preopen.
        let host_cwd = resolve_in_root(&spec.rootfs, "/", cwd)?;
        e(fs::create_dir_all(&host_cwd), || format!("create the working directory {cwd}"))?;
        e(builder.preopened_dir(&host_cwd, ".", perms(spec.readonly_rootfs)), || format!("open the working directory {cwd}"))?;
        builder.env("PWD", cwd);
        builder.initial_cwd(cwd);
    }

    let mut limits = StoreLimitsBuilder::new();
    if wasm.memory > 0 {
        limits = limits.memory_size(wasm.memory as usize);
    }
    let limits = limits.build();
    let run: Run = match code {
        Code::Module(module) => {
            let mut linker: Linker<Guest> = Linker::new(&engine);
            e(wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |g: &mut Guest| &mut g.wasi), || "link WASI".into())?;
            let mut store = Store::new(&engine, Guest { wasi: builder.build_p1(), limits });
            store.limiter(|g| &mut g.limits);
            interrupt_on_epoch(&mut store);
            let instance = linker.instantiate(&mut store, &module).map_err(|err| format!("instantiate {module_path}: {err:#}"))?;
            let func = instance
                .get_func(&mut store, &wasm.func)
                .ok_or_else(|| format!("exec: \"{module_path}#{}\": the module exports no function \"{}\"", wasm.func, wasm.func))?;
            let typed = func
                .typed::<(), ()>(&store)
                .map_err(|_| format!("exec: \"{module_path}#{}\": the export takes or returns values; an entry point takes none", wasm.func))?;
            Box::new(move || typed.call(&mut store, ()).map(|()| 0))
        }
        Code::Component(component) => {
            if wasm.func != START {
                return Err(format!("exec: \"{module_path}#{}\": a component runs its wasi:cli/run export; `#func` picks a function of a core module", wasm.func));
            }
            let mut linker = wasmtime::component::Linker::<ComponentGuest>::new(&engine);
            e(wasmtime_wasi::p2::add_to_linker_sync(&mut linker), || "link WASI".into())?;
            let mut store = Store::new(&engine, ComponentGuest { ctx: builder.build(), table: ResourceTable::new(), limits });
            store.limiter(|g| &mut g.limits);
            interrupt_on_epoch(&mut store);
            let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)
                .map_err(|err| format!("exec: \"{module_path}\": not a WASI command component: {}", root_cause(&err)))?;
            // `run` returning its error case is how a command says "exit 1".
            Box::new(move || command.wasi_cli_run().call_run(&mut store).map(|r| if r.is_ok() { 0 } else { 1 }))
        }
    };
    Ok((engine, run))
}

/// Any epoch increment (a stop signal) traps the guest at its next check.
fn interrupt_on_epoch<T>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_trap();
}

/// The host path of `path` (absolute, or relative to `cwd`) inside `root`, lexically:
/// `..` never climbs out of the root. This process reads it with the host's view of
/// the filesystem, so a symlink on the way (which could point anywhere) is refused.
fn resolve_in_root(root: &Path, cwd: &str, path: &str) -> Result<PathBuf, String> {
    let joined = if path.starts_with('/') { PathBuf::from(path) } else { Path::new(cwd).join(path) };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            path::Component::Normal(p) => parts.push(p),
            path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut out = root.to_path_buf();
    for p in parts {
        out.push(p);
        if fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("exec: \"{path}\": {} is a symlink: give the module's own path", Path::new("/").join(out.strip_prefix(root).unwrap_or(&out)).display()));
        }
    }
    Ok(out)
}

/// What a `.wasm` file holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A core module (WASI preview 1).
    Module,
    /// A component (WASI preview 2).
    Component,
}

/// A file that is not wasm fails like a Linux binary of the wrong kind.
fn check_header(path: &str, bytes: &[u8]) -> Result<Kind, String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(format!("exec: \"{path}\": exec format error: not a WebAssembly module"));
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    Ok(if bytes[6..8] == [1, 0] { Kind::Component } else { Kind::Module })
}

/// Compiled code of either kind.
enum Code {
    Module(Module),
    Component(Component),
}

/// Compiles `bytes`, or loads what an earlier run compiled. Entries are keyed by the
/// file's SHA-256 and wasmtime's compatibility hash (its version and settings).
fn load_code(engine: &Engine, bytes: &[u8], kind: Kind, cache_dir: &Path, name: &str) -> Result<Code, String> {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let key = format!("{}-{:016x}", hex::encode(Sha256::digest(bytes)), compat.finish());
    let cached = cache_dir.join(format!("{key}.cwasm"));
    if cached.exists() {
        // SAFETY: the file is one this function serialized with this wasmtime (the key
        // includes its compatibility hash and the file's own), in a directory only the
        // engine writes.
        let loaded = unsafe {
            match kind {
                Kind::Module => Module::deserialize_file(engine, &cached).map(Code::Module),
                Kind::Component => Component::deserialize_file(engine, &cached).map(Code::Component),
            }
        };
        if let Ok(code) = loaded {
            return Ok(code);
        }
    }
    let invalid = |err: wasmtime::Error| format!("exec: \"{name}\": invalid WebAssembly module: {}", root_cause(&err));
    let (code, serialized) = match kind {
        Kind::Module => {
            let m = Module::new(engine, bytes).map_err(invalid)?;
            let ser = m.serialize();
            (Code::Module(m), ser)
        }
        Kind::Component => {
            let c = Component::new(engine, bytes).map_err(invalid)?;
            let ser = c.serialize();
            (Code::Component(c), ser)
        }
    };
    // A failed cache write only costs the next run a compile.
    if let Ok(ser) = serialized {
        let _ = fs::create_dir_all(cache_dir);
        let _ = crate::fsutil::write_atomic(&cached, &ser);
    }
    Ok(code)
}

fn root_cause(err: &wasmtime::Error) -> String {
    err.chain().last().map(|c| c.to_string()).unwrap_or_else(|| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_forms() {
        assert_eq!(split_entry("/app.wasm"), ("/app.wasm", START));
        assert_eq!(split_entry("/app.wasm#greet"), ("/app.wasm", "greet"));
        assert_eq!(split_entry("/app.wasm#"), ("/app.wasm#", START));
        assert_eq!(split_entry("#x"), ("#x", START));
    }

    #[test]
    fn paths_stay_in_the_root() {
        let root = Path::new("/r");
        assert_eq!(resolve_in_root(root, "/", "/../../etc/passwd").unwrap(), Path::new("/r/etc/passwd"));
        assert_eq!(resolve_in_root(root, "/app", "x.wasm").unwrap(), Path::new("/r/app/x.wasm"));
    }

    #[test]
    fn headers() {
        assert!(check_header("/a", b"\x7fELF\x02\x01\x01\x00").unwrap_err().contains("exec format error"));
        assert_eq!(check_header("/a", b"\0asm\x0d\x00\x01\x00").unwrap(), Kind::Component);
        assert_eq!(check_header("/a", b"\0asm\x01\x00\x00\x00").unwrap(), Kind::Module);
    }
}
