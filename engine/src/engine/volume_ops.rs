//! Volume operations on a namespace, with the in-use checks that need containers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::Engine;
use crate::container::Container;
use crate::error::{Error, Result};
use crate::volume::{Volume, ANONYMOUS_LABEL};
use crate::volume_mount::MountOptions;

/// Filters of `GET /volumes` and `POST /volumes/prune`, as the API sends them
/// (`{"label": ["a=b"], ...}`).
pub type Filters = BTreeMap<String, Vec<String>>;

/// Docker's `label=key` / `label=key=value` test.
fn labels_match(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

fn check_keys(filters: &Filters, accepted: &[&str]) -> Result<()> {
    match filters.keys().find(|k| !accepted.contains(&k.as_str())) {
        Some(k) => Err(Error::InvalidArgument(format!("invalid filter '{k}'"))),
        None => Ok(()),
    }
}

/// A boolean filter value (`true`/`1`, `false`/`0`), or Docker's error for another.
fn bool_filter(filters: &Filters, key: &str) -> Result<Option<bool>> {
    let Some(vals) = filters.get(key).filter(|v| !v.is_empty()) else { return Ok(None) };
    let mut out = None;
    for v in vals {
        let b = match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(Error::InvalidArgument(format!("invalid filter '{key}=[{}]'", vals.join(" ")))),
        };
        out = Some(out.unwrap_or(false) || b);
    }
    Ok(out)
}

impl Engine {
    /// Creates (or returns the existing) local volume `name`, anonymous if `None`.
    /// (Called with the containers lock held while a container is created: it must not
    /// take that lock, hence no disk check here; `create_container` made it.)
    pub fn create_volume(&self, ns: &str, name: Option<&str>, labels: BTreeMap<String, String>) -> Result<Volume> {
        self.make_volume(ns, name, "local", &BTreeMap::new(), labels)
    }

    /// `docker volume create`: the `local` driver, with its mount options (see
    /// [`crate::volume_mount`]).
    pub fn create_volume_with_driver(
        &self,
        ns: &str,
        name: Option<&str>,
        driver: &str,
        options: &BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume> {
        if name.is_none_or(|n| self.volume(ns, n).is_err()) {
            self.check_disk(ns)?;
        }
        self.make_volume(ns, name, driver, options, labels)
    }

    /// Creates (or returns the existing) volume with a driver's options: `volume create`
    /// and `--mount type=volume,volume-opt=…`.
    pub(super) fn make_volume(
        &self,
        ns: &str,
        name: Option<&str>,
        driver: &str,
        options: &BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<Volume> {
        let shown = name.unwrap_or("");
        if !driver.is_empty() && driver != "local" {
            return Err(Error::NotFound(format!(
                "create {shown}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        // As dockerd, an existing volume is returned as it is, whatever the options.
        if let Some(v) = name.and_then(|n| self.volumes.get(ns, n).ok()) {
            return Ok(v);
        }
        let refused = |e: Error| Error::InvalidArgument(format!("create {shown}: {e}"));
        let mount = crate::volume_mount::parse(options).map_err(refused)?;
        if let (Some(m), Some(_)) = (&mount, self.policy(ns)) {
            m.check_for_lab().map_err(refused)?;
        }
        let (v, created) = self.volumes.create(ns, name, labels, options.clone())?;
        if created {
            self.emit(ns, "volume", "create", &v.name, &[("driver", "local")]);
        }
        Ok(v)
    }

    /// Runs `f` (filling a new container's volume from its image) with the volume's
    /// file system mounted, if its options ask for one: as dockerd, which unmounts it
    /// again after (a tmpfs volume then starts empty all the same).
    pub(super) fn fill_volume<T>(&self, ns: &str, v: &Volume, f: impl FnOnce() -> Result<T>) -> Result<T> {
        match crate::volume_mount::parse(&v.options)? {
            Some(m) => self.volume_mounts.with_mounted(&v.mountpoint, &m, self.policy(ns).is_some(), f),
            None => f(),
        }
    }

    /// Fills a new container's volume at `dest` from its image (`layers`), as Docker does
    /// on first mount (a volume that has content is left alone).
    pub(super) fn copy_up(&self, ns: &str, v: &Volume, layers: &[PathBuf], dest: &str) -> Result<()> {
        if !v.options.is_empty() && !crate::volume::image_has_dir(layers, dest) {
            // Nothing to copy: the file system is not mounted for it (a mount that
            // fails then fails the start, not the create, as with dockerd).
            return Ok(());
        }
        if !v.options.is_empty() && self.policy(ns).is_some() {
            // A lab session's tmpfs volume is not filled: the server would write the
            // pages, charged to itself rather than to the session's memory. What
            // dockerd copies there is lost at the unmount that follows anyway, unless
            // another container holds the volume mounted.
            return Ok(());
        }
        self.fill_volume(ns, v, || crate::volume::copy_up(layers, dest, &v.mountpoint))
    }

    /// The volumes of a container whose options mount a file system: (`_data`, mount).
    fn mounted_volumes(&self, c: &Container) -> Vec<(PathBuf, MountOptions)> {
        let mut out: Vec<(PathBuf, MountOptions)> = Vec::new();
        for m in c.mounts.iter().filter(|m| m.kind == "volume") {
            let Ok(v) = self.volumes.get(&c.namespace, &m.name) else { continue };
            if let Ok(Some(opts)) = crate::volume_mount::parse(&v.options) {
                if !out.iter().any(|(d, _)| *d == v.mountpoint) {
                    out.push((v.mountpoint, opts));
                }
            }
        }
        out
    }

    /// Mounts the file systems of a starting container's volumes (those not mounted
    /// for another container yet).
    pub(super) fn mount_volumes(&self, c: &Container) -> Result<()> {
        let hardened = self.policy(&c.namespace).is_some();
        for (dir, opts) in self.mounted_volumes(c) {
            if let Err(e) = self.volume_mounts.acquire(&dir, &opts, hardened, &c.id) {
                self.volume_mounts.release(&c.id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// A container stopped: its volumes' file systems are unmounted where it was the
    /// last to use them.
    pub(super) fn unmount_volumes(&self, c: &Container) {
        self.volume_mounts.release(&c.id);
    }

    /// After the running containers were recovered: unmounts the volumes none of them
    /// uses (left mounted by a server that ended while a container used them).
    pub(super) fn sweep_volume_mounts(&self) {
        let Ok(namespaces) = std::fs::read_dir(self.root.join("volumes")) else { return };
        for ns in namespaces.flatten().filter_map(|e| e.file_name().into_string().ok()) {
            for v in self.volumes.list(&ns).into_iter().filter(|v| !v.options.is_empty()) {
                self.volume_mounts.sweep(&v.mountpoint);
            }
        }
    }

    pub fn volume(&self, ns: &str, name: &str) -> Result<Volume> {
        self.volumes.get(ns, name)
    }

    /// Every volume of a namespace, by name.
    pub fn list_volumes(&self, ns: &str) -> Vec<Volume> {
        self.volumes.list(ns)
    }

    /// `docker volume ls`: filters `dangling`, `driver`, `label`, `name`.
    pub fn filter_volumes(&self, ns: &str, filters: &Filters) -> Result<Vec<Volume>> {
        check_keys(filters, &["dangling", "driver", "label", "name"])?;
        let dangling = bool_filter(filters, "dangling")?;
        let in_use = {
            let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            used_volumes(&map, ns)
        };
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| filters.get(key).is_none_or(|v| v.is_empty() || v.iter().any(|x| pred(x)));
        Ok(self
            .volumes
            .list(ns)
            .into_iter()
            .filter(|v| dangling.is_none_or(|d| d != in_use.contains_key(&v.name)))
            .filter(|v| any("driver", &|d| d == v.driver))
            .filter(|v| any("name", &|n| v.name.contains(n)))
            // Every label filter must hold, as in Docker.
            .filter(|v| filters.get("label").is_none_or(|ls| ls.iter().all(|l| labels_match(&v.labels, l))))
            .collect())
    }

    /// Containers (ids) that mount a volume.
    pub fn volume_users(&self, ns: &str, name: &str) -> Vec<String> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        used_volumes(&map, ns).remove(name).unwrap_or_default()
    }

    pub fn remove_volume(&self, ns: &str, name: &str, force: bool) -> Result<()> {
        // Holding the container lock while checking and removing: a container being
        // created meanwhile (which takes the same lock) cannot pick the volume up.
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        match self.volumes.get(ns, name) {
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if let Some(users) = used_volumes(&map, ns).remove(name) {
            return Err(Error::Conflict(format!("remove {name}: volume is in use - [{}]", users.join(", "))));
        }
        self.volumes.remove(ns, name)?;
        drop(map);
        self.emit(ns, "volume", "destroy", name, &[("driver", "local")]);
        Ok(())
    }

    /// `docker volume prune`: unused anonymous volumes, or with the `all` filter every
    /// unused one; `label` / `label!` filters narrow it. Returns (names, bytes freed).
    pub fn prune_volumes(&self, ns: &str, filters: &Filters) -> Result<(Vec<String>, u64)> {
        check_keys(filters, &["label", "label!", "all"])?;
        let all = bool_filter(filters, "all")?.unwrap_or(false);
        let mut removed = Vec::new();
        let mut space = 0;
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let in_use = used_volumes(&map, ns);
        for v in self.volumes.list(ns) {
            let wanted = (all || v.anonymous || v.labels.contains_key(ANONYMOUS_LABEL))
                && filters.get("label").is_none_or(|ls| ls.iter().all(|l| labels_match(&v.labels, l)))
                && filters.get("label!").is_none_or(|ls| !ls.iter().any(|l| labels_match(&v.labels, l)));
            if !wanted || in_use.contains_key(&v.name) {
                continue;
            }
            let size = crate::fsutil::dir_size(&v.mountpoint);
            self.volumes.remove(ns, &v.name)?;
            space += size;
            removed.push(v.name);
        }
        drop(map);
        for name in &removed {
            self.emit(ns, "volume", "destroy", name, &[("driver", "local")]);
        }
        Ok((removed, space))
    }
}

/// Volume name → ids of the namespace's containers mounting it.
fn used_volumes(map: &HashMap<String, Container>, ns: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in map.values().filter(|c| c.namespace == ns) {
        for m in c.mounts.iter().filter(|m| m.kind == "volume") {
            let users = out.entry(m.name.clone()).or_default();
            if !users.contains(&c.id) {
                users.push(c.id.clone());
            }
        }
    }
    out
}
