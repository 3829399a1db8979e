//! Extended attributes in image layers: which ones a layer carries, how they travel
//! in a tar (PAX `SCHILY.xattr.NAME` records, what Docker and GNU tar write), and
//! overlayfs' own attributes, which never leave or enter a layer as attributes.
//!
//! Docker's `pkg/archive` writes only `security.capability` into the layers it makes
//! (file capabilities, turned from v3 to v2: a v3 value names the root of the user
//! namespace it was set in, which means nothing outside it). We keep that, and also
//! `user.*` and `trusted.*` attributes, which a layer can carry meaningfully;
//! `security.selinux` and the like describe the host, and overlayfs' attributes
//! (`trusted.overlay.*`, `user.overlay.*`: opaque directories, redirects, metacopy)
//! are its bookkeeping, turned into `.wh.` entries instead.

use std::io;
use std::path::Path;

/// The PAX record prefix of an extended attribute.
pub const PAX_PREFIX: &str = "SCHILY.xattr.";

/// The file capability attribute.
pub const CAPABILITY: &str = "security.capability";

/// overlayfs' opaque-directory marker, as root's overlay mounts write it and as
/// unprivileged (`userxattr`) ones do.
const OPAQUE: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Whether an attribute belongs in a layer (read from a tar or written to one).
pub fn kept(name: &str) -> bool {
    if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
        return false;
    }
    name == CAPABILITY || name.starts_with("user.") || name.starts_with("trusted.")
}

/// Whether overlayfs marks the directory `path` opaque (its lower layers' entries
/// hidden).
pub fn is_opaque(path: &Path) -> bool {
    OPAQUE
        .iter()
        .any(|n| matches!(xattr::get(path, n), Ok(Some(v)) if v == b"y"))
}

/// The attributes of `path` (not following a symlink) a layer keeps, sorted by
/// name, as they go into a tar: a v3 capability becomes v2, as Docker writes it.
pub fn for_layer(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        // A file system without attributes has none to keep.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let Some(name) = name.to_str().filter(|n| kept(n)).map(str::to_string) else {
            continue;
        };
        let Some(mut value) = xattr::get(path, &name)? else {
            continue;
        };
        if name == CAPABILITY {
            value = capability_v2(value);
        }
        out.push((name, value));
    }
    out.sort();
    Ok(out)
}

/// `vfs_ns_cap_data` (v3: v2 plus the namespace's root id) as `vfs_cap_data` v2.
/// Other values are left as they are.
pub fn capability_v2(mut value: Vec<u8>) -> Vec<u8> {
    // magic_etc's top byte is the revision (linux/capability.h): 2 or 3.
    const V2_SIZE: usize = 20;
    if value.len() >= V2_SIZE && value[3] == 3 {
        value[3] = 2;
        value.truncate(V2_SIZE);
    }
    value
}

/// Writes a PAX extended header entry carrying `attrs`, for the entry written next
/// (nothing when there are none). The tar crate reads these but has no writer.
pub fn append_pax<W: io::Write>(
    b: &mut tar::Builder<W>,
    attrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let mut data = Vec::new();
    for (name, value) in attrs {
        // "LEN KEY=VALUE\n", where LEN counts the whole record, its own digits too.
        let rest = format!(" {PAX_PREFIX}{name}=").len() + value.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {PAX_PREFIX}{name}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    // GNU tar's name for it; readers go by the type.
    h.set_path("././@PaxHeader")?;
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..])
}

/// The attributes an entry's PAX records carry, those a layer keeps.
pub fn from_pax<R: io::Read>(entry: &mut tar::Entry<R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Some(name) = ext.key_bytes().strip_prefix(PAX_PREFIX.as_bytes()) else {
                continue;
            };
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if kept(name) {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Sets attributes on `path` (not following a symlink). A file system that has no
/// attributes of a kind (no `user.*` on tmpfs of old kernels, for one) is skipped,
/// as Docker does for unprivileged daemons; other failures are errors.
pub fn apply(path: &Path, attrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    for (name, value) in attrs {
        match xattr::set(path, name, value) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                tracing::debug!(
                    "{}: the file system takes no {name} attribute",
                    path.display()
                );
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("set the attribute {name}: {e}"),
                ))
            }
            Ok(()) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_attributes_never_travel() {
        assert!(kept("security.capability") && kept("user.mime") && kept("trusted.x"));
        for n in [
            "trusted.overlay.opaque",
            "user.overlay.opaque",
            "trusted.overlay.redirect",
            "security.selinux",
            "system.posix_acl_access",
        ] {
            assert!(!kept(n), "{n}");
        }
    }

    /// What `append_pax` writes, the tar crate (as Go's archive/tar) reads back, on
    /// an entry with a GNU long name.
    #[test]
    fn pax_attributes_round_trip() {
        let attrs = vec![
            (
                "security.capability".to_string(),
                vec![
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            ("user.x".to_string(), vec![b'v'; 95]),
        ];
        let mut b = tar::Builder::new(Vec::new());
        append_pax(&mut b, &attrs).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        let long = "d/".repeat(80) + "f";
        b.append_data(&mut h, &long, io::empty()).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str().unwrap(), long);
        assert_eq!(from_pax(&mut e).unwrap(), attrs);
        assert!(entries.next().is_none());
    }

    #[test]
    fn v3_capabilities_become_v2() {
        // cap_net_raw+ep, v3 with root id 100000.
        let mut v3 = vec![
            0x01, 0, 0, 0x03, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        v3.extend_from_slice(&100000u32.to_le_bytes());
        let v2 = capability_v2(v3);
        assert_eq!(v2.len(), 20);
        assert_eq!(v2[3], 2);
        assert_eq!(v2[5], 0x20);
        let already = vec![
            0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(capability_v2(already.clone()), already);
    }
}
