//! `docker commit`, and the image-making primitives the builder shares with it:
//! a container's upper dir becomes a layer blob, and a child image is recorded on top
//! of its parent's layers without unpacking those again.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Engine;
use crate::error::{Context, Error, Result};
use crate::image::{History, ImageConfig, MEDIA_TYPE_LAYER_TAR};
use crate::reference::Reference;
use crate::userns::IdMap;

/// Files the runtime bind-mounts over the rootfs: their stand-ins in the upper dir
/// are not the container's changes, and Docker leaves them out of commits too.
pub(crate) const MOUNT_STANDINS: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// What `docker commit` asks for besides the container.
#[derive(Debug, Default, Clone)]
pub struct CommitOptions {
    /// `repo[:tag]`, or none for a dangling image.
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    /// Dockerfile instructions applied to the config (`--change`).
    pub changes: Vec<String>,
}

/// Writes an overlayfs upper dir as a layer tar: whiteouts (0/0 char devices) become
/// `.wh.NAME` files and opaque directories get a `.wh..wh..opq` entry, the AUFS
/// convention image layers use. The upper dir of a container in a user namespace
/// holds host ids: `userns` shifts them back to the container's. As Docker's
/// `pkg/archive` does, files linked more than once become one file and hard links
/// to it, and extended attributes (file capabilities) go in PAX records.
pub(crate) fn tar_upper<W: Write>(upper: &Path, userns: Option<IdMap>, out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let io_err = |e: io::Error| Error::Io { context: format!("tar {}", upper.display()), source: e };
    // (device, inode) of files with more than one link → the first name written.
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        // Reverse so the stack pops in name order.
        let mut subdirs = Vec::new();
        for e in entries {
            let relp = rel.join(e.file_name());
            let abs = e.path();
            let md = abs.symlink_metadata().ctx(|| format!("stat {}", abs.display()))?;
            let rel_s = relp.to_string_lossy().to_string();
            if md.file_type().is_char_device() && md.rdev() == 0 {
                let wh = rel.join(format!(".wh.{}", e.file_name().to_string_lossy()));
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o600);
                h.set_mtime(md.mtime().max(0) as u64);
                b.append_data(&mut h, &wh, io::empty()).map_err(io_err)?;
                continue;
            }
            if md.is_file() && md.len() == 0 && MOUNT_STANDINS.contains(&rel_s.as_str()) {
                continue;
            }
            if md.is_dir() {
                append_entry(&mut b, &abs, &relp, &md, userns).map_err(io_err)?;
                if crate::xattrs::is_opaque(&abs) {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(0);
                    h.set_mode(0o600);
                    b.append_data(&mut h, relp.join(".wh..wh..opq"), io::empty()).map_err(io_err)?;
                }
                subdirs.push(relp);
            } else if let Some(first) = (md.is_file() && md.nlink() > 1).then(|| linked.get(&(md.dev(), md.ino()))).flatten() {
                let mut h = tar::Header::new_gnu();
                h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
                if let Some(m) = userns {
                    h.set_uid(m.to_container(md.uid()) as u64);
                    h.set_gid(m.to_container(md.gid()) as u64);
                }
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, &relp, first).map_err(io_err)?;
            } else {
                if md.is_file() && md.nlink() > 1 {
                    linked.insert((md.dev(), md.ino()), relp.clone());
                }
                append_entry(&mut b, &abs, &relp, &md, userns).map_err(io_err)?;
            }
        }
        subdirs.reverse();
        stack.extend(subdirs);
    }
    b.into_inner().map_err(io_err)
}

/// One file, directory, link or node of an upper dir, as the tar crate would write it
/// (`append_path_with_name`), with its ids shifted by `userns`.
fn append_entry<W: Write>(b: &mut tar::Builder<W>, abs: &Path, rel: &Path, md: &fs::Metadata, userns: Option<IdMap>) -> io::Result<()> {
    crate::xattrs::append_pax(b, &crate::xattrs::for_layer(abs)?)?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(md, tar::HeaderMode::Complete);
    if let Some(m) = userns {
        h.set_uid(m.to_container(md.uid()) as u64);
        h.set_gid(m.to_container(md.gid()) as u64);
    }
    if md.file_type().is_char_device() || md.file_type().is_block_device() {
        // `set_metadata` leaves them 0, and a 0/0 character device is a whiteout.
        h.set_device_major(nix::sys::stat::major(md.rdev()) as u32)?;
        h.set_device_minor(nix::sys::stat::minor(md.rdev()) as u32)?;
    }
    if md.file_type().is_symlink() {
        b.append_link(&mut h, rel, fs::read_link(abs)?)
    } else if md.is_file() {
        // Sized by the header: a file that changes meanwhile cannot overrun it.
        let len = md.len();
        b.append_data(&mut h, rel, fs::File::open(abs)?.take(len).chain(io::repeat(0)).take(len))
    } else {
        b.append_data(&mut h, rel, io::empty())
    }
}

impl Engine {
    /// The directory of a container's changes.
    pub(crate) fn container_upper(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id).join("upper")
    }

    /// A container's changes as a layer blob: (digest, size).
    pub(crate) fn container_layer(&self, c: &crate::container::Container) -> Result<(String, u64)> {
        let upper = self.container_upper(&c.id);
        self.store_layer(|f| tar_upper(&upper, c.userns, f).map(|_| ()))
    }

    /// The unpacked layer dirs of an image, top first (what overlayfs stacks).
    pub(crate) fn image_layer_dirs(&self, id: &str) -> Result<Vec<PathBuf>> {
        let rec = self.images.record(id)?;
        rec.layers.iter().rev().map(|l| self.store.layer_dir(&l.chain_id)).collect()
    }

    /// Stores an uncompressed layer tar written by `write` as a blob: (digest, size).
    /// The digest is also the diff id, since the tar is not compressed. The tar goes
    /// through a pipe straight into the store (hashed on the way), never through an
    /// extra temp file.
    pub(crate) fn store_layer(&self, write: impl FnOnce(&mut dyn Write) -> Result<()> + Send) -> Result<(String, u64)> {
        let (reader, mut writer) = io::pipe().ctx(|| "create pipe".into())?;
        std::thread::scope(|s| {
            let w = s.spawn(move || {
                let r = write(&mut writer);
                // Closing the pipe is the end of the tar for the reader.
                drop(writer);
                r
            });
            let stored = self.store.put_blob_from(reader, None);
            let wrote = w.join().unwrap_or_else(|_| Err(Error::Runtime("the layer writer panicked".into())));
            // A writer that failed half-way may have left a truncated blob behind:
            // unreferenced, so garbage, but never part of an image.
            wrote?;
            stored
        })
    }

    /// Records an image made of `parent`'s layers (none for scratch) plus an optional
    /// new layer blob, with `config` (whose diff ids must already list that layer).
    /// `Images::create` unpacks only the new layer: the parent's are on disk already.
    /// Returns the image id.
    pub(crate) fn create_child_image(&self, parent: Option<&str>, config: &ImageConfig, layer: Option<(String, u64)>) -> Result<String> {
        self.create_child_image_with(parent, config, layer.map(|(digest, size)| (digest, MEDIA_TYPE_LAYER_TAR.to_string(), size)))
    }

    /// [`Engine::create_child_image`] with a layer blob of any media type (digest,
    /// media type, size): one another image already has, maybe compressed.
    pub(crate) fn create_child_image_with(&self, parent: Option<&str>, config: &ImageConfig, layer: Option<(String, String, u64)>) -> Result<String> {
        let mut layers: Vec<(String, String, u64)> = match parent {
            Some(p) => self.images.record(p)?.layers.into_iter().map(|l| (l.digest, l.media_type, l.size)).collect(),
            None => vec![],
        };
        layers.extend(layer);
        let bytes = serde_json::to_vec(config).ctx(|| "encode image config".into())?;
        self.images.create(&self.store, &bytes, &layers)
    }

    /// Makes an image visible in a namespace while a build step runs a container on
    /// it. Returns whether it was added (and so must be released afterwards).
    pub(crate) fn hold_image(&self, ns: &str, id: &str) -> Result<bool> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.images.namespace(ns)?;
        if idx.images.contains_key(id) {
            return Ok(false);
        }
        idx.images.insert(id.to_string(), chrono::Utc::now());
        self.images.save_namespace(ns, &idx)?;
        Ok(true)
    }

    /// Undoes [`Engine::hold_image`], unless a tag points at the image meanwhile.
    pub(crate) fn release_image(&self, ns: &str, id: &str) -> Result<()> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.images.namespace(ns)?;
        if !idx.tags.values().any(|v| v == id) {
            idx.images.remove(id);
            self.images.save_namespace(ns, &idx)?;
        }
        Ok(())
    }

    /// Keeps a build step's image as Docker's classic builder does: in the namespace,
    /// untagged (`docker images` hides it while another image is built on it, `-a`
    /// lists it, `docker history` shows its id, a failed build leaves its finished
    /// steps), with the image it was made on as its `Parent` (none for a step on
    /// `FROM scratch`). A step served from the cache is kept again, which changes
    /// nothing on disk when it is there already.
    pub(crate) fn keep_build_step(&self, ns: &str, id: &str, parent: Option<&str>) -> Result<()> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = parent {
            self.images.set_parent(id, p)?;
        }
        self.images.tag(ns, id, None)?;
        Ok(())
    }

    /// Points tags at a built or committed image in a namespace (none: dangling).
    pub(crate) fn tag_built(&self, ns: &str, id: &str, tags: &[Reference]) -> Result<()> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.images.tag(ns, id, None)?;
        for r in tags {
            self.images.tag(ns, id, Some(r))?;
            self.emit(ns, "image", "tag", id, &[("name", &r.familiar())]);
        }
        Ok(())
    }

    /// `docker commit`: the container's changes become a layer on top of its image,
    /// with `--change` instructions applied to the config. Returns the image id.
    pub fn commit(self: &Arc<Self>, ns: &str, container: &str, opts: &CommitOptions) -> Result<String> {
        self.check_disk(ns)?;
        let reference = opts.reference.as_deref().filter(|r| !r.is_empty()).map(Reference::parse).transpose()?;
        if reference.as_ref().is_some_and(|r| r.digest.is_some()) {
            return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
        }
        let c = self.container(ns, container)?;
        let mut config = self.images.config(&self.store, &c.image)?;
        // The container's own settings become the image's defaults, as in Docker.
        let run = &mut config.config;
        run.env = c.config.env.clone();
        run.cmd = Some(c.config.cmd.clone()).filter(|v| !v.is_empty());
        run.entrypoint = c.config.entrypoint.clone();
        run.working_dir = c.config.working_dir.clone();
        run.user = c.config.user.clone();
        run.labels = c.config.labels.clone();
        run.exposed_ports = c.config.exposed_ports.clone();
        // Its health check (already merged with the image's), in the builder's place.
        if let Some(h) = &c.config.healthcheck {
            run.extra.insert("Healthcheck".into(), serde_json::to_value(h).map_err(|e| Error::Runtime(e.to_string()))?);
        }
        crate::archive::apply_changes(run, &opts.changes)?;
        let (digest, size) = self.container_layer(&c)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        config.created = Some(now.clone());
        config.author = Some(opts.author.clone()).filter(|a| !a.is_empty());
        config.rootfs.diff_ids.push(digest.clone());
        config.history.push(History {
            created: Some(now),
            created_by: Some(format!("{} {}", c.path, c.args.join(" ")).trim().to_string()),
            author: config.author.clone(),
            comment: Some(opts.comment.clone()).filter(|m| !m.is_empty()),
            empty_layer: false,
        });
        if !opts.comment.is_empty() {
            config.extra.insert("comment".into(), serde_json::json!(opts.comment));
        }
        let id = self.create_child_image(Some(&c.image), &config, Some((digest, size)))?;
        // Docker's `Parent` of a commit: the container's image.
        self.images.set_parent(&id, &c.image)?;
        self.tag_built(ns, &id, reference.as_slice())?;
        let name = reference.as_ref().map(Reference::familiar).unwrap_or_default();
        self.emit_container(&c, "commit", &[("imageName", &name)]);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// cap_net_raw+ep as `vfs_ns_cap_data` (v3) with root id 100000, as a setcap in
    /// a user namespace leaves it on the upper dir.
    fn net_raw_v3() -> Vec<u8> {
        let mut v = vec![0x01, 0, 0, 0x03, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&100000u32.to_le_bytes());
        v
    }

    /// What the tar carries comes back from unpacking: capabilities (as v2), other
    /// attributes, set-id and sticky bits, hard links, device nodes and FIFOs, long
    /// names and link targets, sparse files (as their content).
    #[test]
    fn upper_dir_round_trips_what_files_carry() {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let t = tempfile::tempdir().unwrap();
        let upper = t.path().join("upper");
        let long_dir = upper.join("l".repeat(120)).join("m".repeat(120));
        fs::create_dir_all(&long_dir).unwrap();
        fs::create_dir_all(upper.join("bin")).unwrap();
        fs::write(upper.join("bin/ping"), b"elf").unwrap();
        xattr::set(upper.join("bin/ping"), "security.capability", &net_raw_v3()).unwrap();
        xattr::set(upper.join("bin/ping"), "user.note", b"kept").unwrap();
        xattr::set(upper.join("bin/ping"), "trusted.overlay.origin", b"x").unwrap();
        fs::write(upper.join("bin/su"), b"su").unwrap();
        fs::set_permissions(upper.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::create_dir(upper.join("tmp")).unwrap();
        fs::set_permissions(upper.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::hard_link(upper.join("bin/ping"), upper.join("bin/ping6")).unwrap();
        fs::hard_link(upper.join("bin/ping"), long_dir.join("ping-too")).unwrap();
        mknod(&upper.join("null"), SFlag::S_IFCHR, Mode::empty(), makedev(1, 3)).unwrap();
        fs::set_permissions(upper.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
        mknod(&upper.join("loop9"), SFlag::S_IFBLK, Mode::from_bits_truncate(0o660), makedev(7, 9)).unwrap();
        nix::unistd::mkfifo(&upper.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let target = format!("/{}", "t".repeat(200));
        std::os::unix::fs::symlink(&target, upper.join("link")).unwrap();
        let sparse = fs::File::create(upper.join("sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&sparse, b"end", (1 << 20) - 3).unwrap();
        drop(sparse);

        let bytes = tar_upper(&upper, None, Vec::new()).unwrap();
        let back = t.path().join("back");
        fs::create_dir_all(&back).unwrap();
        crate::store::unpack_tar(&bytes[..], &back).unwrap();

        let caps = xattr::get(back.join("bin/ping"), "security.capability").unwrap().unwrap();
        assert_eq!(caps, crate::xattrs::capability_v2(net_raw_v3()));
        assert_eq!(xattr::get(back.join("bin/ping"), "user.note").unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(xattr::get(back.join("bin/ping"), "trusted.overlay.origin").unwrap(), None);
        assert_eq!(fs::metadata(back.join("bin/su")).unwrap().mode() & 0o7777, 0o4755);
        assert_eq!(fs::metadata(back.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
        let ino = fs::metadata(back.join("bin/ping")).unwrap().ino();
        assert_eq!(fs::metadata(back.join("bin/ping6")).unwrap().ino(), ino);
        let long_back = back.join("l".repeat(120)).join("m".repeat(120));
        assert_eq!(fs::metadata(long_back.join("ping-too")).unwrap().ino(), ino);
        assert_eq!(fs::metadata(back.join("bin/ping")).unwrap().nlink(), 3);
        let null = fs::symlink_metadata(back.join("null")).unwrap();
        assert!(null.file_type().is_char_device() && null.rdev() == makedev(1, 3), "{null:?}");
        assert_eq!(null.mode() & 0o7777, 0o666);
        let blk = fs::symlink_metadata(back.join("loop9")).unwrap();
        assert!(blk.file_type().is_block_device() && blk.rdev() == makedev(7, 9));
        assert!(fs::symlink_metadata(back.join("fifo")).unwrap().file_type().is_fifo());
        assert_eq!(fs::read_link(back.join("link")).unwrap(), Path::new(&target));
        let content = fs::read(back.join("sparse")).unwrap();
        assert_eq!(content.len(), 1 << 20);
        assert!(content.ends_with(b"end") && content[..(1 << 20) - 3].iter().all(|&b| b == 0));
    }

    /// Overlay whiteouts and opaque dirs in an upper dir come out as AUFS-style
    /// `.wh.` entries, which `store::unpack_tar` turns back into overlay ones.
    #[test]
    fn upper_dir_whiteouts_become_wh_files() {
        let t = tempfile::tempdir().unwrap();
        let upper = t.path().join("upper");
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(upper.join("opaque")).unwrap();
        fs::write(upper.join("etc/new"), b"x").unwrap();
        fs::write(upper.join("etc/hostname"), b"").unwrap();
        nix::sys::stat::mknod(&upper.join("etc/gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).expect("mknod (needs root)");
        let opaque_ok = {
            use std::os::unix::ffi::OsStrExt;
            let p = std::ffi::CString::new(upper.join("opaque").as_os_str().as_bytes()).unwrap();
            let n = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
            // SAFETY: NUL-terminated strings, a one-byte value.
            unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) == 0 }
        };
        let bytes = tar_upper(&upper, None, Vec::new()).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"etc/.wh.gone".to_string()), "{names:?}");
        assert!(names.contains(&"etc/new".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n == "etc/hostname"), "mount stand-ins are left out: {names:?}");
        if opaque_ok {
            assert!(names.contains(&"opaque/.wh..wh..opq".to_string()), "{names:?}");
        }
        let back = t.path().join("back");
        fs::create_dir_all(&back).unwrap();
        crate::store::unpack_tar(&bytes[..], &back).unwrap();
        assert!(fs::symlink_metadata(back.join("etc/gone")).unwrap().file_type().is_char_device());
    }
}
