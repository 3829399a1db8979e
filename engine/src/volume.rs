//! Named volumes: `<root>/volumes/<namespace>/<name>/_data`, with `volume.json` beside
//! `_data` for driver, labels and creation time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::fsutil;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for a container's anonymous `-v /path` (removed by `rm -v`).
    #[serde(default)]
    pub anonymous: bool,
    /// Always "local": the only driver Berth has.
    #[serde(default = "local")]
    pub driver: String,
    /// Driver options as given to `volume create -o`; empty for the plain local driver.
    /// See [`crate::volume_mount`].
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(skip)]
    pub mountpoint: PathBuf,
}

fn local() -> String {
    "local".into()
}

pub struct Volumes {
    root: PathBuf,
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Volumes {
    pub fn open(root: &Path) -> Volumes {
        Volumes { root: root.join("volumes") }
    }

    fn dir(&self, ns: &str, name: &str) -> PathBuf {
        self.root.join(ns).join(name)
    }

    pub fn get(&self, ns: &str, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::NotFound(format!("get {name}: no such volume")));
        }
        let dir = self.dir(ns, name);
        let mut v: Volume = fsutil::read_json(&dir.join("volume.json"))?
            .ok_or_else(|| Error::NotFound(format!("get {name}: no such volume")))?;
        v.mountpoint = dir.join("_data");
        Ok(v)
    }

    /// Creates a volume, or returns the existing one of that name (as Docker does: the
    /// options asked for now are then not applied).
    pub fn create(
        &self,
        ns: &str,
        name: Option<&str>,
        mut labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(Volume, bool)> {
        let (name, anonymous) = match name {
            Some(n) if !n.is_empty() => (n.to_string(), false),
            _ => (fsutil::random_id(), true),
        };
        if !valid_name(&name) {
            return Err(Error::InvalidArgument(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        if let Ok(v) = self.get(ns, &name) {
            return Ok((v, false));
        }
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let dir = self.dir(ns, &name);
        fs::create_dir_all(dir.join("_data")).ctx(|| format!("create {}", dir.display()))?;
        let v = Volume {
            name,
            created: Utc::now(),
            labels,
            anonymous,
            driver: local(),
            options,
            mountpoint: dir.join("_data"),
        };
        fsutil::write_json(&dir.join("volume.json"), &v)?;
        Ok((v, true))
    }

    pub fn list(&self, ns: &str) -> Vec<Volume> {
        let Ok(rd) = fs::read_dir(self.root.join(ns)) else { return vec![] };
        let mut v: Vec<Volume> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| self.get(ns, &n).ok())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn remove(&self, ns: &str, name: &str) -> Result<()> {
        let v = self.get(ns, name)?;
        // A file system its options had mounted, left by a server that ended meanwhile.
        crate::volume_mount::unmount(&v.mountpoint);
        let dir = self.dir(ns, name);
        fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))
    }
}

/// The label Docker (23+) puts on anonymous volumes; `volume prune` without `all`
/// removes only volumes carrying it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Copies the image's content at a mount point into a new volume, as Docker does on
/// first mount, unless the volume already holds something. `layers` are the image's
/// layer dirs, top first, as overlayfs stacks them: the copy is the *merged* view
/// (upper entries hide lower ones, whiteouts hide, opaque dirs stop the descent), so
/// a file deleted or replaced by a later layer is not resurrected in the volume.
pub fn copy_up(layers: &[PathBuf], path: &str, dest: &Path) -> Result<()> {
    let rel = Path::new(path.trim_start_matches('/'));
    if fs::read_dir(dest).ctx(|| format!("read {}", dest.display()))?.next().is_some() {
        return Ok(());
    }
    let Some((first, end)) = visible_layers(layers, rel) else { return Ok(()) };
    let md = fs::symlink_metadata(layers[first].join(rel)).ctx(|| format!("stat {}", rel.display()))?;
    if !md.is_dir() {
        // A file in the image at a volume's path: Docker copies nothing either.
        return Ok(());
    }
    copy_attrs(&md, dest)?;
    copy_merged(&layers[first..end], rel, dest)
}

/// Whether the image (`layers`, top first) has a directory at `path`: what `copy_up`
/// copies from. A volume whose file system must be mounted first is mounted for that
/// only then, as dockerd does.
pub fn image_has_dir(layers: &[PathBuf], path: &str) -> bool {
    let rel = Path::new(path.trim_start_matches('/'));
    visible_layers(layers, rel).is_some_and(|(first, _)| fs::symlink_metadata(layers[first].join(rel)).is_ok_and(|md| md.is_dir()))
}

/// Copies an image's whole merged root (`layers` top first) into `dest`: a container
/// root for a host without overlayfs mounts (see `runtime::wasm`).
pub fn copy_root(layers: &[PathBuf], dest: &Path) -> Result<()> {
    copy_merged(layers, Path::new(""), dest)
}

/// The layers (a range, top first) that show something at `rel` in the merged view:
/// the first is the topmost layer holding `rel`; the range ends where a whiteout, a
/// non-directory or an opaque directory (at `rel` or an ancestor) hides lower layers.
fn visible_layers(layers: &[PathBuf], rel: &Path) -> Option<(usize, usize)> {
    let comps: Vec<_> = rel.components().collect();
    let mut first = None;
    for (i, l) in layers.iter().enumerate() {
        let mut acc = PathBuf::new();
        let mut stop = false;
        for (n, c) in comps.iter().enumerate() {
            acc.push(c);
            let Ok(md) = fs::symlink_metadata(l.join(&acc)) else { break };
            let last = n + 1 == comps.len();
            if is_whiteout(&md) {
                // Deleted in this layer: nothing below shows through.
                return first.map(|f| (f, i));
            }
            if last {
                first.get_or_insert(i);
                if !md.is_dir() {
                    return first.map(|f| (f, i + 1));
                }
            } else if !md.is_dir() {
                return first.map(|f| (f, i));
            }
            // An opaque dir shows this layer's content only, not the lower ones'.
            stop |= is_opaque(&l.join(&acc));
        }
        if stop {
            return first.map(|f| (f, i + 1));
        }
    }
    first.map(|f| (f, layers.len()))
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(p) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    let mut buf = [0u8; 4];
    // SAFETY: valid NUL-terminated strings and a buffer of the length we pass.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

/// Copies the merged directory `rel` of `layers` (top first; `rel` is a directory in
/// `layers[0]`) into `dest`.
fn copy_merged(layers: &[PathBuf], rel: &Path, dest: &Path) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, l) in layers.iter().enumerate() {
        let dir = l.join(rel);
        let Ok(md) = fs::symlink_metadata(&dir) else { continue };
        if !md.is_dir() {
            // A file or whiteout here hides the directory in every lower layer.
            break;
        }
        for e in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))?.flatten() {
            let name = e.file_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            let from = e.path();
            let to = dest.join(&name);
            let md = fs::symlink_metadata(&from).ctx(|| format!("stat {}", from.display()))?;
            if is_whiteout(&md) {
                continue;
            }
            if md.is_dir() {
                fs::create_dir(&to).ctx(|| format!("create {}", to.display()))?;
                copy_merged(if is_opaque(&from) { &layers[i..=i] } else { &layers[i..] }, &rel.join(&name), &to)?;
                copy_attrs(&md, &to)?;
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(&from).ctx(|| format!("readlink {}", from.display()))?;
                std::os::unix::fs::symlink(t, &to).ctx(|| format!("symlink {}", to.display()))?;
                use std::os::unix::fs::MetadataExt;
                let _ = std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()));
            } else if md.is_file() {
                fs::copy(&from, &to).ctx(|| format!("copy {}", from.display()))?;
                copy_attrs(&md, &to)?;
            }
            // Devices, fifos and sockets in an image's volume path are not copied.
        }
        if is_opaque(&dir) {
            break;
        }
    }
    Ok(())
}

/// Owner, permissions and modification time, as `cp -a` keeps them.
fn copy_attrs(md: &fs::Metadata, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid())).ctx(|| format!("chown {}", to.display()))?;
    fs::set_permissions(to, md.permissions()).ctx(|| format!("chmod {}", to.display()))?;
    if let Ok(m) = md.modified() {
        if let Ok(f) = fs::File::options().read(true).open(to) {
            let _ = f.set_modified(m);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_names_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::open(t.path());
        let (a, created) = v.create("default", Some("data"), BTreeMap::new(), BTreeMap::new()).unwrap();
        assert!(created);
        assert!(a.mountpoint.ends_with("volumes/default/data/_data"));
        assert!(!v.create("default", Some("data"), BTreeMap::new(), BTreeMap::new()).unwrap().1);
        assert!(v.create("default", Some("../x"), BTreeMap::new(), BTreeMap::new()).is_err());
        assert!(v.get("other", "data").is_err(), "namespaces do not share volumes");
        v.remove("default", "data").unwrap();
        assert!(v.list("default").is_empty());
    }

    #[test]
    fn anonymous_volumes_are_labelled() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::open(t.path());
        let (a, _) = v.create("default", None, BTreeMap::new(), BTreeMap::new()).unwrap();
        assert!(a.anonymous && a.labels.contains_key(ANONYMOUS_LABEL));
        assert_eq!(v.get("default", &a.name).unwrap().driver, "local");
    }

    fn whiteout(p: &Path) {
        nix::sys::stat::mknod(p, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    #[test]
    fn copy_up_copies_the_merged_view_once() {
        let t = tempfile::tempdir().unwrap();
        let (top, mid, base) = (t.path().join("top"), t.path().join("mid"), t.path().join("base"));
        for l in [&top, &mid, &base] {
            fs::create_dir_all(l.join("data/sub")).unwrap();
        }
        fs::write(base.join("data/old"), "base").unwrap();
        fs::write(base.join("data/gone"), "base").unwrap();
        fs::write(base.join("data/sub/deep"), "base").unwrap();
        fs::write(mid.join("data/old"), "mid").unwrap();
        whiteout(&mid.join("data/gone"));
        fs::write(top.join("data/new"), "top").unwrap();
        std::os::unix::fs::symlink("new", top.join("data/link")).unwrap();
        let dest = t.path().join("vol");
        fs::create_dir(&dest).unwrap();
        copy_up(&[top.clone(), mid.clone(), base.clone()], "/data", &dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("old")).unwrap(), "mid", "upper layers win");
        assert_eq!(fs::read_to_string(dest.join("new")).unwrap(), "top");
        assert_eq!(fs::read_to_string(dest.join("sub/deep")).unwrap(), "base", "lower layers show through");
        assert!(fs::symlink_metadata(dest.join("gone")).is_err(), "whiteouts hide");
        assert_eq!(fs::read_link(dest.join("link")).unwrap(), Path::new("new"));

        // A volume with content is left alone, as Docker does.
        fs::write(top.join("data/later"), "x").unwrap();
        copy_up(&[top.clone(), mid.clone(), base.clone()], "/data", &dest).unwrap();
        assert!(!dest.join("later").exists());

        // An opaque dir in the top layer hides the lower layers' entries.
        let opaque = t.path().join("opaque");
        fs::create_dir_all(opaque.join("data")).unwrap();
        fs::write(opaque.join("data/only"), "o").unwrap();
        let c = std::ffi::CString::new(opaque.join("data").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid strings and buffer.
        let rc = unsafe { libc::lsetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        let dest2 = t.path().join("vol2");
        fs::create_dir(&dest2).unwrap();
        copy_up(&[opaque, top, mid, base], "data", &dest2).unwrap();
        assert!(dest2.join("only").exists());
        if rc == 0 {
            assert!(!dest2.join("old").exists(), "opaque dirs stop the descent");
        }
        // Nothing at the path in the image: an empty volume.
        let dest3 = t.path().join("vol3");
        fs::create_dir(&dest3).unwrap();
        copy_up(&[t.path().join("top")], "/nowhere", &dest3).unwrap();
        assert_eq!(fs::read_dir(&dest3).unwrap().count(), 0);
    }
}
