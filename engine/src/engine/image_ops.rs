//! Image operations on a namespace: seeds, list, inspect, tag, remove, history, prune,
//! and save/load/import (the archive formats themselves live in [`crate::archive`]).

use std::collections::BTreeSet;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};

use super::Engine;
use crate::archive::{self, Loaded, SaveItem};
use crate::error::{Error, Result};
use crate::image::{History, ImageConfig, Images, RemovedItem, MEDIA_TYPE_LAYER_TAR};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::guard::{Action, Endpoint, Guard, Pinned};
use crate::registry::lab_names::LabNames;
use crate::registry::search::{self, SearchResult};
use crate::registry::{self, pull, push, BlobSources, Client, Credentials, LayerState, Progress, ProgressFn, RegistryError, Transfer};
use crate::seed;

/// One row of `docker images`.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: Option<DateTime<Utc>>,
    pub size: u64,
    pub labels: std::collections::BTreeMap<String, String>,
    pub containers: usize,
    /// Docker's `Parent` (empty when the image came from elsewhere).
    pub parent: String,
}

pub type RemovedImages = Vec<RemovedItem>;

fn parse_time(s: &Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

impl Engine {
    /// Makes sure `busybox:latest`, `hello-world:latest` and `hello-wasm:latest` exist
    /// in a namespace.
    pub fn seed_images(&self, ns: &str) -> Result<()> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let idx = self.images.namespace(ns)?;
        // Each new namespace (a lab session makes two) would otherwise build the same
        // layers again: busybox's costs a process and ~50 ms of CPU, a large part of a
        // session's start when a whole class arrives at once.
        let seed = |name: &'static str, build: &dyn Fn() -> Result<String>| -> Result<()> {
            let reference = Reference::parse(name)?;
            if idx.tags.contains_key(&reference.to_string()) {
                return Ok(());
            }
            let known = self.seeded.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned();
            let id = match known.filter(|id| self.images.record(id).is_ok()) {
                Some(id) => id,
                None => {
                    let id = build()?;
                    self.seeded.lock().unwrap_or_else(|p| p.into_inner()).insert(name, id.clone());
                    id
                }
            };
            self.images.tag(ns, &id, Some(&reference))?;
            Ok(())
        };
        seed("busybox:latest", &|| seed::busybox_image(&self.store, &self.images, &self.busybox))?;
        if cfg!(target_arch = "x86_64") {
            seed("hello-world:latest", &|| seed::hello_world_image(&self.store, &self.images))?;
        }
        seed("hello-wasm:latest", &|| seed::hello_wasm_image(&self.store, &self.images))?;
        Ok(())
    }

    pub fn image_config(&self, ns: &str, name: &str) -> Result<(String, ImageConfig)> {
        let id = self.images.resolve(ns, name)?;
        Ok((id.clone(), self.images.config(&self.store, &id)?))
    }

    pub fn image_size(&self, id: &str) -> u64 {
        let Ok(rec) = self.images.record(id) else { return 0 };
        rec.layers.iter().filter_map(|l| self.store.layer_info(&l.chain_id).ok().flatten()).map(|i| i.size).sum()
    }

    pub fn image_summary(&self, ns: &str, id: &str) -> Result<ImageSummary> {
        let idx = self.images.namespace(ns)?;
        let config = self.images.config(&self.store, id)?;
        let rec = self.images.record(id)?;
        Ok(ImageSummary {
            id: id.to_string(),
            repo_tags: Images::tags_of(&idx, id),
            repo_digests: rec.repo_digests.clone(),
            created: parse_time(&config.created),
            size: self.image_size(id),
            labels: config.config.labels.clone(),
            containers: self.containers(ns).iter().filter(|c| c.image == id).count(),
            parent: rec.parent.clone().unwrap_or_default(),
        })
    }

    /// `docker images`: every image of the namespace, except (without `all`) untagged
    /// intermediate images, the parents other images were built on, as Docker hides them.
    pub fn list_images(&self, ns: &str, all: bool) -> Result<Vec<ImageSummary>> {
        let idx = self.images.namespace(ns)?;
        let hidden = if all { BTreeSet::new() } else { self.parent_images(&idx) };
        let mut out = Vec::new();
        for id in idx.images.keys().filter(|id| !hidden.contains(*id)) {
            out.push(self.image_summary(ns, id)?);
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(out)
    }

    /// Untagged images another image of the namespace was built on: its history and
    /// layers are a strict prefix of the child's. (What a `Parent` link says for build
    /// steps and commits, and it also holds for images that came without links.)
    fn parent_images(&self, idx: &crate::image::NamespaceImages) -> BTreeSet<String> {
        let facts: Vec<(String, Vec<History>, Vec<String>)> = idx
            .images
            .keys()
            .filter_map(|id| {
                let config = self.images.config(&self.store, id).ok()?;
                let rec = self.images.record(id).ok()?;
                Some((id.clone(), config.history, rec.layers.into_iter().map(|l| l.chain_id).collect()))
            })
            .collect();
        let mut parents = BTreeSet::new();
        for (id, history, layers) in &facts {
            if idx.tags.values().any(|v| v == id) {
                continue;
            }
            let is_parent = facts.iter().any(|(other, h, l)| {
                other != id && h.len() > history.len() && h.starts_with(history) && l.starts_with(layers)
            });
            if is_parent {
                parents.insert(id.clone());
            }
        }
        parents
    }

    /// Resolves an image name, with Docker's wording when there is none
    /// ("No such image: busybox:latest").
    fn resolve_image(&self, ns: &str, name: &str) -> Result<String> {
        self.images.resolve(ns, name).map_err(|e| match e {
            Error::NotFound(_) => {
                let hex = name.strip_prefix("sha256:").unwrap_or(name);
                let is_id = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
                let shown = match Reference::parse(name) {
                    Ok(r) if !is_id && !name.starts_with("sha256:") => r.familiar(),
                    _ => name.to_string(),
                };
                Error::NotFound(format!("No such image: {shown}"))
            }
            e => e,
        })
    }

    /// `docker image inspect`: the summary, the config, and when the image was last
    /// tagged (or arrived) in this namespace.
    pub fn inspect_image(&self, ns: &str, name: &str) -> Result<(ImageSummary, ImageConfig, Option<DateTime<Utc>>)> {
        let id = self.resolve_image(ns, name)?;
        let summary = self.image_summary(ns, &id)?;
        let config = self.images.config(&self.store, &id)?;
        let tagged = self.images.namespace(ns)?.images.get(&id).copied();
        Ok((summary, config, tagged))
    }

    pub fn tag_image(&self, ns: &str, source: &str, target: &str) -> Result<()> {
        let r = Reference::parse(target)?;
        if r.digest.is_some() {
            return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
        }
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.resolve_image(ns, source)?;
        self.images.tag(ns, &id, Some(&r))?;
        self.emit(ns, "image", "tag", &id, &[("name", &r.familiar())]);
        Ok(())
    }

    /// Records an image (already in the store) in a namespace under a tag.
    pub fn add_image(&self, ns: &str, id: &str, reference: Option<&Reference>) -> Result<()> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.images.tag(ns, id, reference)?;
        Ok(())
    }

    /// `docker rmi`, following Docker's rules (daemon/images/image_delete.go):
    /// - by tag: untag; when it was the last tag, delete the image too. A container
    ///   using the image blocks removing its last tag unless forced.
    /// - by id: refused while a running container uses it (even forced); without
    ///   force also while a stopped one does or while several tags point at it;
    ///   otherwise untag everything and delete.
    ///
    /// One difference: Docker deletes a forced image even if a *stopped* container
    /// uses it (the container keeps its layers). Here layers are shared by reference,
    /// so the image stays, untagged, until the container is gone; the output shows
    /// only the "Untagged:" lines, as Docker's does for a running container.
    pub fn remove_image(&self, ns: &str, name: &str, force: bool) -> Result<RemovedImages> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.resolve_image(ns, name)?;
        let mut idx = self.images.namespace(ns)?;
        let short = &id[7..19];
        let users: Vec<_> = self.containers(ns).into_iter().filter(|c| c.image == id).collect();
        let running = users.iter().find(|c| c.state.status.is_live());
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let by_id = hex.len() >= 4 && id[7..].starts_with(hex);
        let by_tag = if by_id { None } else { Reference::parse(name).ok().filter(|r| idx.tags.get(&r.to_string()) == Some(&id)) };
        let tags: Vec<String> = idx.tags.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
        // Images of the namespace made on this one (build steps, commits) need it.
        let has_children = !self.children(&idx, &id).is_empty();
        let mut out = Vec::new();
        let mut untag = |idx: &mut crate::image::NamespaceImages, k: &str| {
            idx.tags.remove(k);
            let familiar = Reference::parse(k).map(|r| r.familiar()).unwrap_or(k.to_string());
            self.emit(ns, "image", "untag", &id, &[("name", &familiar)]);
            out.push(RemovedItem::Untagged(familiar));
        };
        match &by_tag {
            Some(r) => {
                if !force && tags.len() == 1 {
                    if let Some(c) = users.first() {
                        return Err(Error::Conflict(format!(
                            "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                            &c.id[..12]
                        )));
                    }
                }
                untag(&mut idx, &r.to_string());
                // An image others were made on stays, untagged, as Docker keeps it.
                if tags.len() > 1 || !users.is_empty() || has_children {
                    self.images.save_namespace(ns, &idx)?;
                    return Ok(out);
                }
            }
            None => {
                if let Some(c) = running {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                        &c.id[..12]
                    )));
                }
                if !force && tags.len() > 1 {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
                if has_children {
                    return Err(Error::Conflict(format!("conflict: unable to delete {short} (cannot be forced) - image has dependent child images")));
                }
                if let (false, Some(c)) = (force, users.first()) {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                        &c.id[..12]
                    )));
                }
                for k in &tags {
                    untag(&mut idx, k);
                }
                if !users.is_empty() {
                    self.images.save_namespace(ns, &idx)?;
                    return Ok(out);
                }
            }
        }
        idx.images.remove(&id);
        // Then, as Docker does, the untagged images it was made on that nothing else
        // needs (no tag, no container, no other child): a built image's steps.
        let mut gone = vec![id.clone()];
        let used: BTreeSet<String> = self.containers(ns).into_iter().map(|c| c.image).collect();
        let mut parent = self.images.record(&id).ok().and_then(|r| r.parent);
        while let Some(p) = parent.take() {
            let free = idx.images.contains_key(&p) && !idx.tags.values().any(|v| *v == p) && !used.contains(&p) && self.children(&idx, &p).is_empty();
            if !free {
                break;
            }
            idx.images.remove(&p);
            parent = self.images.record(&p).ok().and_then(|r| r.parent);
            gone.push(p);
        }
        self.images.save_namespace(ns, &idx)?;
        for g in &gone {
            self.emit(ns, "image", "delete", g, &[]);
        }
        let deleted = self.images.collect_garbage(&self.store)?;
        // The images first (another namespace may still hold them: for this user they
        // are gone all the same), then the layers that went with them.
        out.extend(gone.iter().cloned().map(RemovedItem::Deleted));
        out.extend(deleted.into_iter().filter(|d| !gone.contains(d)).map(RemovedItem::Deleted));
        Ok(out)
    }

    /// The images of a namespace whose `Parent` is `id`.
    fn children(&self, idx: &crate::image::NamespaceImages, id: &str) -> Vec<String> {
        idx.images.keys().filter(|c| self.images.record(c).ok().and_then(|r| r.parent).as_deref() == Some(id)).cloned().collect()
    }

    /// `docker history`: newest first, with the image id on the step that made it:
    /// the image's own on its last step, then, as Docker does, its `Parent`'s on the
    /// step before and so on up the chain while those images are here.
    pub fn history(&self, ns: &str, name: &str) -> Result<Vec<(Option<String>, History, u64)>> {
        let id = self.resolve_image(ns, name)?;
        let config = self.images.config(&self.store, &id)?;
        let rec = self.images.record(&id)?;
        let mut layer_sizes = rec.layers.iter().map(|l| self.store.layer_info(&l.chain_id).ok().flatten().map_or(0, |i| i.size));
        let mut rows: Vec<(Option<String>, History, u64)> = config
            .history
            .iter()
            .map(|h| {
                let size = if h.empty_layer { 0 } else { layer_sizes.next().unwrap_or(0) };
                (None, h.clone(), size)
            })
            .collect();
        rows.reverse();
        let idx = self.images.namespace(ns)?;
        let mut next = Some(id);
        for row in rows.iter_mut() {
            let Some(cur) = next.take() else { break };
            next = self.images.record(&cur).ok().and_then(|r| r.parent).filter(|p| idx.images.contains_key(p));
            row.0 = Some(cur);
        }
        Ok(rows)
    }

    /// `docker image prune`: dangling images, or with `all` every image no container uses.
    pub fn prune_images(&self, ns: &str, all: bool) -> Result<(RemovedImages, u64)> {
        self.prune_images_where(ns, all, &|_| true)
    }

    /// `docker image prune` with filters: `keep` says which candidates (by summary)
    /// the user's filters (until, label) allow to go. Returns what was removed and the
    /// bytes of the layers actually deleted.
    pub fn prune_images_where(&self, ns: &str, all: bool, keep: &dyn Fn(&ImageSummary) -> bool) -> Result<(RemovedImages, u64)> {
        let used: BTreeSet<String> = self.containers(ns).into_iter().map(|c| c.image).collect();
        let idx = self.images.namespace(ns)?;
        // Like Docker, dangling-only pruning spares untagged parents of other images.
        let parents = if all { BTreeSet::new() } else { self.parent_images(&idx) };
        let mut out = Vec::new();
        let mut layer_sizes = std::collections::BTreeMap::new();
        for id in idx.images.keys() {
            let tagged = idx.tags.values().any(|v| v == id);
            if used.contains(id) || (tagged && !all) || parents.contains(id) {
                continue;
            }
            // An earlier removal here may have taken this one with it (a built
            // image's steps go with it).
            if !self.images.namespace(ns)?.images.contains_key(id) {
                continue;
            }
            if !keep(&self.image_summary(ns, id)?) {
                continue;
            }
            if let Ok(rec) = self.images.record(id) {
                for l in rec.layers {
                    let size = self.store.layer_info(&l.chain_id).ok().flatten().map_or(0, |i| i.size);
                    layer_sizes.insert(l.chain_id, size);
                }
            }
            match self.remove_image(ns, id, true) {
                Ok(removed) => out.extend(removed),
                // One others were made on goes with the last of them, as Docker's
                // prune skips it.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let reclaimed: u64 = out
            .iter()
            .filter_map(|r| match r {
                RemovedItem::Deleted(d) => layer_sizes.get(d),
                RemovedItem::Untagged(_) => None,
            })
            .sum();
        self.emit(ns, "image", "prune", "", &[("reclaimed", &reclaimed.to_string())]);
        Ok((out, reclaimed))
    }

    fn tmp_dir(&self) -> std::path::PathBuf {
        self.root().join("tmp")
    }

    /// What `docker save NAME...` writes: like Docker, a bare repository name
    /// (`busybox`) means every tag of it, a tag means that tag, an id means the image
    /// without tags. Fails before anything is written when a name is unknown.
    pub fn save_plan(&self, ns: &str, names: &[String]) -> Result<Vec<SaveItem>> {
        if names.is_empty() {
            return Err(Error::InvalidArgument("no image names given to save".into()));
        }
        let idx = self.images.namespace(ns)?;
        let mut items: Vec<SaveItem> = Vec::new();
        let mut add = |id: String, tag: Option<Reference>| {
            let pos = match items.iter().position(|i| i.id == id) {
                Some(p) => p,
                None => {
                    items.push(SaveItem { id, tags: vec![] });
                    items.len() - 1
                }
            };
            if let Some(t) = tag {
                if !items[pos].tags.contains(&t) {
                    items[pos].tags.push(t);
                }
            }
        };
        for name in names {
            let last_slash = name.rfind('/').map_or(0, |i| i + 1);
            let explicit = name.contains('@') || name[last_slash..].contains(':');
            let parsed = Reference::parse(name).ok();
            if let (Some(r), false) = (&parsed, explicit) {
                let in_repo: Vec<(String, Reference)> = idx
                    .tags
                    .iter()
                    .filter_map(|(k, v)| Reference::parse(k).ok().filter(|t| t.registry == r.registry && t.repository == r.repository).map(|t| (v.clone(), t)))
                    .collect();
                if !in_repo.is_empty() {
                    for (id, t) in in_repo {
                        add(id, Some(t));
                    }
                    continue;
                }
            }
            let id = self.resolve_image(ns, name)?;
            let tag = parsed.filter(|r| explicit && r.digest.is_none() && idx.tags.get(&r.to_string()) == Some(&id));
            add(id, tag);
        }
        Ok(items)
    }

    /// `docker save`: writes the archive for a [`Engine::save_plan`] to `out`.
    pub fn save_images(&self, ns: &str, items: &[SaveItem], out: impl Write) -> Result<()> {
        archive::write_archive(&self.store, &self.images, &self.tmp_dir(), items, out)?;
        for i in items {
            let name = i.tags.first().map(Reference::familiar).unwrap_or_else(|| i.id.clone());
            self.emit(ns, "image", "save", &i.id, &[("name", &name)]);
        }
        Ok(())
    }

    /// `docker load`: reads a docker-archive or OCI-layout tar (maybe gzipped). Nothing
    /// changes unless every image in it is valid; then all tags move at once.
    pub fn load_images(&self, ns: &str, r: impl Read) -> Result<Vec<Loaded>> {
        self.check_disk(ns)?;
        let ex = archive::extract(r, &self.tmp_dir())?;
        let list = ex.images()?;
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let ids = archive::store_images(&self.store, &self.images, &ex, &list)?;
        let mut idx = self.images.namespace(ns)?;
        let now = Utc::now();
        let mut out = Vec::new();
        for (img, id) in list.iter().zip(ids) {
            idx.images.insert(id.clone(), now);
            let mut replaced = Vec::new();
            for t in &img.tags {
                if let Some(old) = idx.tags.insert(t.to_string(), id.clone()).filter(|o| *o != id) {
                    replaced.push((t.familiar(), old));
                }
            }
            out.push(Loaded { id, tags: img.tags.iter().map(Reference::familiar).collect(), replaced });
        }
        self.images.save_namespace(ns, &idx)?;
        for l in &out {
            let name = l.tags.first().cloned().unwrap_or_else(|| l.id.clone());
            self.emit(ns, "image", "load", &l.id, &[("name", &name)]);
        }
        Ok(out)
    }

    /// `docker import`: one rootfs tar (maybe gzipped) becomes a one-layer image, with
    /// Dockerfile-style `changes` applied to its config. Returns the image id.
    pub fn import_image(&self, ns: &str, r: impl Read, reference: Option<&str>, changes: &[String], message: &str) -> Result<String> {
        self.check_disk(ns)?;
        let reference = reference.map(Reference::parse).transpose()?;
        if reference.as_ref().is_some_and(|r| r.digest.is_some()) {
            return Err(Error::InvalidArgument("cannot import to a digest reference; use a tag".into()));
        }
        let mut run = crate::image::RunConfig::default();
        archive::apply_changes(&mut run, changes)?;
        let layer = archive::spool_layer(r, &self.tmp_dir())?;
        let message = if message.is_empty() { "Imported from -" } else { message };
        let config = archive::import_config(&layer.digest, &run, message)?;
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let had = self.store.has_blob(&layer.digest);
        let f = std::fs::File::open(&layer.path).map_err(|e| Error::Io { context: format!("open {}", layer.path.display()), source: e })?;
        let (digest, size) = self.store.put_blob_from(f, Some(&layer.digest))?;
        let id = match self.images.create(&self.store, &config, &[(digest.clone(), MEDIA_TYPE_LAYER_TAR.to_string(), size)]) {
            Ok(id) => id,
            Err(e) => {
                if !had {
                    let _ = self.store.remove_blob(&digest);
                }
                return Err(e);
            }
        };
        self.images.tag(ns, &id, reference.as_ref())?;
        let name = reference.as_ref().map(Reference::familiar).unwrap_or_else(|| id.clone());
        self.emit(ns, "image", "import", &id, &[("name", &name)]);
        Ok(id)
    }

    /// Adds `name@digest` to an image's RepoDigests (one per repository: a newer
    /// digest for the same repository replaces the old one). The caller holds the
    /// image lock.
    // The record file's path mirrors `Images::record_path`; an `Images` method for
    // this would be the better home.
    fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<()> {
        self.images.add_repo_digest(id, repo_digest)
    }

    /// The registry mirrors (base URLs) a pull of a `docker.io` image tries first.
    pub fn registry_mirrors(&self) -> Vec<String> {
        self.registry_mirrors.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the registry mirrors (`berth serve` sets its own registry once it
    /// listens, since the address is only known then).
    pub fn set_registry_mirrors(&self, mirrors: Vec<String>) {
        *self.registry_mirrors.write().unwrap_or_else(|p| p.into_inner()) = mirrors;
    }

    /// Sets what lab sessions' registry requests may reach (Berth's own registry,
    /// the instructor's `--lab-registry-allow`).
    pub fn set_lab_guard(&self, guard: Guard) {
        *self.lab_guard.write().unwrap_or_else(|p| p.into_inner()) = guard;
    }

    /// How namespace `ns` reaches `registry`. Outside lab sessions: as asked (no pin,
    /// no names). In a lab session, through the guard (see [`registry::guard`]): the
    /// addresses it checked, and on Berth's own registry the session's names there
    /// (see [`registry::lab_names`]); a refusal is an error.
    fn route(&self, ns: &str, registry: &str, action: Action) -> Result<(Option<Pinned>, Option<LabNames>), RegistryError> {
        if self.policy(ns).is_none() {
            return Ok((None, None));
        }
        let guard = self.lab_guard.read().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(match guard.check(registry, action)? {
            Endpoint::Own(pin) => (Some(pin), Some(LabNames::for_namespace(ns))),
            Endpoint::Public(pin) => (Some(pin), None),
            Endpoint::Allowed => (None, None),
        })
    }

    /// Fetches `r` for a pull; returns what was fetched and the repository it came
    /// from. A Docker Hub image is asked of each registry mirror in turn, then of
    /// Docker Hub itself, exactly as Docker's daemon does with `registry-mirrors`: a
    /// mirror that lacks the image or cannot be reached is skipped, and the image is
    /// still recorded under its Docker Hub name. Pushes never go to a mirror. In a lab
    /// session, Berth's own registry is asked for the session's own repository first,
    /// then the class's.
    fn fetch_for_pull(&self, ns: &str, r: &Reference, platform: Option<&Platform>, creds: Option<&Credentials>, progress: &ProgressFn) -> Result<(pull::Fetched, String), RegistryError> {
        self.read_pull_source(ns, r, creds, |client, remote| {
            // The student sees the name they pulled, not the session's prefix.
            let pulling = format!("Pulling from {}", remote.repository);
            let shown = |p: Progress| match p {
                Progress::Status { id, text } if text == pulling => progress(Progress::Status { id, text: format!("Pulling from {}", r.repository) }),
                p => progress(p),
            };
            pull::fetch(client, &self.store, remote, platform, &shown)
        })
    }

    /// `GET /distribution/{name}/json`: the manifest's descriptor and platforms of an
    /// image in its registry, reached as a pull would reach it.
    pub fn distribution_inspect(&self, ns: &str, name: &str, creds: Option<&Credentials>) -> Result<pull::Distribution, RegistryError> {
        let r = Reference::parse(name)?;
        Ok(self.read_pull_source(ns, &r, creds, pull::inspect)?.0)
    }

    /// Runs `read` against where a pull of `r` reads from: Docker Hub names through
    /// the operator's mirrors first, then the registry itself, past the namespace's
    /// guard (a lab session's names and the addresses it may reach), trying each
    /// repository the session's names map to. Returns what `read` returned and the
    /// repository it read.
    fn read_pull_source<T>(&self, ns: &str, r: &Reference, creds: Option<&Credentials>, read: impl Fn(&Client, &Reference) -> Result<T, RegistryError>) -> Result<(T, String), RegistryError> {
        if r.registry == crate::reference::DEFAULT_REGISTRY {
            let scope = format!("repository:{}:pull", r.repository);
            // Mirrors are the operator's choice: not guarded, even for a lab session.
            for mirror in self.registry_mirrors() {
                match Client::connect_url(&mirror, creds, &scope).and_then(|c| read(&c, r)) {
                    Ok(f) => {
                        tracing::debug!("read {} from the mirror {mirror}", r.familiar());
                        return Ok((f, r.repository.clone()));
                    }
                    Err(e) if registry::mirror_falls_back(&e) => {
                        tracing::debug!("reading {} from the mirror {mirror} failed ({e}); trying the next endpoint", r.familiar());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let (pin, names) = self.route(ns, &r.registry, Action::Pull)?;
        let sources = match &names {
            Some(n) => n.pull_sources(&r.repository)?,
            None => vec![r.repository.clone()],
        };
        let scope = format!("repository:{}:pull", sources[0]);
        let client = Client::connect_pinned(&r.registry, &self.insecure_registries, creds, &scope, pin)?;
        for (i, repo) in sources.iter().enumerate() {
            let remote = Reference { repository: repo.clone(), ..r.clone() };
            match read(&client, &remote) {
                Ok(f) => return Ok((f, repo.clone())),
                Err(RegistryError::NotFound(e)) if i + 1 < sources.len() => tracing::debug!("{e}; trying {}", sources[i + 1]),
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound(format!("manifest for {} not found", r.familiar())).into())
    }

    /// Publishes the seed images into Berth's own registry as `library/busybox:latest`
    /// and `library/hello-world:latest`, so that with the registry as a mirror,
    /// `docker pull busybox` works offline. A repository with a `latest` tag already is
    /// left alone (a pushed image wins), so after the first start this costs two small
    /// reads; the first time the blobs are hashed once into the registry. Returns the
    /// repositories published now.
    pub fn publish_seed_images(&self) -> Result<Vec<String>> {
        use crate::distribution::{DistError, Registry};
        let dist = |e: DistError| match e {
            DistError::Engine(e) => e,
            e => Error::Runtime(format!("publish the seed images: {e}")),
        };
        let reg = Registry::open(self.root()).map_err(dist)?;
        let mut seeds: Vec<&str> = vec!["library/busybox", "library/hello-wasm"];
        if cfg!(target_arch = "x86_64") {
            seeds.push("library/hello-world");
        }
        let mut published = Vec::new();
        for repo in seeds {
            if reg.manifest(repo, "latest", false).is_ok() {
                continue;
            }
            let id = {
                let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
                match repo {
                    "library/busybox" => seed::busybox_image(&self.store, &self.images, &self.busybox)?,
                    "library/hello-wasm" => seed::hello_wasm_image(&self.store, &self.images)?,
                    _ => seed::hello_world_image(&self.store, &self.images)?,
                }
            };
            let rec = self.images.record(&id)?;
            let config = self.store.read_blob(&id)?;
            for l in &rec.layers {
                if reg.blob(repo, &l.digest).is_err() {
                    let path = self.store.blob_path(&l.digest)?;
                    let f = std::fs::File::open(&path).map_err(|e| Error::Io { context: format!("open {}", path.display()), source: e })?;
                    reg.ingest_blob(repo, &l.digest, f).map_err(dist)?;
                }
            }
            if reg.blob(repo, &id).is_err() {
                reg.ingest_blob(repo, &id, &config[..]).map_err(dist)?;
            }
            let img = push::PushImage { config: &config, config_digest: &id, layers: &rec.layers };
            let manifest = push::image_manifest(&self.store, &img).map_err(Error::from)?;
            reg.put_manifest(repo, "latest", Some(crate::manifest::OCI_MANIFEST), &manifest, true).map_err(dist)?;
            published.push(repo.to_string());
        }
        Ok(published)
    }

    /// `docker pull NAME`: fetches the image from its registry, records it and moves
    /// the tag, reporting progress as Docker does. Returns the image id.
    pub fn pull_image(&self, ns: &str, name: &str, creds: Option<&Credentials>, progress: &ProgressFn) -> Result<String, RegistryError> {
        self.pull_image_for(ns, name, None, creds, progress)
    }

    /// `docker pull --platform P NAME`: as [`Self::pull_image`], taking P's image from
    /// an index (None: the host's, or a wasm one). A single image of another platform
    /// is pulled with Docker's warning, as dockerd does.
    pub fn pull_image_for(&self, ns: &str, name: &str, platform: Option<&Platform>, creds: Option<&Credentials>, progress: &ProgressFn) -> Result<String, RegistryError> {
        self.check_frozen(ns)?;
        self.check_disk(ns)?;
        let r = Reference::parse(name)?;
        let shown = r.familiar();
        let before = self.images.namespace(ns)?.tags.get(&r.to_string()).cloned();
        let (fetched, remote_repo) = self.fetch_for_pull(ns, &r, platform, creds, progress)?;
        if let (Some(want), Ok(config)) = (platform, serde_json::from_slice::<ImageConfig>(&fetched.config)) {
            if !want.matches_image(&config.os, &config.architecture) {
                progress(Progress::Status { id: None, text: format!("WARNING: {}", want.mismatch(&shown, &config.os, &config.architecture)) });
            }
        }
        let fresh: Vec<&(String, String, u64)> = fetched.layers.iter().filter(|l| fetched.new_blobs.contains(&l.0)).collect();
        for (digest, _, size) in &fresh {
            progress(Progress::Bytes { id: registry::short_id(digest), action: Transfer::Extracting, current: *size, total: *size });
        }
        let recorded = {
            let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
            let result = (|| -> Result<String> {
                let id = crate::store::sha256_digest(&fetched.config);
                // An image we already have with all its layers is not unpacked again.
                let complete = self.images.record(&id).ok().is_some_and(|rec| {
                    rec.layers.iter().all(|l| self.store.has_blob(&l.digest) && self.store.layer_dir(&l.chain_id).is_ok_and(|d| d.exists()))
                });
                if !complete {
                    self.images.create(&self.store, &fetched.config, &fetched.layers)?;
                }
                if !fetched.annotations.is_empty() {
                    self.images.set_annotations(&id, &fetched.annotations)?;
                }
                self.add_repo_digest(&id, &format!("{}@{}", r.familiar_name(), fetched.digest))?;
                let tag = if r.digest.is_some() { None } else { Some(&r) };
                self.images.tag(ns, &id, tag)?;
                Ok(id)
            })();
            if result.is_err() {
                // Nothing records these blobs: drop them so a failed pull leaves nothing.
                let used: BTreeSet<String> =
                    self.images.all_records().into_iter().flat_map(|rec| std::iter::once(rec.id).chain(rec.layers.into_iter().map(|l| l.digest))).collect();
                for b in fetched.new_blobs.iter().filter(|b| !used.contains(*b)) {
                    let _ = self.store.remove_blob(b);
                }
            }
            result?
        };
        for (digest, _, _) in &fresh {
            progress(Progress::Layer { id: registry::short_id(digest), state: LayerState::PullComplete });
        }
        let mut blobs = fetched.remote_layers.clone();
        blobs.push(recorded.clone());
        BlobSources::add(self.root(), &r.registry, &remote_repo, &blobs);
        progress(Progress::Status { id: None, text: format!("Digest: {}", fetched.digest) });
        let status = if before.as_deref() == Some(recorded.as_str()) {
            format!("Status: Image is up to date for {shown}")
        } else {
            format!("Status: Downloaded newer image for {shown}")
        };
        progress(Progress::Status { id: None, text: status });
        self.emit(ns, "image", "pull", &recorded, &[("name", &shown)]);
        Ok(recorded)
    }

    /// `docker push NAME[:TAG]`: pushes the tag, or with no tag every tag of the
    /// repository in this namespace (`docker push --all-tags`), and records the
    /// digest in each image's RepoDigests.
    pub fn push_image(&self, ns: &str, name: &str, tag: Option<&str>, creds: Option<&Credentials>, progress: &ProgressFn) -> Result<(), RegistryError> {
        let base = Reference::parse(name)?;
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let explicit = name[last_slash..].contains(':');
        let targets: Vec<Reference> = match (tag.filter(|t| !t.is_empty()), explicit) {
            (Some(t), _) => vec![base.with_tag(t)],
            (None, true) => vec![base.clone()],
            (None, false) => self
                .images
                .namespace(ns)?
                .tags
                .keys()
                .filter_map(|k| Reference::parse(k).ok())
                .filter(|t| t.registry == base.registry && t.repository == base.repository)
                .collect(),
        };
        if base.digest.is_some() {
            return Err(Error::InvalidArgument("cannot push a digest reference".into()).into());
        }
        let first = targets.first().ok_or_else(|| Error::NotFound(format!("An image does not exist locally with the tag: {}", base.familiar_name())))?;
        // Fail before any output when a tag is missing.
        let mut plan = Vec::new();
        for t in &targets {
            let id = self.resolve_image(ns, &t.familiar())?;
            plan.push((t.clone(), id));
        }
        // A lab session's refusal comes before any output: Docker's plain error.
        let (pin, names) = self.route(ns, &base.registry, Action::Push)?;
        let remote_repo = match &names {
            Some(n) => n.own(&base.repository)?,
            None => base.repository.clone(),
        };
        progress(Progress::Status { id: None, text: format!("The push refers to repository [{}/{}]", first.registry, first.repository) });
        let scope = format!("repository:{remote_repo}:pull,push");
        let client = Client::connect_pinned(&base.registry, &self.insecure_registries, creds, &scope, pin)?;
        for (t, id) in plan {
            let rec = self.images.record(&id)?;
            let config = self.store.read_blob(&id)?;
            let img = push::PushImage { config: &config, config_digest: &id, layers: &rec.layers };
            let remote = Reference { repository: remote_repo.clone(), ..t.clone() };
            let (digest, _) = push::push(&client, &self.store, self.root(), &remote, names.as_ref(), &img, progress)?;
            {
                let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
                self.add_repo_digest(&id, &format!("{}@{digest}", t.familiar_name()))?;
            }
            self.emit(ns, "image", "push", &id, &[("name", &t.familiar())]);
        }
        Ok(())
    }

    /// `docker login`: checks the credentials against their registry (`/v2/` ping,
    /// then a token or Basic auth). Returns the registry name on success.
    pub fn registry_login(&self, ns: &str, creds: &Credentials) -> Result<String, RegistryError> {
        let registry = registry::registry_of_server_address(&creds.serveraddress);
        let (pin, _) = self.route(ns, &registry, Action::Login)?;
        Client::connect_pinned(&registry, &self.insecure_registries, Some(creds), "", pin)?;
        Ok(registry)
    }

    /// `docker search TERM`: Docker Hub, or the registry the term names.
    pub fn search_images(&self, ns: &str, term: &str, limit: usize) -> Result<Vec<SearchResult>, RegistryError> {
        let (registry, term) = search::split_term(term);
        if term.is_empty() {
            return Err(Error::InvalidArgument("a search term is required".into()).into());
        }
        let local = |names: Option<LabNames>| -> Result<Vec<SearchResult>, RegistryError> {
            self.search_local_registry(&term, limit, names.as_ref()).map_err(|e| Error::Runtime(e.to_string()).into())
        };
        let Some(r) = registry else {
            // No registry named: Berth's own registry stands in for Docker Hub, so the
            // search lessons work in an offline classroom.
            return local(self.policy(ns).map(|_| LabNames::for_namespace(ns)));
        };
        match self.route(ns, search::search_host(Some(&r)), Action::Search)? {
            // A lab session searches Berth's own registry directly: over HTTP it would
            // see every session's repositories.
            (_, Some(names)) => local(Some(names)),
            (pin, None) => search::search(Some(&r), &term, limit, &self.insecure_registries, pin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::Registry;
    use crate::EngineOptions;

    #[test]
    fn seed_images_are_published_once_and_a_pushed_tag_wins() {
        let t = tempfile::tempdir().unwrap();
        let e = Engine::open(EngineOptions {
            root: t.path().to_path_buf(),
            helper_exe: "/nonexistent/berth".into(),
            busybox: seed::BUSYBOX_PATH.into(),
            insecure_registries: vec![],
            registry_mirrors: vec!["http://127.0.0.1:5000".into()],
        })
        .unwrap();
        assert_eq!(e.registry_mirrors(), ["http://127.0.0.1:5000"]);
        e.seed_images("default").expect("seed (needs busybox-static)");
        let published = e.publish_seed_images().unwrap();
        assert!(published.contains(&"library/busybox".to_string()), "{published:?}");
        let reg = Registry::open(t.path()).unwrap();
        let m = reg.manifest("library/busybox", "latest", false).unwrap();
        let parsed: crate::manifest::Manifest = serde_json::from_slice(&m.bytes).unwrap();
        // The seed itself: its config is the image id in the namespace.
        let (id, _) = e.image_config("default", "busybox").unwrap();
        assert_eq!(parsed.config.as_ref().unwrap().digest, id);
        for l in &parsed.layers {
            assert!(reg.blob("library/busybox", &l.digest).is_ok(), "{}", l.digest);
        }
        assert!(e.publish_seed_images().unwrap().is_empty(), "nothing to do the second time");
        // A `latest` pushed by someone else is left alone.
        reg.put_manifest("library/busybox", "mine", None, &m.bytes, true).unwrap();
        reg.delete_manifest("library/busybox", "latest").unwrap();
        let hw = e.image_config("default", "hello-world").ok();
        if let Some((hw_id, _)) = hw {
            let hw_m = reg.manifest("library/hello-world", "latest", false).unwrap();
            reg.put_manifest("library/busybox", "latest", None, &hw_m.bytes, false).unwrap();
            assert!(e.publish_seed_images().unwrap().is_empty());
            let now: crate::manifest::Manifest = serde_json::from_slice(&reg.manifest("library/busybox", "latest", false).unwrap().bytes).unwrap();
            assert_eq!(now.config.unwrap().digest, hw_id);
        }
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;
    use crate::EngineOptions;

    fn engine(root: &std::path::Path) -> std::sync::Arc<Engine> {
        Engine::open(EngineOptions {
            root: root.to_path_buf(),
            helper_exe: "/nonexistent/berth".into(),
            busybox: seed::BUSYBOX_PATH.into(),
            insecure_registries: vec![],
            registry_mirrors: vec![],
        })
        .unwrap()
    }

    #[test]
    fn a_new_namespace_gets_the_seed_images_made_before_and_one_removed_everywhere_is_made_again() {
        let t = tempfile::tempdir().unwrap();
        let e = engine(t.path());
        e.seed_images("a").expect("seed (needs busybox-static)");
        let (id, _) = e.image_config("a", "busybox").unwrap();
        e.seed_images("b").unwrap();
        assert_eq!(e.image_config("b", "busybox").unwrap().0, id, "the same image, tagged");
        assert!(e.image_config("b", "hello-wasm").is_ok());
        // Gone from every namespace (and so from the store): the next namespace gets it
        // made again rather than a tag of an image that is no more.
        e.remove_image("a", "busybox", true).unwrap();
        e.remove_image("b", "busybox", true).unwrap();
        assert!(e.images.record(&id).is_err(), "the image is gone once no namespace has it");
        e.seed_images("c").unwrap();
        let (again, config) = e.image_config("c", "busybox").unwrap();
        assert_eq!(again, id, "the same content makes the same image");
        assert_eq!(config.config.cmd, Some(vec!["sh".to_string()]));
        let summary = e.image_summary("c", &again).unwrap();
        assert!(summary.size > 0);
    }
}
