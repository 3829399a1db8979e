//! Runtimes turn a [`RuntimeSpec`](crate::spec::RuntimeSpec) into a running process.
//! `linux` is the native one (namespaces, overlayfs, pty); `wasm` runs WebAssembly
//! modules under wasmtime, supervised by the same shim.

pub mod linux;
pub mod wasm;

use crate::error::{Error, Result};
use crate::image::ImageConfig;

/// `HostConfig.Runtime` of Linux containers (Docker's default name).
pub const RUNC: &str = "runc";
/// `HostConfig.Runtime` of wasm containers: containerd's shim name for wasmtime,
/// which `docker run --runtime` users know from Docker Desktop.
pub const WASMTIME: &str = "io.containerd.wasmtime.v1";
/// The runtime names `docker info` lists and `--runtime` accepts (the second is
/// containerd's name for runc, which Docker also takes).
pub const NAMES: &[&str] = &[RUNC, "io.containerd.runc.v2", WASMTIME];

/// Where `--init` puts the init inside the container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The static init `--init` runs: tini, as Docker ships it (`docker-init`, which
/// Debian's docker.io links to tini-static), from Debian's `tini` package. Static,
/// so it runs in any image (busybox has no libc to load a dynamic one).
pub fn init_binary() -> Result<std::path::PathBuf> {
    ["/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init", "/usr/local/bin/docker-init"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .ok_or_else(|| Error::InvalidArgument("--init needs a static init on the Berth host: install tini (apt-get install tini)".into()))
}

/// The start of the error for a Linux image on a host without namespaces.
pub const NO_LINUX: &str = "this Berth host cannot run Linux containers";

/// Whether this host can run Linux containers: root, and a child can get the
/// namespaces a container needs, and overlayfs is there. `Err` says what is missing.
pub fn probe_linux() -> std::result::Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("Berth does not run as root".into());
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        return Err("the kernel has no overlayfs".into());
    }
    // A throwaway child tries the unshare, so this process keeps its namespaces.
    // SAFETY: the child only makes the unshare and _exit system calls (both
    // async-signal-safe), so forking a threaded process is fine.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let flags = linux::NAMESPACES.bits();
        // SAFETY: see above.
        unsafe {
            let code = if libc::unshare(flags) == 0 { 0 } else { *libc::__errno_location() };
            libc::_exit(code.clamp(0, 255));
        }
    }
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => Err(format!("creating namespaces failed: {}", std::io::Error::from_raw_os_error(errno))),
        other => Err(format!("namespace probe: {other:?}")),
    }
}

/// Image annotation (or label) runwasi and crun use to mark a wasm image.
pub const WASM_VARIANT: &str = "module.wasm.image/variant";

/// Whether an image is made for WebAssembly: its config says architecture `wasm` or
/// a WASI os, or it carries `module.wasm.image/variant=compat` (as an annotation on
/// its manifest, which a pull keeps in `annotations`, or as a config label).
pub fn is_wasm_image(image: &ImageConfig, annotations: &std::collections::BTreeMap<String, String>) -> bool {
    let marked = |m: &std::collections::BTreeMap<String, String>| m.get(WASM_VARIANT).is_some_and(|v| v == "compat" || v == "compat-smart");
    image.architecture == "wasm" || matches!(image.os.as_str(), "wasi" | "wasip1" | "wasip2") || marked(annotations) || marked(&image.config.labels)
}

/// Picks a container's runtime: `--runtime` when given (checked against [`NAMES`]),
/// else wasmtime for `--platform wasi/wasm` or a wasm image, else runc.
pub fn select(requested: &str, platform: Option<&crate::platform::Platform>, wasm_image: bool) -> Result<&'static str> {
    if !requested.is_empty() {
        return match requested {
            RUNC | "io.containerd.runc.v2" => Ok(RUNC),
            WASMTIME => Ok(WASMTIME),
            other => Err(Error::InvalidArgument(format!("unknown or invalid runtime name: {other}"))),
        };
    }
    let wasm_platform = platform.is_some_and(crate::platform::Platform::is_wasm);
    Ok(if wasm_platform || wasm_image { WASMTIME } else { RUNC })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_choice() {
        assert_eq!(select("", None, false).unwrap(), RUNC);
        assert_eq!(select("", None, true).unwrap(), WASMTIME);
        let p = |s: &str| crate::platform::Platform::parse(s).unwrap();
        assert_eq!(select("", Some(&p("wasi/wasm")), false).unwrap(), WASMTIME);
        assert_eq!(select("", Some(&p("linux/amd64")), false).unwrap(), RUNC);
        assert_eq!(select("io.containerd.runc.v2", None, true).unwrap(), RUNC);
        assert_eq!(select(WASMTIME, None, false).unwrap(), WASMTIME);
        assert_eq!(select("crun", None, false).unwrap_err().to_string(), "unknown or invalid runtime name: crun");
    }
}
