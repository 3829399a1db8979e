//! A session's state as the page shows it and as lesson checks see it, read from the
//! engine: one place, so the picture and the checks never disagree.

use berth_engine::Engine;
use berth_lessons::api::{ContainerSummary, ImageSummary, LayerSummary, PublishedPort};
use berth_lessons::check::State;

pub fn containers(engine: &Engine, ns: &str, session: &str) -> Vec<ContainerSummary> {
    let now = chrono::Utc::now();
    engine
        .containers(ns)
        .iter()
        .map(|c| ContainerSummary {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.config.image.clone(),
            state: c.state.status.as_str().to_string(),
            status: c.status_text(now),
            ports: c
                .ports
                .iter()
                .map(|p| PublishedPort {
                    container_port: p.container_port,
                    host_port: p.host_port,
                    protocol: p.proto.clone(),
                    url: (p.proto == "tcp").then(|| format!("/lab/{session}/ports/{}/", p.host_port)),
                })
                .collect(),
        })
        .collect()
}

pub fn images(engine: &Engine, ns: &str) -> Vec<ImageSummary> {
    let Ok(list) = engine.list_images(ns, false) else { return vec![] };
    list.into_iter()
        .map(|i| {
            let mut layers: Vec<LayerSummary> = engine
                .history(ns, &i.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, h, size)| LayerSummary { created_by: h.created_by.unwrap_or_default(), size, empty: h.empty_layer })
                .collect();
            // `history` is newest first; the picture stacks from the base up.
            layers.reverse();
            ImageSummary { id: i.id, tags: i.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect(), size: i.size, layers }
        })
        .collect()
}

pub fn state(engine: &Engine, ns: &str, session: &str) -> State {
    State {
        containers: containers(engine, ns, session),
        images: images(engine, ns),
        volumes: engine.list_volumes(ns).into_iter().map(|v| v.name).collect(),
        networks: engine.list_networks(ns).unwrap_or_default().into_iter().map(|n| n.name).collect(),
    }
}
