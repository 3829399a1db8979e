//! The images a new Berth has without any internet: `busybox` made from Debian's
//! busybox-static, `hello-world`, one tiny static program that prints a greeting, and
//! `hello-wasm`, a WebAssembly module (wasm/guests, built with Berth) that greets too.

use std::io::Write;
use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::image::{Images, MEDIA_TYPE_LAYER_TAR};
use crate::store::Store;

/// Where busybox-static installs its binary on Debian.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// The `hello-wasm` seed's module (wasm/guests, wasm32-wasip1), built by engine/build.rs.
pub const HELLO_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello-wasm.wasm"));

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
const GROUP: &str = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n";

const HELLO_TEXT: &str = "
Hello from Berth!
This greeting shows that your Berth engine is working.

What just happened:
 1. The docker client asked the Berth engine to run the image \"hello-world\".
 2. The engine found the image in its store (no internet needed).
 3. It made a new container from that image and ran the program in it.
 4. The engine streamed the program's output back to your terminal.

Next, try something more interactive:
 $ docker run -it busybox sh
";

struct TarWriter {
    b: tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl TarWriter {
    fn header(&self, kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h
    }

    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, mode);
        h.set_size(0);
        self.b.append_data(&mut h, path, &[][..]).ctx(|| format!("tar {path}"))
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).ctx(|| format!("tar {path}"))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777);
        h.set_size(0);
        self.b.append_link(&mut h, path, target).ctx(|| format!("tar {path}"))
    }

    fn finish(self) -> Result<Vec<u8>> {
        self.b.into_inner().ctx(|| "finish tar".into())
    }
}

fn rfc3339(secs: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn image_config(created: &str, diff_id: &str, cmd: &[&str], layer_by: &str, env: bool) -> Vec<u8> {
    let mut config = serde_json::json!({ "Cmd": cmd });
    if env {
        config["Env"] = serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    }
    let v = serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [
            { "created": created, "created_by": layer_by },
            { "created": created, "created_by": format!("/bin/sh -c #(nop)  CMD {}", serde_json::to_string(cmd).unwrap_or_default()), "empty_layer": true },
        ],
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn store_image(store: &Store, images: &Images, layer: &[u8], created: &str, cmd: &[&str], by: &str, env: bool) -> Result<String> {
    let digest = store.put_blob(layer)?;
    let config = image_config(created, &digest, cmd, by, env);
    images.create(store, &config, &[(digest, MEDIA_TYPE_LAYER_TAR.to_string(), layer.len() as u64)])
}

/// Builds the busybox image from `busybox` (a static binary). Returns the image id.
pub fn busybox_image(store: &Store, images: &Images, busybox: &Path) -> Result<String> {
    let bin = std::fs::read(busybox).map_err(|e| {
        Error::NotFound(format!(
            "cannot read {} ({e}): install Debian's busybox-static (apt-get install busybox-static)",
            busybox.display()
        ))
    })?;
    if !is_static_elf(&bin) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a static binary: install busybox-static, not busybox",
            busybox.display()
        )));
    }
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .ctx(|| format!("run {} --list", busybox.display()))?;
    let applets = String::from_utf8_lossy(&list.stdout).to_string();
    let mtime = std::fs::metadata(busybox)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut t = TarWriter { b: tar::Builder::new(Vec::new()), mtime };
    for (d, mode) in [
        ("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("proc", 0o555),
        ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755), ("usr/sbin", 0o755),
        ("var", 0o755), ("var/www", 0o755), ("var/spool", 0o755), ("var/spool/mail", 0o755),
    ] {
        t.dir(d, mode)?;
    }
    t.file("bin/busybox", 0o755, &bin)?;
    for a in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
        if a.contains('/') {
            continue;
        }
        t.symlink(&format!("bin/{a}"), "busybox")?;
    }
    t.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    t.file("etc/group", 0o644, GROUP.as_bytes())?;
    let layer = t.finish()?;
    let version = String::from_utf8_lossy(&bin)
        .split("BusyBox v")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("unknown")
        .to_string();
    store_image(store, images, &layer, &rfc3339(mtime), &["sh"],
        &format!("/bin/sh -c #(nop) ADD file:busybox-static {version} in / "), false)
}

/// A fixed creation time (2026-11-22, when the image was first made), so the image id
/// is the same on every machine and `docker images` shows a sensible age.
const HELLO_CREATED: u64 = 1_795_305_600;

/// Builds hello-world: one static x86_64 program that writes the greeting.
pub fn hello_world_image(store: &Store, images: &Images) -> Result<String> {
    let mut t = TarWriter { b: tar::Builder::new(Vec::new()), mtime: HELLO_CREATED };
    t.file("hello", 0o755, &hello_elf(HELLO_TEXT.as_bytes()))?;
    let layer = t.finish()?;
    store_image(store, images, &layer, &rfc3339(HELLO_CREATED), &["/hello"], "/bin/sh -c #(nop) COPY file:hello in / ", false)
}

/// Builds hello-wasm: the greeting module at `/hello.wasm`, its entrypoint, with the
/// platform a wasm image has (`wasip1/wasm`), so `docker run hello-wasm` picks the
/// wasm runtime by itself.
pub fn hello_wasm_image(store: &Store, images: &Images) -> Result<String> {
    let mut t = TarWriter { b: tar::Builder::new(Vec::new()), mtime: HELLO_CREATED };
    t.file("hello.wasm", 0o755, HELLO_WASM)?;
    let layer = t.finish()?;
    let digest = store.put_blob(&layer)?;
    let created = rfc3339(HELLO_CREATED);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "created": created,
        "config": { "Entrypoint": ["/hello.wasm"] },
        "rootfs": { "type": "layers", "diff_ids": [digest] },
        "history": [
            { "created": created, "created_by": "COPY hello.wasm / # buildkit" },
            { "created": created, "created_by": "ENTRYPOINT [\"/hello.wasm\"]", "empty_layer": true },
        ],
    });
    let config = serde_json::to_vec(&config).map_err(|e| Error::InvalidArgument(format!("hello-wasm config: {e}")))?;
    images.create(store, &config, &[(digest, MEDIA_TYPE_LAYER_TAR.to_string(), layer.len() as u64)])
}

/// True when the ELF has no PT_INTERP program header (no dynamic loader needed).
fn is_static_elf(b: &[u8]) -> bool {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16le = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16le(54), u16le(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= b.len() && u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default()) != 3
    })
}

/// A minimal ELF64 x86_64 executable: write(1, msg, len); exit(0).
fn hello_elf(msg: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x400000;
    const HDRS: u64 = 64 + 56;
    let mut code = Vec::new();
    code.extend_from_slice(&[0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    code.extend_from_slice(&[0xbf, 1, 0, 0, 0]); // mov edi, 1
    code.extend_from_slice(&[0x48, 0x8d, 0x35]); // lea rsi, [rip + 16]
    code.extend_from_slice(&16u32.to_le_bytes());
    code.push(0xba); // mov edx, len
    code.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    code.extend_from_slice(&[0x31, 0xff]); // xor edi, edi
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    debug_assert_eq!(code.len(), 33);
    code.extend_from_slice(msg);
    let total = HDRS + code.len() as u64;
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    e.extend_from_slice(&[0; 8]);
    e.write_all(&2u16.to_le_bytes()).ok(); // ET_EXEC
    e.write_all(&0x3eu16.to_le_bytes()).ok(); // x86_64
    e.write_all(&1u32.to_le_bytes()).ok();
    e.write_all(&(BASE + HDRS).to_le_bytes()).ok(); // entry
    e.write_all(&64u64.to_le_bytes()).ok(); // phoff
    e.write_all(&0u64.to_le_bytes()).ok(); // shoff
    e.write_all(&0u32.to_le_bytes()).ok(); // flags
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.write_all(&v.to_le_bytes()).ok();
    }
    e.write_all(&1u32.to_le_bytes()).ok(); // PT_LOAD
    e.write_all(&5u32.to_le_bytes()).ok(); // R + X
    for v in [0u64, BASE, BASE, total, total, 0x1000] {
        e.write_all(&v.to_le_bytes()).ok();
    }
    e.extend_from_slice(&code);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn hello_elf_runs_and_prints() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("hello");
        std::fs::write(&p, hello_elf(b"hi there\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&p).output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hi there\n");
        assert!(is_static_elf(&hello_elf(b"x")));
    }
}
