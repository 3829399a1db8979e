//! `docker system df` and `docker ps --size`: what a namespace's images, containers
//! and volumes take on disk, counted as dockerd counts them.

use std::collections::BTreeMap;

use crate::container::Container;
use crate::error::Result;
use crate::fsutil;
use crate::volume::Volume;

use super::image_ops::ImageSummary;
use super::Engine;

/// A container's `SizeRw` (its writable layer) and `SizeRootFs` (that and its image).
#[derive(Debug, Clone, Copy)]
pub struct ContainerSize {
    pub rw: u64,
    pub root_fs: u64,
}

#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub summary: ImageSummary,
    /// The bytes of its layers that other images of the namespace use too.
    pub shared_size: u64,
}

#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub volume: Volume,
    pub size: u64,
    /// Containers (running or not) that mount it.
    pub ref_count: usize,
}

#[derive(Debug, Clone)]
pub struct DiskUsage {
    /// Every layer of the namespace's images once, intermediate images' included.
    pub layers_size: u64,
    /// The images `docker images` lists (not the hidden intermediate ones).
    pub images: Vec<ImageUsage>,
    pub containers: Vec<(Container, ContainerSize)>,
    pub volumes: Vec<VolumeUsage>,
}

impl Engine {
    pub fn container_size(&self, c: &Container) -> ContainerSize {
        let rw = fsutil::dir_size(&super::container_ops::dir_of(self, &c.id).join("upper"));
        ContainerSize {
            rw,
            root_fs: rw + self.image_size(&c.image),
        }
    }

    pub fn system_df(&self, ns: &str) -> Result<DiskUsage> {
        // Each layer's size, and how many of the namespace's images use it.
        let mut layers: BTreeMap<String, (u64, usize)> = BTreeMap::new();
        let mut image_layers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for summary in self.list_images(ns, true)? {
            let rec = self.images.record(&summary.id)?;
            let chain: Vec<String> = rec.layers.iter().map(|l| l.chain_id.clone()).collect();
            for id in &chain {
                let size = self
                    .store
                    .layer_info(id)
                    .ok()
                    .flatten()
                    .map_or(0, |i| i.size);
                layers.entry(id.clone()).or_insert((size, 0)).1 += 1;
            }
            image_layers.insert(summary.id, chain);
        }
        let images = self
            .list_images(ns, false)?
            .into_iter()
            .map(|summary| {
                let shared_size = image_layers
                    .get(&summary.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| layers.get(id))
                    .filter(|(_, users)| *users > 1)
                    .map(|(size, _)| size)
                    .sum();
                ImageUsage {
                    summary,
                    shared_size,
                }
            })
            .collect();
        let containers: Vec<(Container, ContainerSize)> = self
            .containers(ns)
            .into_iter()
            .map(|c| {
                let size = self.container_size(&c);
                (c, size)
            })
            .collect();
        let volumes = self
            .list_volumes(ns)
            .into_iter()
            .map(|volume| {
                let ref_count = containers
                    .iter()
                    .filter(|(c, _)| {
                        c.mounts
                            .iter()
                            .any(|m| m.kind == "volume" && m.name == volume.name)
                    })
                    .count();
                VolumeUsage {
                    size: fsutil::dir_size(&volume.mountpoint),
                    ref_count,
                    volume,
                }
            })
            .collect();
        Ok(DiskUsage {
            layers_size: layers.values().map(|(size, _)| size).sum(),
            images,
            containers,
            volumes,
        })
    }
}
