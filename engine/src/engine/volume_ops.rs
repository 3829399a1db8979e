//! Volume operations on a namespace, with the in-use checks that need containers.

use std::collections::{BTreeMap, HashMap};

use super::Engine;
use crate::container::Container;
use crate::error::{Error, Result};
use crate::volume::{Volume, ANONYMOUS_LABEL};

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

    /// `docker volume create`: only the `local` driver, without mount options.
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

    fn make_volume(
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
        // The local driver's options mount a device or tmpfs; Berth has no such
        // mounts, so refuse rather than silently make a plain directory.
        if let Some(k) = options.keys().next() {
            return Err(Error::InvalidArgument(format!("create {shown}: invalid option key: {k:?}")));
        }
        let (v, created) = self.volumes.create(ns, name, labels)?;
        if created {
            self.emit(ns, "volume", "create", &v.name, &[("driver", "local")]);
        }
        Ok(v)
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
