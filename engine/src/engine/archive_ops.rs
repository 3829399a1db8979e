//! `docker cp`: stat a path in a container, read it as a tar, extract a tar into it.
//!
//! Every operation runs on a dedicated thread that first unshares its filesystem
//! context and mount namespace, then `chroot`s into the container's root: for a
//! running container that is its init's root (`/proc/<pid>/root`, with the volumes
//! mounted in its namespace); for a stopped one, the container's overlay and mounts
//! assembled in the thread's private mount namespace (gone when the thread ends, so
//! nothing leaks into the host even on a panic). Inside the chroot the kernel itself
//! resolves `..` and symlinks, absolute ones included, against the container's root:
//! no path, and no symlink a container process plants or swaps, can reach the host.
//!
//! Extraction (`docker cp` into a container) runs in a process of its own, `berth
//! cp-extract`, rather than a thread: the memory its writes take (a tmpfs's pages,
//! page cache) is charged to the cgroup of the process that writes, and in a lab
//! session that must be the session's envelope, not the server. Outside labs the
//! helper stays in the server's cgroup, as dockerd's own writes do.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};

use chrono::{DateTime, Utc};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::cgroup::Cgroup;
use crate::container::{Container, Status};
use crate::error::{Context, Error, Result};
use crate::fsutil;
use crate::spec::Limits;
use crate::userns::IdMap;

/// Docker's `PathStat`, sent base64-encoded in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits (type in the high bits), which the CLI decodes.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// A tar stream being produced by a container thread; ends with an error if reading
/// the container's files failed half-way, so the client sees a broken stream, not a
/// silently short one.
pub struct ArchiveReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ArchiveReader {
    /// The next chunk of the tar, `None` at the end.
    pub fn next_chunk(&mut self) -> Option<io::Result<Vec<u8>>> {
        if self.pos < self.buf.len() {
            let rest = self.buf.split_off(self.pos);
            self.buf.clear();
            self.pos = 0;
            return Some(Ok(rest));
        }
        self.rx.recv().ok()
    }
}

impl Read for ArchiveReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The writing end: buffers into 64 KiB chunks for the reader.
struct ChunkWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        // The reader went away (client disconnected): stop walking the tree.
        self.tx.send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "archive reader closed"))
    }
}

/// How to reach a container's root from a fresh thread (or the extract helper).
#[derive(Serialize, Deserialize)]
struct RootSource {
    root: Root,
    /// The container's user namespace mapping: its files are seen (and written) with
    /// host ids, shifted back and forth by this (see `userns`).
    userns: Option<IdMap>,
}

#[derive(Serialize, Deserialize)]
enum Root {
    /// A running container: its init's root, mounts included.
    Proc(i32),
    /// A stopped container: its overlay on `target`, its mounts bound inside.
    Overlay { target: PathBuf, options: String, lowers: Vec<PathBuf>, binds: Vec<(PathBuf, String, bool)> },
}

impl RootSource {
    /// Confines the calling thread to the container's root. Only ever called on a
    /// thread of our own (or in the extract helper) that ends after the operation: it
    /// keeps the changes.
    fn enter(&self) -> Result<()> {
        // CLONE_FS: root and cwd private to this thread; CLONE_NEWNS: mounts too.
        unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).ctx(|| "unshare".into())?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).ctx(|| "make mounts private".into())?;
        // The mapping of a stopped container's layers and binds, as its runtime makes it.
        let ns = match (&self.root, self.userns) {
            (Root::Overlay { .. }, Some(map)) => Some(crate::userns::create(map).map_err(|e| Error::Runtime(format!("make the container's user namespace: {e}")))?),
            _ => None,
        };
        let root = match &self.root {
            Root::Proc(pid) => PathBuf::from(format!("/proc/{pid}/root")),
            Root::Overlay { target, options, lowers, binds } => {
                if let Some(ns) = &ns {
                    for l in lowers {
                        crate::userns::shift_in_place(l, ns.as_fd()).map_err(Error::Runtime)?;
                    }
                }
                mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
                    .ctx(|| format!("mount overlay on {}", target.display()))?;
                for (src, dest, ro) in binds {
                    let at = resolve_in_scope(target, dest);
                    if fs::symlink_metadata(&at).is_err() {
                        // Create the mount point like the runtime does at start.
                        if src.is_dir() {
                            fs::create_dir_all(&at).ctx(|| format!("create {}", at.display()))?;
                        } else {
                            if let Some(p) = at.parent() {
                                fs::create_dir_all(p).ctx(|| format!("create {}", p.display()))?;
                            }
                            fs::File::create(&at).ctx(|| format!("create {}", at.display()))?;
                        }
                    }
                    if let Some(ns) = &ns {
                        let attrs = if *ro { libc::MOUNT_ATTR_RDONLY } else { 0 };
                        if crate::userns::bind_mapped(src, ns.as_fd(), attrs, &at).map_err(Error::Runtime)? {
                            continue;
                        }
                    }
                    mount(Some(src), &at, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                        .ctx(|| format!("bind {} on {}", src.display(), at.display()))?;
                    if *ro {
                        mount(None::<&str>, &at, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)
                            .ctx(|| format!("remount {} read-only", at.display()))?;
                    }
                }
                target.clone()
            }
        };
        nix::unistd::chroot(&root).ctx(|| format!("chroot {}", root.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
        if let Some(map) = self.userns {
            write_as_container_root(map)?;
        }
        Ok(())
    }
}

/// Makes this thread create files as the container's root (host id `base`), which is
/// what idmapped volumes accept (the host's root is not in their mapping); its
/// capabilities over files, which the switch clears, come back (this thread only).
fn write_as_container_root(map: IdMap) -> Result<()> {
    // SAFETY: plain syscalls on this thread's own credentials.
    unsafe {
        libc::setfsgid(map.base);
        libc::setfsuid(map.base);
    }
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(|e| Error::Runtime(format!("read capabilities: {e}")))?;
    caps::set(None, caps::CapSet::Effective, &permitted).map_err(|e| Error::Runtime(format!("restore capabilities: {e}")))
}

/// Resolves `path` under `root` following symlinks as if `root` were `/`
/// (Docker's FollowSymlinkInScope); for mount points assembled before the chroot.
fn resolve_in_scope(root: &Path, path: &str) -> PathBuf {
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: Vec<std::ffi::OsString> = Path::new(path).components().rev().filter_map(comp_name).collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = done.iter().collect::<PathBuf>().join(&c);
        let full = root.join(&here);
        match fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() && links < 255 => {
                links += 1;
                let Ok(t) = fs::read_link(&full) else { done.push(c); continue };
                if t.is_absolute() {
                    done.clear();
                }
                todo.extend(t.components().rev().filter_map(comp_name));
            }
            _ => done.push(c),
        }
    }
    root.join(done.iter().collect::<PathBuf>())
}

fn comp_name(c: Component<'_>) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// Go's `filepath.Base`: the last element, "." for `/x/.`, "/" for `/`.
fn go_base(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// The path as Docker sees it in the container: absolute, cleaned, but keeping a
/// trailing `/` or `/.` that changes what `cp` does.
fn container_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut abs = format!("/{}", parts.join("/"));
    if abs != "/" {
        if path.ends_with("/.") || path == "." {
            abs.push_str("/.");
        } else if path.ends_with('/') {
            abs.push('/');
        }
    }
    abs
}

/// Go's `os.FileMode` for a unix mode.
fn go_mode(mode: u32) -> u32 {
    let mut out = mode & 0o777;
    out |= match mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        out |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        out |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        out |= 1 << 20;
    }
    out
}

fn not_found(path: &str, container: &str) -> Error {
    Error::NotFound(format!("Could not find the file {path} in container {container}"))
}

/// lstat inside the chroot, with "no such file" turned into Docker's message.
fn lstat(abs: &str, shown: &str, container: &str) -> Result<fs::Metadata> {
    fs::symlink_metadata(abs).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => not_found(shown, container),
        _ => Error::Io { context: format!("stat {abs}"), source: e },
    })
}

/// Stat of `abs` (already confined): the final element is not followed, but a
/// symlink's fully resolved target is reported, as Docker does.
fn stat_in_root(abs: &str, shown: &str, container: &str) -> Result<PathStat> {
    let md = lstat(abs, shown, container)?;
    let link_target = if md.file_type().is_symlink() {
        fs::canonicalize(abs).map(|p| p.display().to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let mtime = DateTime::<Utc>::from(md.modified().unwrap_or(std::time::UNIX_EPOCH));
    Ok(PathStat {
        name: go_base(abs),
        size: md.len() as i64,
        mode: go_mode(md.mode()),
        mtime: mtime.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        link_target,
    })
}

/// Appends an entry with `name` written exactly as given. The tar crate's path
/// setters normalise `./x` to `x`, but the CLI rebases entries by replacing the first
/// occurrence of the source's base name (`.` for `cp c:/dir/. dest`), so names must
/// keep Docker's form. Names too long for the header go in a GNU long-name entry.
fn append_named<W: Write>(b: &mut tar::Builder<W>, h: &mut tar::Header, name: &str, link: Option<&[u8]>, data: impl Read) -> io::Result<()> {
    let long = |b: &mut tar::Builder<W>, kind: tar::EntryType, value: &[u8]| -> io::Result<()> {
        let mut lh = tar::Header::new_gnu();
        lh.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        lh.set_mode(0o644);
        lh.set_entry_type(kind);
        let mut v = value.to_vec();
        v.push(0);
        lh.set_size(v.len() as u64);
        lh.set_cksum();
        b.append(&lh, &v[..])
    };
    let bytes = name.as_bytes();
    if bytes.len() > 100 {
        long(b, tar::EntryType::GNULongName, bytes)?;
    }
    let old = h.as_old_mut();
    old.name = [0; 100];
    let n = bytes.len().min(100);
    old.name[..n].copy_from_slice(&bytes[..n]);
    if let Some(target) = link {
        if target.len() > 100 {
            long(b, tar::EntryType::GNULongLink, target)?;
        }
        old.linkname = [0; 100];
        let n = target.len().min(100);
        old.linkname[..n].copy_from_slice(&target[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

/// Writes `src` (and, for a directory, everything below it) as tar entries named
/// from `name`; symlinks are archived as links, sockets skipped (as Go's tar does).
///
/// With `userns`, the tree's host ids are written as the container's. With
/// `one_fs`, what is mounted over the tree from another device is written as its
/// empty mount point (a directory, or a file), as the tree has it below the mount.
fn append_tree<W: Write>(b: &mut tar::Builder<W>, src: &Path, name: &str, userns: Option<IdMap>, one_fs: Option<u64>) -> io::Result<()> {
    let md = fs::symlink_metadata(src)?;
    let mount_point = one_fs.is_some_and(|dev| md.dev() != dev);
    let ft = md.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    let id = |v: u32| userns.map_or(v, |m| m.to_container(v)) as u64;
    h.set_uid(id(md.uid()));
    h.set_gid(id(md.gid()));
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        let dir_name = if name.ends_with('/') { name.to_string() } else { format!("{name}/") };
        append_named(b, &mut h, &dir_name, None, io::empty())?;
        if mount_point {
            return Ok(());
        }
        let mut entries: Vec<_> = fs::read_dir(src)?.collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let child = e.file_name();
            let child_name = format!("{}/{}", name.trim_end_matches('/'), child.to_string_lossy());
            append_tree(b, &e.path(), &child_name, userns, one_fs)?;
        }
    } else if mount_point {
        if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            append_named(b, &mut h, name, None, io::empty())?;
        }
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(src)?;
        append_named(b, &mut h, name, Some(target.as_os_str().as_encoded_bytes()), io::empty())?;
    } else if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        let f = fs::File::open(src)?;
        // A file growing while we read it must not overrun its header's size; one
        // shrinking is padded with zeros so the archive stays well-formed.
        append_named(b, &mut h, name, None, f.take(md.len()).chain(io::repeat(0)).take(md.len()))?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        });
        let rdev = md.rdev();
        h.set_device_major(libc::major(rdev))?;
        h.set_device_minor(libc::minor(rdev))?;
        append_named(b, &mut h, name, None, io::empty())?;
    }
    Ok(())
}

/// `tar` entry path made relative and clean; `None` if it climbs out with `..`.
fn clean_entry(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// Where and how to extract: Docker's `TarOptions` subset that `cp` uses.
struct Extract {
    dest: PathBuf,
    no_overwrite_dir_non_dir: bool,
    /// `cp -a`: every entry owned by the container's user instead of the tar's ids.
    chown: Option<(u32, u32)>,
    /// The container's user namespace: the tar's (container) ids are written as host
    /// ids shifted into its range.
    userns: Option<IdMap>,
}

fn extract(opts: &Extract, content: Box<dyn Read + Send>) -> Result<()> {
    let mut content = io::BufReader::new(content);
    // The API accepts compressed archives too; the CLI sends plain tar.
    let gz = {
        use std::io::BufRead;
        let head = content.fill_buf().ctx(|| "read archive".into())?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(content)) } else { Box::new(content) };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_preserve_ownerships(opts.chown.is_none() && opts.userns.is_none());
    ar.set_overwrite(true);
    let bad = |e: io::Error| Error::InvalidArgument(format!("Error processing tar file: {e}"));
    // Directory times are set last: extracting into a directory changes its mtime.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(rel) = clean_entry(&raw) else {
            return Err(Error::InvalidArgument(format!("{:?} is outside of {:?}", raw.display().to_string(), opts.dest.display().to_string())));
        };
        let path = opts.dest.join(&rel);
        let kind = entry.header().entry_type();
        let is_dir = kind.is_dir();
        if rel.as_os_str().is_empty() {
            // The archive's "." entry: the destination itself, which exists.
            continue;
        }
        if let Some(parent) = path.parent() {
            if fs::symlink_metadata(parent).is_err() {
                fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
            }
        }
        if let Ok(existing) = fs::symlink_metadata(&path) {
            let shown_dest = opts.dest.join(&rel).display().to_string();
            if opts.no_overwrite_dir_non_dir {
                if existing.is_dir() && !is_dir {
                    return Err(Error::InvalidArgument(format!("cannot overwrite directory {shown_dest:?} with non-directory {:?}", raw.display().to_string())));
                }
                if !existing.is_dir() && is_dir {
                    return Err(Error::InvalidArgument(format!("cannot overwrite non-directory {shown_dest:?} with directory {:?}", raw.display().to_string())));
                }
            }
            if !(existing.is_dir() && is_dir) {
                // Replace, never write through: an existing symlink is removed, not
                // followed.
                if existing.is_dir() {
                    fs::remove_dir_all(&path).ctx(|| format!("remove {}", path.display()))?;
                } else {
                    fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
                }
            }
        }
        if kind.is_hard_link() {
            let Some(target) = entry.link_name().map_err(bad)?.and_then(|l| clean_entry(&l)) else {
                return Err(Error::InvalidArgument(format!("invalid hard link in archive: {}", raw.display())));
            };
            fs::hard_link(opts.dest.join(target), &path).ctx(|| format!("link {}", path.display()))?;
        } else {
            entry.unpack(&path).map_err(|e| Error::Io { context: format!("extract {}", path.display()), source: e })?;
        }
        let owner = match (opts.chown, opts.userns) {
            (Some((uid, gid)), None) => Some((uid, gid)),
            (Some((uid, gid)), Some(m)) => Some((m.to_host(uid), m.to_host(gid))),
            (None, Some(m)) => {
                let h = entry.header();
                let (uid, gid) = (h.uid().map_err(bad)? as u32, h.gid().map_err(bad)? as u32);
                Some((m.to_host(uid), m.to_host(gid)))
            }
            (None, None) => None,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).ctx(|| format!("chown {}", path.display()))?;
        }
        if is_dir {
            if let Ok(t) = entry.header().mtime() {
                dir_times.push((path, t));
            }
        }
    }
    for (dir, t) in dir_times.into_iter().rev() {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
        if let Ok(f) = fs::File::open(&dir) {
            let _ = f.set_modified(when);
        }
    }
    Ok(())
}

/// `user`, `uid`, `user:group`, `uid:gid` looked up in the (confined) /etc files.
fn lookup_user(user: &str) -> Result<(u32, u32)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let find = |file: &str, name: &str| -> Option<(u32, u32)> {
        let text = fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[0] == name {
                Some((f[2].parse().ok()?, f[3].parse().ok()?))
            } else if f.len() >= 3 && f[0] == name {
                Some((f[2].parse().ok()?, 0))
            } else {
                None
            }
        })
    };
    let no_user = || Error::InvalidArgument(format!("unable to find user {u}: no matching entries in passwd file"));
    let (uid, pgid) = match u.parse::<u32>() {
        Ok(n) => (n, find("/etc/passwd", u).map(|x| x.1).unwrap_or(n)),
        Err(_) => find("/etc/passwd", u).ok_or_else(no_user)?,
    };
    let gid = match g {
        None => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find("/etc/group", g)
                .map(|x| x.0)
                .ok_or_else(|| Error::InvalidArgument(format!("unable to find group {g}: no matching entries in group file")))?,
        },
    };
    Ok((uid, gid))
}

impl Engine {
    /// How to reach `c`'s files from a thread of ours.
    fn root_source(&self, c: &Container) -> Result<RootSource> {
        if matches!(c.state.status, Status::Running | Status::Paused | Status::Restarting) && c.state.pid > 0 {
            return Ok(RootSource { root: Root::Proc(c.state.pid), userns: c.userns });
        }
        let dir = self.root.join("containers").join(&c.id);
        let rec = self.images.record(&c.image)?;
        let mut lowers = Vec::new();
        for l in rec.layers.iter().rev() {
            lowers.push(self.store.layer_dir(&l.chain_id)?);
        }
        if lowers.is_empty() {
            // overlayfs needs a lower dir: an image from scratch (as at start).
            let empty = self.root.join("layers/empty");
            fs::create_dir_all(&empty).ctx(|| "create empty layer".into())?;
            lowers.push(empty);
        }
        let lower: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        // The files the runtime binds over /etc, then the container's mounts, in the
        // order the runtime mounts them.
        let mut binds: Vec<(PathBuf, String, bool)> = ["hostname", "hosts", "resolv.conf"]
            .iter()
            .map(|f| (dir.join(f), format!("/etc/{f}"), false))
            .filter(|(p, _, _)| p.exists())
            .collect();
        binds.extend(c.mounts.iter().map(|m| (PathBuf::from(&m.source), m.destination.clone(), !m.rw)));
        Ok(RootSource { root: Root::Overlay { target: dir.join("rootfs"), options, lowers, binds }, userns: c.userns })
    }

    /// Runs `f` on a new thread confined to the container's root.
    fn in_container<T: Send + 'static>(&self, c: &Container, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let source = self.root_source(c)?;
        let handle = std::thread::Builder::new()
            .name("berth-cp".into())
            .spawn(move || {
                source.enter()?;
                f()
            })
            .ctx(|| "spawn copy thread".into())?;
        handle.join().unwrap_or_else(|_| Err(Error::Runtime("copy thread panicked".into())))
    }

    /// `HEAD /containers/{id}/archive`: what is at `path` in the container.
    pub fn stat_container_path(&self, ns: &str, name: &str, path: &str) -> Result<PathStat> {
        let c = self.container(ns, name)?;
        let (abs, shown, cname) = (container_path(path), path.to_string(), name.to_string());
        self.in_container(&c, move || stat_in_root(&abs, &shown, &cname))
    }

    /// `GET /containers/{id}/archive`: the stat of `path` and a tar of it, its first
    /// entry named like the path's last element. A symlink there is archived as is
    /// (the CLI resolves it first for `cp -L`).
    pub fn archive_container_path(&self, ns: &str, name: &str, path: &str) -> Result<(PathStat, ArchiveReader)> {
        let c = self.container(ns, name)?;
        let source = self.root_source(&c)?;
        let userns = source.userns;
        let (abs, shown, cname) = (container_path(path), path.to_string(), name.to_string());
        let (stat_tx, stat_rx) = mpsc::sync_channel::<Result<PathStat>>(1);
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        std::thread::Builder::new()
            .name("berth-cp".into())
            .spawn(move || {
                let stat = source.enter().and_then(|()| stat_in_root(&abs, &shown, &cname));
                let ok = stat.is_ok();
                let _ = stat_tx.send(stat);
                if !ok {
                    return;
                }
                let mut w = ChunkWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
                let result = {
                    let mut b = tar::Builder::new(&mut w);
                    let name = go_base(&abs);
                    append_tree(&mut b, Path::new(&abs), if name == "/" { "." } else { &name }, userns, None).and_then(|()| b.finish())
                };
                if let Err(e) = result.and_then(|()| w.flush()) {
                    let _ = tx.send(Err(e));
                }
            })
            .ctx(|| "spawn copy thread".into())?;
        let stat = stat_rx.recv().unwrap_or_else(|_| Err(Error::Runtime("copy thread ended early".into())))?;
        self.emit_container(&c, "archive-path", &[]);
        Ok((stat, ArchiveReader { rx, buf: Vec::new(), pos: 0 }))
    }

    /// `docker export`: a tar of the container's own file system (its image's layers
    /// and what it changed), without what is mounted in it (volumes, binds, /proc,
    /// /dev, the /etc files), entries named from its root (`bin/`, `etc/passwd`).
    pub fn export_container(&self, ns: &str, name: &str) -> Result<ArchiveReader> {
        let c = self.container(ns, name)?;
        let source = self.root_source(&c)?;
        let userns = source.userns;
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        std::thread::Builder::new()
            .name("berth-export".into())
            .spawn(move || {
                let entered = source.enter();
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                let mut w = ChunkWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
                let result = (|| {
                    let dev = fs::symlink_metadata("/")?.dev();
                    let mut b = tar::Builder::new(&mut w);
                    let mut entries: Vec<_> = fs::read_dir("/")?.collect::<io::Result<Vec<_>>>()?;
                    entries.sort_by_key(|e| e.file_name());
                    for e in entries {
                        append_tree(&mut b, &e.path(), &e.file_name().to_string_lossy(), userns, Some(dev))?;
                    }
                    b.finish()
                })();
                if let Err(e) = result.and_then(|()| w.flush()) {
                    let _ = tx.send(Err(e));
                }
            })
            .ctx(|| "spawn export thread".into())?;
        ready_rx.recv().unwrap_or_else(|_| Err(Error::Runtime("export thread ended early".into())))?;
        self.emit_container(&c, "export", &[]);
        Ok(ArchiveReader { rx, buf: Vec::new(), pos: 0 })
    }

    /// `PUT /containers/{id}/archive`: extracts a tar into the directory `path`
    /// (a symlink to a directory is followed), in the extract helper (see the
    /// module's doc): in a lab session it runs in a cgroup of its own below the
    /// session's envelope, so the session's memory limit covers what it writes.
    pub fn extract_to_container(
        &self,
        ns: &str,
        name: &str,
        path: &str,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
        content: Box<dyn Read + Send>,
    ) -> Result<()> {
        let c = self.container(ns, name)?;
        // A cgroup of the copy's own below the session's envelope (a v2 envelope may
        // hold no process itself); gone after it, its charges passed up.
        let leaf_name = self.policy(ns).and_then(|p| p.envelope).map(|e| format!("{}/cp-{}", e.cgroup, &fsutil::random_id()[..12]));
        let leaf = leaf_name.as_deref().map(Cgroup::new);
        let spec = ExtractSpec {
            source: self.root_source(&c)?,
            cgroup: leaf_name,
            path: container_path(path),
            shown: path.to_string(),
            container: name.to_string(),
            mounts: c.mounts.iter().map(|m| (m.destination.trim_end_matches('/').to_string(), m.rw)).collect(),
            readonly_rootfs: c.host_config.readonly_rootfs,
            user: if copy_uid_gid && !c.config.user.is_empty() { Some(c.config.user.clone()) } else { None },
            no_overwrite_dir_non_dir,
        };
        if let Some(leaf) = &leaf {
            if let Err(e) = leaf.create(&Limits::default()) {
                leaf.remove();
                return Err(e);
            }
        }
        let result = run_extract_helper(&self.helper_exe, &spec, content);
        // Counted where the victim was (on v1 only there): the helper's own cgroup.
        let oom_killed = leaf.as_ref().is_some_and(|l| l.oom_kills() > 0);
        if let Some(leaf) = &leaf {
            leaf.remove();
        }
        match result {
            Err(Error::Runtime(why)) if oom_killed => {
                tracing::info!(container = %c.id, %why, "docker cp stopped at the lab session's memory limit");
                return Err(Error::Runtime("Error processing tar file: out of memory: the copy reached this lab session's memory limit".into()));
            }
            result => result?,
        }
        self.emit_container(&c, "extract-to-dir", &[]);
        Ok(())
    }
}

/// What `berth cp-extract` gets (as JSON in `BERTH_CP_EXTRACT`); the tar comes on its
/// stdin.
#[derive(Serialize, Deserialize)]
struct ExtractSpec {
    source: RootSource,
    /// The cgroup it joins first (a lab session's), or none (it stays in the server's).
    cgroup: Option<String>,
    /// The destination as Docker sees it in the container, and as the user gave it.
    path: String,
    shown: String,
    container: String,
    /// Mount destinations, and whether each is writable.
    mounts: BTreeMap<String, bool>,
    readonly_rootfs: bool,
    /// `cp -a`: the container's user, looked up in its own /etc files.
    user: Option<String>,
    no_overwrite_dir_non_dir: bool,
}

/// A failure as the helper reports it on stdout: the error's kind (which decides the
/// HTTP status) and its text.
#[derive(Serialize, Deserialize)]
struct HelperError {
    kind: String,
    message: String,
}

impl From<&Error> for HelperError {
    fn from(e: &Error) -> HelperError {
        let kind = match e {
            Error::NotFound(_) => "not-found",
            Error::Conflict(_) => "conflict",
            Error::InvalidArgument(_) => "invalid",
            Error::Forbidden(_) => "forbidden",
            _ => "runtime",
        };
        HelperError { kind: kind.into(), message: e.to_string() }
    }
}

impl From<HelperError> for Error {
    fn from(e: HelperError) -> Error {
        match e.kind.as_str() {
            "not-found" => Error::NotFound(e.message),
            "conflict" => Error::Conflict(e.message),
            "invalid" => Error::InvalidArgument(e.message),
            "forbidden" => Error::Forbidden(e.message),
            _ => Error::Runtime(e.message),
        }
    }
}

/// Runs `berth cp-extract` with `spec`, feeding it `content`, and returns its verdict.
fn run_extract_helper(exe: &Path, spec: &ExtractSpec, mut content: Box<dyn Read + Send>) -> Result<()> {
    use std::process::{Command, Stdio};
    let json = serde_json::to_string(spec).ctx(|| "encode the copy".into())?;
    let mut child = Command::new(exe)
        .arg("cp-extract")
        .env("BERTH_CP_EXTRACT", json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Runtime(format!("start the copy helper {}: {e}", exe.display())))?;
    let mut stdin = child.stdin.take().ok_or_else(|| Error::Runtime("copy helper without stdin".into()))?;
    // Fed from a thread of its own; left to end by itself (the helper stopping reading
    // makes its next write fail) so an early error is answered at once.
    std::thread::Builder::new()
        .name("berth-cp-feed".into())
        .spawn(move || {
            let _ = io::copy(&mut content, &mut stdin);
        })
        .ctx(|| "spawn copy feeder".into())?;
    let out = child.wait_with_output().ctx(|| "wait for the copy helper".into())?;
    if out.status.success() {
        return Ok(());
    }
    if let Ok(e) = serde_json::from_slice::<HelperError>(&out.stdout) {
        return Err(e.into());
    }
    use std::os::unix::process::ExitStatusExt;
    let how = match out.status.signal() {
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exit status {}", out.status.code().unwrap_or(-1)),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::Runtime(format!("Error processing tar file: the copy helper ended ({how}) {}", stderr.trim()).trim_end().to_string()))
}

/// Entry point of `berth cp-extract` (spec in `BERTH_CP_EXTRACT`, the tar on stdin):
/// joins the cgroup, confines itself to the container's root, checks the
/// destination as dockerd does and extracts. Exits 0, or 1 with a [`HelperError`] on
/// stdout. Must run single-threaded: it unshares its mount namespace.
pub fn cp_extract_main() -> i32 {
    let result = std::env::var("BERTH_CP_EXTRACT")
        .ok()
        .and_then(|s| serde_json::from_str::<ExtractSpec>(&s).ok())
        .ok_or_else(|| Error::Runtime("cp-extract: missing or bad BERTH_CP_EXTRACT".into()))
        .and_then(|spec| extract_in_container(&spec));
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("{}", serde_json::to_string(&HelperError::from(&e)).unwrap_or_default());
            1
        }
    }
}

fn extract_in_container(spec: &ExtractSpec) -> Result<()> {
    if let Some(cg) = &spec.cgroup {
        Cgroup::new(cg).enter()?;
    }
    spec.source.enter()?;
    let (abs, shown, cname) = (&spec.path, &spec.shown, &spec.container);
    lstat(abs, shown, cname)?;
    // The last element too: extracting "into" a symlink to a directory works.
    let dest = fs::canonicalize(abs).map_err(|_| not_found(shown, cname))?;
    if !fs::metadata(&dest).ctx(|| format!("stat {}", dest.display()))?.is_dir() {
        return Err(Error::InvalidArgument("extraction point is not a directory".into()));
    }
    // The mount holding the destination (the longest matching one) decides whether it
    // may be written, as Docker checks before extracting.
    let d = dest.display().to_string();
    let covering = spec.mounts.iter().filter(|(m, _)| d == **m || d.starts_with(&format!("{m}/"))).max_by_key(|(m, _)| m.len());
    match covering {
        Some((_, false)) => return Err(Error::InvalidArgument("mounted volume is marked read-only".into())),
        None if spec.readonly_rootfs => return Err(Error::InvalidArgument("container rootfs is marked read-only".into())),
        _ => {}
    }
    let chown = spec.user.as_deref().map(lookup_user).transpose()?;
    let opts = Extract { dest, no_overwrite_dir_non_dir: spec.no_overwrite_dir_non_dir, chown, userns: spec.source.userns };
    extract(&opts, Box::new(io::stdin()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_docker_meaning() {
        assert_eq!(container_path("etc/passwd"), "/etc/passwd");
        assert_eq!(container_path("/etc/"), "/etc/");
        assert_eq!(container_path("/etc/."), "/etc/.");
        assert_eq!(container_path("/../../etc/../x"), "/x");
        assert_eq!(container_path("/"), "/");
        assert_eq!(go_base("/etc/."), ".");
        assert_eq!(go_base("/etc/"), "etc");
        assert_eq!(go_base("/"), "/");
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFDIR | 0o1777), (1 << 31) | (1 << 20) | 0o777);
    }

    #[test]
    fn scope_resolution_never_leaves_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).unwrap();
        std::os::unix::fs::symlink("real", root.join("rel")).unwrap();
        assert_eq!(resolve_in_scope(root, "/abs/x"), root.join("etc/x"));
        assert_eq!(resolve_in_scope(root, "/real/up/y"), root.join("y"));
        assert_eq!(resolve_in_scope(root, "/rel/z"), root.join("real/z"));
        assert_eq!(resolve_in_scope(root, "/../../q"), root.join("q"));
    }

    #[test]
    fn tars_directories_and_extracts_them_back() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f"), "hello").unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        append_tree(&mut b, &src, "src", None, None).unwrap();
        let bytes = b.into_inner().unwrap();
        let dest = t.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let opts = Extract { dest: dest.clone(), no_overwrite_dir_non_dir: true, chown: None, userns: None };
        extract(&opts, Box::new(io::Cursor::new(bytes.clone()))).unwrap();
        assert_eq!(fs::read_to_string(dest.join("src/sub/f")).unwrap(), "hello");
        assert_eq!(fs::read_link(dest.join("src/link")).unwrap(), Path::new("sub/f"));
        let mut dot = tar::Builder::new(Vec::new());
        let deep = "d".repeat(150);
        fs::create_dir_all(src.join(&deep)).unwrap();
        append_tree(&mut dot, &src, ".", None, None).unwrap();
        let bytes_dot = dot.into_inner().unwrap();
        let mut ar = tar::Archive::new(&bytes_dot[..]);
        let names: Vec<String> = ar.entries().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect();
        assert!(names.contains(&"./".to_string()) && names.contains(&"./sub/f".to_string()), "{names:?}");
        assert!(names.contains(&format!("./{deep}/")), "long names survive: {names:?}");
        fs::remove_dir(src.join(&deep)).unwrap();
        // Extracting again merges directories and replaces files.
        extract(&opts, Box::new(io::Cursor::new(bytes))).unwrap();
        // A file where the archive has a directory: refused with noOverwriteDirNonDir.
        fs::remove_dir_all(dest.join("src/sub")).unwrap();
        fs::write(dest.join("src/sub"), "file").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        append_tree(&mut b, &src, "src", None, None).unwrap();
        let err = extract(&opts, Box::new(io::Cursor::new(b.into_inner().unwrap()))).unwrap_err();
        assert!(err.to_string().contains("cannot overwrite non-directory"), "{err}");
    }

    #[test]
    fn entries_climbing_out_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // tar's own set_path refuses "..", so write the name bytes directly.
        h.as_old_mut().name[..8].copy_from_slice(b"../evil\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let dest = t.path().join("d");
        fs::create_dir(&dest).unwrap();
        let err = extract(&Extract { dest, no_overwrite_dir_non_dir: false, chown: None, userns: None }, Box::new(io::Cursor::new(bytes))).unwrap_err();
        assert!(err.to_string().contains("is outside of"), "{err}");
        assert!(!t.path().join("evil").exists());
    }
}
