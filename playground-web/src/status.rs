//! The status strip: the containers' lifecycle, their published ports, the images
//! and their layers.

use std::rc::Rc;

use berth_lessons::api::{ContainerSummary, ImageSummary, SessionStatus};
use yew::prelude::*;

use crate::i18n::{tr, T};
use crate::model::Lang;

/// How long a container that disappeared stays in the "removed" lane.
const GHOST_MS: f64 = 8000.0;

/// One container on the lifecycle picture (kept by name so its chip moves).
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub container: ContainerSummary,
    /// When it disappeared from the session (ms since the epoch).
    pub gone_since: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Strip {
    pub status: Option<SessionStatus>,
    /// In order of first appearance.
    pub tracks: Vec<Track>,
}

pub enum StripAction {
    /// A poll's answer (boxed: it is large, `Reset` is nothing), and when it came (ms
    /// since the epoch).
    Polled(Box<SessionStatus>, f64),
    /// A new session: forget the old one's containers.
    Reset,
}

impl Reducible for Strip {
    type Action = StripAction;

    fn reduce(self: Rc<Self>, action: StripAction) -> Rc<Self> {
        match action {
            StripAction::Reset => Rc::new(Strip::default()),
            StripAction::Polled(status, now) => {
                let mut tracks: Vec<Track> = Vec::new();
                for t in &self.tracks {
                    match status
                        .containers
                        .iter()
                        .find(|c| c.name == t.container.name)
                    {
                        Some(c) => tracks.push(Track {
                            container: c.clone(),
                            gone_since: None,
                        }),
                        None => {
                            let since = t.gone_since.unwrap_or(now);
                            if now - since < GHOST_MS {
                                tracks.push(Track {
                                    container: t.container.clone(),
                                    gone_since: Some(since),
                                });
                            }
                        }
                    }
                }
                for c in &status.containers {
                    if !tracks.iter().any(|t| t.container.name == c.name) {
                        tracks.push(Track {
                            container: c.clone(),
                            gone_since: None,
                        });
                    }
                }
                let next = Strip {
                    status: Some(*status),
                    tracks,
                };
                if next == *self {
                    self
                } else {
                    Rc::new(next)
                }
            }
        }
    }
}

/// The five lanes: created → running → paused → stopped (exited) → removed.
const LANES: [(&str, T); 5] = [
    ("created", T::StateCreated),
    ("running", T::StateRunning),
    ("paused", T::StatePaused),
    ("stopped", T::StateStopped),
    ("removed", T::StateRemoved),
];

fn lane_of(t: &Track) -> usize {
    if t.gone_since.is_some() {
        return 4;
    }
    match t.container.state.as_str() {
        "created" => 0,
        "running" | "restarting" => 1,
        "paused" => 2,
        _ => 3, // exited, dead, removing
    }
}

/// 1234567 -> "1.2 MB".
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

#[derive(Properties, PartialEq)]
pub struct StripProps {
    pub lang: Lang,
    pub strip: UseReducerHandle<Strip>,
}

const ROW_PX: usize = 44;

#[function_component(StatusStrip)]
pub fn status_strip(props: &StripProps) -> Html {
    let l = props.lang;
    let strip = &*props.strip;
    let rows = strip.tracks.len().max(1);
    let chips = strip.tracks.iter().enumerate().map(|(row, t)| {
        let lane = lane_of(t);
        let c = &t.container;
        let state = if t.gone_since.is_some() {
            "removed".to_string()
        } else {
            c.state.clone()
        };
        let style = format!("left:calc({lane} * 20% + 3px);top:{}px;", row * ROW_PX);
        let ports: Vec<Html> = c
            .ports
            .iter()
            .map(|p| {
                let label = format!("{}→{}/{}", p.host_port, p.container_port, p.protocol);
                match (&p.url, t.gone_since) {
                    (Some(url), None) => html! {
                        <a class="port-link" href={url.clone()} target="_blank" rel="noopener"
                            data-port={p.host_port.to_string()}>{ format!("↗ {label}") }</a>
                    },
                    _ => html! { <span class="port">{ label }</span> },
                }
            })
            .collect();
        html! {
            <div key={c.name.clone()} class={classes!("chip", format!("lane-{}", LANES[lane].0))}
                data-container={c.name.clone()} data-state={state} data-lane={LANES[lane].0}
                title={format!("{} ({}) — {}", c.name, c.image, c.status)} style={style}>
                <div class="chip-line chip-head">
                    <b class="chip-name">{ c.name.clone() }</b>
                    <span class="chip-image">{ c.image.clone() }</span>
                </div>
                <div class="chip-line small">
                    if ports.is_empty() { { c.status.clone() } } else { { for ports } }
                </div>
            </div>
        }
    });
    let images = strip
        .status
        .as_ref()
        .map(|s| s.images.clone())
        .unwrap_or_default();
    html! {
        <footer class="strip">
            <section class="lifecycle">
                <h2 class="section-title">{ tr(l, T::Containers) }</h2>
                <div class="lanes-head">
                    { for LANES.iter().map(|(key, name)| html! {
                        <div class={classes!("lane-head", format!("lane-{key}"))} data-lane-head={*key}>{ tr(l, *name) }</div>
                    }) }
                </div>
                <div class="lanes-body">
                    <div class="lanes" style={format!("height:{}px", rows * ROW_PX)}>
                        { for (0..5).map(|i| html! { <div class="lane-col" style={format!("left:{}%", i * 20)}></div> }) }
                        { for chips }
                        if strip.tracks.is_empty() {
                            <div class="muted empty-note">{ tr(l, T::NoContainers) }</div>
                        }
                    </div>
                </div>
            </section>
            <ImagesView lang={l} images={images} />
        </footer>
    }
}

#[derive(Properties, PartialEq)]
struct ImagesProps {
    lang: Lang,
    images: Vec<ImageSummary>,
}

/// "3 layers" / "레이어 3개".
fn layer_count(l: Lang, n: usize) -> String {
    match (l, n) {
        (Lang::Ko, n) => format!("레이어 {n}개"),
        (Lang::En, 1) => "1 layer".to_string(),
        (Lang::En, n) => format!("{n} layers"),
    }
}

/// Tallest stack, in px (the strip stays compact: the terminal gets the room).
const STACK_PX: f64 = 52.0;
const MIN_LAYER_PX: f64 = 4.0;
const EMPTY_LAYER_PX: f64 = 2.0;

#[function_component(ImagesView)]
fn images_view(props: &ImagesProps) -> Html {
    let l = props.lang;
    let biggest = props
        .images
        .iter()
        .map(|i| i.layers.iter().map(|x| x.size).sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    html! {
        <section class="images">
            <h2 class="section-title">{ tr(l, T::Images) }</h2>
            <div class="image-row">
            if props.images.is_empty() {
                <div class="muted">{ tr(l, T::NoImages) }</div>
            }
            { for props.images.iter().map(|img| {
                let name = img.tags.first().cloned().unwrap_or_else(|| tr(l, T::Dangling).to_string());
                let short = img.id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
                let n = img.layers.len();
                let tags = if img.tags.is_empty() { name.clone() } else { img.tags.join(", ") };
                html! {
                    <div class="image" key={img.id.clone()} data-image={img.id.clone()}
                        title={format!("{}\n{}\n{}", tags, short, human_size(img.size))}>
                        <div class="stack">
                        { for img.layers.iter().enumerate().map(|(i, layer)| {
                            let h = if layer.empty {
                                EMPTY_LAYER_PX
                            } else {
                                (STACK_PX * layer.size as f64 / biggest).max(MIN_LAYER_PX)
                            };
                            let tip = if layer.empty {
                                format!("{}\n{}", layer.created_by, tr(l, T::EmptyLayer))
                            } else {
                                format!("{}\n{}", layer.created_by, human_size(layer.size))
                            };
                            html! {
                                <div class={classes!("layer", layer.empty.then_some("empty"),
                                        (i + 1 == n).then_some("top"), format!("c{}", i % 4))}
                                    style={format!("height:{h:.1}px")} title={tip}></div>
                            }
                        }) }
                        </div>
                        <div class="image-text">
                            <div class="image-name">{ name }</div>
                            <div class="image-size small muted">{ format!("{} · {}", human_size(img.size), layer_count(l, n)) }</div>
                        </div>
                    </div>
                }
            }) }
            </div>
        </section>
    }
}
