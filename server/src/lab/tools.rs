//! The tools every workstation gets from the server: the docker CLI and Compose,
//! bound read-only into each one.
//!
//! In a session with a user namespace those binds are idmapped mounts, and some file
//! systems cannot be idmapped: overlayfs among them, which is the root of a container
//! (a lab node in a Kubernetes pod has its docker CLI there). Then the tools are
//! copied into the state root, which can be (the engine checked that before it gave
//! sessions user namespaces), and the workstations get the copies. A copy is made again
//! only when its source changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use berth_engine::Engine;

use super::LabOptions;

/// Points `opts` at copies of the docker CLI and Compose in `<root>/lab-tools` when the
/// originals cannot be idmapped and sessions get user namespaces.
pub fn place(engine: &Engine, opts: &mut LabOptions) -> anyhow::Result<()> {
    if opts.no_userns || engine.userns_missing().is_some() {
        return Ok(());
    }
    let dir = engine.root().join("lab-tools");
    let cli = opts.docker_cli()?;
    if let Err(why) = berth_engine::userns::probe(&cli) {
        let copy = copied(&cli, &dir.join("docker"))?;
        tracing::info!("the docker CLI {} cannot be idmapped ({why}): workstations get a copy, {}", cli.display(), copy.display());
        opts.docker_cli = Some(copy);
    }
    if let Some(compose) = opts.compose_dir()? {
        if let Err(why) = berth_engine::userns::probe(&compose) {
            let copy = copied(&compose, &dir.join("compose"))?;
            tracing::info!("Compose {} cannot be idmapped ({why}): workstations get a copy, {}", compose.display(), copy.display());
            opts.compose = Some(copy);
        }
    }
    Ok(())
}

/// `to`, a copy of `from` (a file or a directory tree), made again if `from` changed
/// since (its stamp: every file's path, size and modification time).
fn copied(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    let stamp_file = to.with_extension("source");
    let stamp = format!("{}\n{}", from.display(), stamp(from)?);
    if to.exists() && fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(to.to_path_buf());
    }
    let parent = to.parent().context("a copy needs a directory")?;
    fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    // Made beside it and renamed over it: workstations already running keep the old
    // copy they have bound; a crash never leaves half a tool in place.
    let fresh = parent.join(format!(".new-{}", to.file_name().and_then(|n| n.to_str()).unwrap_or("tool")));
    let stale = parent.join(format!(".old-{}", to.file_name().and_then(|n| n.to_str()).unwrap_or("tool")));
    remove(&fresh)?;
    remove(&stale)?;
    copy_tree(from, &fresh).with_context(|| format!("copy {} to {}", from.display(), fresh.display()))?;
    if to.is_dir() {
        fs::rename(to, &stale).with_context(|| format!("move {} aside", to.display()))?;
    }
    fs::rename(&fresh, to).with_context(|| format!("place {}", to.display()))?;
    remove(&stale)?;
    fs::write(&stamp_file, stamp).with_context(|| format!("write {}", stamp_file.display()))?;
    Ok(to.to_path_buf())
}

fn remove(p: &Path) -> anyhow::Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(_) => return Ok(()),
    };
    r.with_context(|| format!("remove {}", p.display()))
}

/// One line per file under `p` (or `p` itself): relative path, size, mtime in ns.
fn stamp(p: &Path) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    let mut todo = vec![p.to_path_buf()];
    while let Some(path) = todo.pop() {
        let m = fs::symlink_metadata(&path).with_context(|| format!("read {}", path.display()))?;
        let mtime = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        lines.push(format!("{} {} {mtime}", path.strip_prefix(p).unwrap_or(&path).display(), m.len()));
        if m.is_dir() {
            for e in fs::read_dir(&path).with_context(|| format!("read {}", path.display()))? {
                todo.push(e?.path());
            }
        }
    }
    lines.sort();
    Ok(lines.join("\n"))
}

/// Copies a file (following a symlink given as `from`, as a bind would) or a directory
/// tree (the engine's copy of a layer's tree: links kept as links, modes and owners).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let m = fs::metadata(from)?;
    if !m.is_dir() {
        fs::copy(from, to)?;
        return Ok(());
    }
    fs::create_dir(to)?;
    fs::set_permissions(to, m.permissions())?;
    berth_engine::volume::copy_root(&[from.to_path_buf()], to)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_made_once_and_again_when_its_source_changes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("compose");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::write(src.join("docker-compose"), "#!/bin/sh\necho one\n").unwrap();
        fs::set_permissions(src.join("docker-compose"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("docker-compose", src.join("lib/link")).unwrap();
        let to = t.path().join("tools/compose");
        assert_eq!(copied(&src, &to).unwrap(), to);
        assert_eq!(fs::read_to_string(to.join("docker-compose")).unwrap(), "#!/bin/sh\necho one\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(to.join("docker-compose")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read_link(to.join("lib/link")).unwrap(), Path::new("docker-compose"));
        // Unchanged: not copied again (a file written into the copy stays).
        fs::write(to.join("marker"), "").unwrap();
        copied(&src, &to).unwrap();
        assert!(to.join("marker").exists());
        // Changed: copied again, whole.
        fs::write(src.join("docker-compose"), "#!/bin/sh\necho two, longer\n").unwrap();
        copied(&src, &to).unwrap();
        assert!(!to.join("marker").exists());
        assert_eq!(fs::read_to_string(to.join("docker-compose")).unwrap(), "#!/bin/sh\necho two, longer\n");
        // A single file, too.
        let cli = t.path().join("docker");
        fs::write(&cli, "cli").unwrap();
        let copy = copied(&cli, &t.path().join("tools/docker")).unwrap();
        assert_eq!(fs::read_to_string(copy).unwrap(), "cli");
        let left: Vec<_> = fs::read_dir(t.path().join("tools")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().starts_with('.')), "{left:?}");
    }
}
