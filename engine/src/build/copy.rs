//! COPY and ADD: reading sources from the build context (or another stage's layers),
//! wildcards, and writing the result as a layer tar. No container
//! is needed: the layer is made straight from the source files.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};

/// A read-only view of stacked layer dirs (top first) with overlayfs whiteouts, or of
/// the build context (one "layer").
pub struct Tree {
    pub layers: Vec<PathBuf>,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(p), Ok(n)) = (CString::new(path.as_os_str().as_bytes()), CString::new("trusted.overlay.opaque")) else { return false };
    let mut buf = [0u8; 4];
    // SAFETY: NUL-terminated strings and a buffer valid for its length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    rc == 1 && buf[0] == b'y'
}

impl Tree {
    /// The real path holding `rel` (relative, normalised), or None when it does not
    /// exist or a higher layer deleted it.
    pub fn lookup(&self, rel: &Path) -> Option<PathBuf> {
        let comps: Vec<_> = rel.components().collect();
        for layer in &self.layers {
            let mut cur = layer.clone();
            let mut hidden_below = false;
            let mut found = true;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                match cur.symlink_metadata() {
                    Ok(md) if is_whiteout(&md) => return None,
                    Ok(md) if i + 1 < comps.len() && !md.is_dir() => return None,
                    Ok(md) => {
                        if md.is_dir() && is_opaque(&cur) {
                            hidden_below = true;
                        }
                    }
                    Err(_) => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                return Some(cur);
            }
            if hidden_below {
                return None;
            }
        }
        None
    }

    /// The names in directory `rel`, merged over the layers, sorted.
    pub fn list(&self, rel: &Path) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for layer in &self.layers {
            if let Ok(rd) = fs::read_dir(layer.join(rel)) {
                names.extend(rd.flatten().filter_map(|e| e.file_name().into_string().ok()));
            }
        }
        names.into_iter().filter(|n| self.lookup(&rel.join(n)).is_some()).collect()
    }
}

/// Shell-style match of one name: `*`, `?`, `[a-z]`, `[!x]`, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return n.first() == Some(&'[') && m(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let mut set = &p[1..end];
                let negate = matches!(set.first(), Some('!') | Some('^'));
                if negate {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && m(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && m(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexically normalises a path inside the context; None when it escapes it.
pub fn clean(p: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir if !out.pop() => return None,
            _ => {}
        }
    }
    Some(out)
}

/// One entry of the layer a COPY or ADD makes.
#[derive(Debug)]
pub struct Entry {
    /// Path inside the image, relative (no leading `/`).
    pub dest: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

#[derive(Debug)]
pub enum Kind {
    Dir,
    File(PathBuf),
    Symlink(PathBuf),
    /// A local tar ADD unpacks under `dest`.
    Archive(PathBuf),
    /// Literal content (heredoc COPY).
    Bytes(Vec<u8>),
}

pub struct CopyRequest<'a> {
    pub sources: &'a [String],
    /// Absolute destination, as written (a trailing `/` means a directory).
    pub dest: &'a str,
    pub from: &'a Tree,
    /// Whether `from` is the build context (whose symlinks must stay inside it)
    /// rather than a stage or an image (`--from`). What `.dockerignore` excludes the
    /// client never sent (see `super::ignore`).
    pub context: bool,
    /// The image the layer goes on, to see what exists there.
    pub image: &'a Tree,
    pub owner: Option<(u64, u64)>,
    pub unpack_archives: bool,
    pub keyword: &'a str,
}

fn is_archive(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path) else { return false };
    let mut head = [0u8; 262];
    let n = f.read(&mut head).unwrap_or(0);
    (n >= 2 && head[..2] == [0x1f, 0x8b]) || (n >= 262 && &head[257..262] == b"ustar")
}

/// Works out the entries of a COPY/ADD layer, checking every source first.
pub fn plan(req: &CopyRequest) -> Result<Vec<Entry>> {
    let kw = req.keyword;
    let not_found = |s: &str| Error::InvalidArgument(format!("{kw} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"));
    let mut matches: Vec<PathBuf> = Vec::new();
    let mut wildcard = false;
    for s in req.sources {
        if s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@") {
            return Err(Error::InvalidArgument(format!("{kw} failed: downloading {s} is not supported: Berth builds have no network access; download the file into the build context and COPY it")));
        }
        let rel = clean(s).ok_or_else(|| Error::InvalidArgument(format!("{kw} failed: forbidden path outside the build context: {s} ()")))?;
        if has_wildcard(s) {
            wildcard = true;
            let mut found = vec![PathBuf::new()];
            for c in rel.components() {
                let pat = c.as_os_str().to_string_lossy().into_owned();
                let mut next = Vec::new();
                for base in &found {
                    for name in req.from.list(base) {
                        if glob_match(&pat, &name) {
                            next.push(base.join(name));
                        }
                    }
                }
                found = next;
            }
            matches.extend(found);
        } else {
            if req.from.lookup(&rel).is_none() {
                return Err(not_found(s));
            }
            matches.push(rel);
        }
    }
    if matches.is_empty() {
        return Err(Error::InvalidArgument(format!("{kw} failed: no source files were specified")));
    }
    let dest_dir_form = req.dest.ends_with('/');
    let dest = clean(req.dest).unwrap_or_default();
    if (matches.len() > 1 || wildcard && req.sources.len() > 1) && !dest_dir_form {
        return Err(Error::InvalidArgument(format!("When using {kw} with more than one source file, the destination must be a directory and end with a /")));
    }
    let dest_exists_dir = req.image.lookup(&dest).and_then(|p| p.symlink_metadata().ok()).is_some_and(|m| m.is_dir());
    let mut out = Vec::new();
    let mut dirs_made = std::collections::BTreeSet::new();
    for m in &matches {
        let real = resolve_source(req.from, m, req.context)
            .map_err(|e| Error::InvalidArgument(format!("{kw} failed: {e}")))?
            .ok_or_else(|| not_found(&m.to_string_lossy()))?;
        let md = real.symlink_metadata().ctx(|| format!("stat {}", real.display()))?;
        let target = if md.is_dir() {
            dest.clone()
        } else if dest_dir_form || dest_exists_dir || matches.len() > 1 || (req.unpack_archives && is_archive(&real)) {
            if req.unpack_archives && is_archive(&real) {
                dest.clone()
            } else {
                dest.join(m.file_name().unwrap_or_default())
            }
        } else {
            dest.clone()
        };
        parents(req, &target, md.is_dir(), &mut dirs_made, &mut out);
        if md.is_dir() {
            walk(req, &real, m, &target, &mut out)?;
        } else if req.unpack_archives && is_archive(&real) {
            out.push(entry(req, &target, &md, Kind::Archive(real)));
        } else {
            out.push(entry(req, &target, &md, Kind::File(real)));
        }
    }
    Ok(out)
}

/// Follows a top-level source symlink inside the tree. In the build context
/// (`context`) a link pointing outside it is refused: reading it would read the
/// server's own files. In an image an absolute target starts at the image's root,
/// as Docker resolves it.
pub fn resolve_source(tree: &Tree, rel: &Path, context: bool) -> Result<Option<PathBuf>> {
    let mut rel = rel.to_path_buf();
    for _ in 0..16 {
        let Some(real) = tree.lookup(&rel) else { return Ok(None) };
        let Ok(md) = real.symlink_metadata() else { return Ok(None) };
        if !md.file_type().is_symlink() {
            return Ok(Some(real));
        }
        let target = fs::read_link(&real).ctx(|| format!("readlink {}", real.display()))?;
        let next = if target.is_absolute() {
            if context { None } else { clean(&target.to_string_lossy()) }
        } else {
            clean(&rel.parent().unwrap_or(Path::new("")).join(&target).to_string_lossy())
        };
        rel = match next {
            Some(n) => n,
            None if context => {
                return Err(Error::InvalidArgument(format!(
                    "forbidden path outside the build context: {} (a symlink to {})",
                    rel.display(),
                    target.display()
                )))
            }
            None => return Ok(None),
        };
    }
    Err(Error::InvalidArgument(format!("too many levels of symbolic links: {}", rel.display())))
}

/// Reads a file of the build context (the Dockerfile, `.dockerignore`) without
/// following a symlink out of it. None when it does not exist.
pub fn read_context_file(tree: &Tree, rel: &Path) -> Result<Option<Vec<u8>>> {
    match resolve_source(tree, rel, true)? {
        Some(p) if p.is_file() => Ok(Some(fs::read(&p).ctx(|| format!("read {}", p.display()))?)),
        _ => Ok(None),
    }
}

fn entry(req: &CopyRequest, dest: &Path, md: &fs::Metadata, kind: Kind) -> Entry {
    let (uid, gid) = req.owner.unwrap_or((0, 0));
    Entry { dest: dest.to_string_lossy().into_owned(), kind, mode: md.mode() & 0o7777, uid, gid, mtime: md.mtime().max(0) as u64 }
}

/// Directory entries for the parents of `target` (and `target` itself when it is a
/// directory), with the image's own metadata where they already exist: a tar that
/// omitted them would have them created with default modes, which would then hide
/// e.g. /tmp's 1777 in the merged view.
fn parents(req: &CopyRequest, target: &Path, is_dir: bool, made: &mut std::collections::BTreeSet<PathBuf>, out: &mut Vec<Entry>) {
    let mut chain: Vec<PathBuf> = target.ancestors().skip(if is_dir { 0 } else { 1 }).filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).collect();
    chain.reverse();
    for dir in chain {
        if !made.insert(dir.clone()) {
            continue;
        }
        let existing = req.image.lookup(&dir).and_then(|p| p.symlink_metadata().ok()).filter(|m| m.is_dir());
        let (mode, uid, gid, mtime) = match &existing {
            Some(m) => (m.mode() & 0o7777, m.uid() as u64, m.gid() as u64, m.mtime().max(0) as u64),
            None => {
                let (u, g) = if dir == target { req.owner.unwrap_or((0, 0)) } else { (0, 0) };
                (0o755, u, g, 0)
            }
        };
        out.push(Entry { dest: dir.to_string_lossy().into_owned(), kind: Kind::Dir, mode, uid, gid, mtime });
    }
}

fn walk(req: &CopyRequest, _real: &Path, rel: &Path, dest: &Path, out: &mut Vec<Entry>) -> Result<()> {
    for name in req.from.list(rel) {
        let r = rel.join(&name);
        let Some(real) = req.from.lookup(&r) else { continue };
        let md = real.symlink_metadata().ctx(|| format!("stat {}", real.display()))?;
        let d = dest.join(&name);
        if md.is_dir() {
            out.push(entry(req, &d, &md, Kind::Dir));
            walk(req, &real, &r, &d, out)?;
        } else if md.file_type().is_symlink() {
            let t = fs::read_link(&real).ctx(|| format!("readlink {}", real.display()))?;
            out.push(entry(req, &d, &md, Kind::Symlink(t)));
        } else if md.is_file() {
            out.push(entry(req, &d, &md, Kind::File(real)));
        }
    }
    Ok(())
}

/// A hash of what the entries would put in the layer (paths, modes, owners,
/// contents; not mtimes), the cache key part of a COPY/ADD. A file's content counts
/// through its own digest (`context::FileHasher`): taken from `known` (the build context's files, hashed
/// while they were unpacked) when it is there, so those are not read again, and
/// computed from the file otherwise (another stage's or an image's files).
pub fn content_hash(entries: &[Entry], known: &super::context::Digests) -> Result<String> {
    let mut h = Sha256::new();
    for e in entries {
        h.update(format!("{}\0{:o}\0{}\0{}\0", e.dest, e.mode, e.uid, e.gid).as_bytes());
        match &e.kind {
            Kind::Dir => h.update(b"d"),
            Kind::Symlink(t) => h.update(format!("l{}", t.display()).as_bytes()),
            Kind::Bytes(b) => {
                h.update(b"b");
                h.update(b);
            }
            Kind::File(p) | Kind::Archive(p) => {
                h.update(b"f");
                match known.get(p) {
                    Some(d) => h.update(d),
                    None => {
                        let mut fh = super::context::FileHasher::new();
                        let mut f = fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
                        io::copy(&mut f, &mut fh).ctx(|| format!("read {}", p.display()))?;
                        h.update(fh.finalize().as_bytes());
                    }
                }
            }
        }
        h.update(b"\n");
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Writes the entries as a layer tar.
pub fn write_layer<W: Write>(entries: &[Entry], out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let io_err = |e: io::Error| Error::Io { context: "write layer".into(), source: e };
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        match &e.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", e.dest), io::empty()).map_err(io_err)?;
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &e.dest, t).map_err(io_err)?;
            }
            Kind::File(p) => {
                // File capabilities and other attributes the source has, as Docker's
                // COPY keeps `security.capability`.
                let attrs = crate::xattrs::for_layer(p).ctx(|| format!("read the attributes of {}", p.display()))?;
                crate::xattrs::append_pax(&mut b, &attrs).map_err(io_err)?;
                let f = fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(f.metadata().ctx(|| format!("stat {}", p.display()))?.len());
                b.append_data(&mut h, &e.dest, f).map_err(io_err)?;
            }
            Kind::Bytes(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, &e.dest, &bytes[..]).map_err(io_err)?;
            }
            Kind::Archive(p) => append_archive(&mut b, p, &e.dest)?,
        }
    }
    b.into_inner().map_err(io_err)
}

/// ADD of a local tar: its entries, re-rooted under `dest`.
fn append_archive<W: Write>(b: &mut tar::Builder<W>, path: &Path, dest: &str) -> Result<()> {
    let bad = |e: io::Error| Error::InvalidArgument(format!("ADD failed: {}: {e}", path.display()));
    let f = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut ar = tar::Archive::new(crate::archive::decompress(f)?);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let p = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(rel) = clean(&p) else {
            return Err(Error::InvalidArgument(format!("ADD failed: {}: path escapes the archive: {p}", path.display())));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = Path::new(dest).join(&rel);
        // What the entry's PAX records carried (its attributes) goes on with it.
        crate::xattrs::append_pax(b, &crate::xattrs::from_pax(&mut entry).map_err(bad)?).map_err(bad)?;
        let mut h = entry.header().clone();
        if h.entry_type() == tar::EntryType::GNUSparse {
            // The entry reads as the whole file, holes as zeros: a plain file now.
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(entry.size());
        }
        if h.entry_type().is_hard_link() {
            if let Some(l) = entry.link_name().map_err(bad)?.and_then(|l| clean(&l.to_string_lossy())) {
                b.append_link(&mut h, &target, Path::new(dest).join(l)).map_err(bad)?;
            }
            continue;
        }
        if h.entry_type().is_symlink() {
            if let Some(l) = entry.link_name().map_err(bad)? {
                b.append_link(&mut h, &target, l).map_err(bad)?;
            }
            continue;
        }
        b.append_data(&mut h, &target, &mut entry).map_err(bad)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("fil?[0-9]", "file1"));
        assert!(glob_match("[!a]x", "bx") && !glob_match("[!a]x", "ax"));
    }

    #[test]
    fn clean_refuses_escapes() {
        assert_eq!(clean("./a/../b/"), Some(PathBuf::from("b")));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("/abs/../x"), Some(PathBuf::from("x")));
    }
}
