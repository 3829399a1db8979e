//! Step checks: a small declarative language over what the engine saw.
//!
//! A [`Check`] is evaluated over an [`Observation`]: the [`Event`]s the engine produced
//! since the step became current (oldest first) and a [`State`] snapshot of the
//! session. In a lesson file a check is one TOML table with exactly one key, the kind:
//!
//! ```toml
//! # a busybox container was detached from (ctrl-P ctrl-Q) and is still running
//! check = { event = { kind = "container", action = "detach", image = "busybox", container = { state = "running" } } }
//!
//! # both, in any order
//! check = { all = [
//!   { event = { kind = "request", action = "ps", attrs = { all = false } } },
//!   { event = { kind = "request", action = "ps", attrs = { all = true } } },
//! ] }
//!
//! # stopped, then started again: the same container
//! check = { sequence = { same_id = true, events = [
//!   { kind = "container", action = "stop" },
//!   { kind = "container", action = "start" },
//! ] } }
//! ```
//!
//! Event kinds, actions and attribute names are checked against [`VOCABULARY`] when a
//! lesson is loaded, so a typo is an error rather than a step that never passes.

use crate::api::{ContainerSummary, ImageSummary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One engine event (Docker's `/events` vocabulary, plus Berth's `request` events).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `image`, `volume`, `network` or `request`.
    pub kind: String,
    /// `create`, `detach`, `exec_start: sh -c ls`...
    pub action: String,
    /// The object: a container's full id, an image reference or id, a volume's name...
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// An event with no attributes (for tests and the server's own use).
    pub fn new(kind: &str, action: &str, id: &str) -> Event {
        Event {
            kind: kind.into(),
            action: action.into(),
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// The same event with one more attribute.
    pub fn attr(mut self, key: &str, value: &str) -> Event {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// The action without its argument: `exec_start: sh` -> `exec_start`.
    pub fn verb(&self) -> &str {
        self.action
            .split_once(": ")
            .map_or(self.action.as_str(), |(v, _)| v)
    }

    /// The action's argument: `exec_start: sh -c ls` -> `sh -c ls`.
    pub fn argument(&self) -> Option<&str> {
        self.action.split_once(": ").map(|(_, a)| a)
    }
}

/// A snapshot of the session (the workstation itself is not in it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub containers: Vec<ContainerSummary>,
    pub images: Vec<ImageSummary>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Network names (user-defined ones; the built-in `bridge`, `host`, `none` may be
    /// listed too).
    pub networks: Vec<String>,
}

/// What a check looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Since the step became current, oldest first.
    pub events: &'a [Event],
    pub state: &'a State,
}

/// Event kinds, their actions and the attribute names a check may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindVocabulary {
    pub kind: &'static str,
    pub actions: &'static [&'static str],
    pub attributes: &'static [&'static str],
}

/// Every event a check may wait for. `exec_create` and `exec_start` carry the command
/// line after `": "` in the action (match it with `command`).
pub const VOCABULARY: &[KindVocabulary] = &[
    KindVocabulary {
        kind: "container",
        actions: &[
            "create",
            "start",
            "attach",
            "detach",
            "die",
            "kill",
            "stop",
            "destroy",
            "pause",
            "unpause",
            "rename",
            "restart",
            "commit",
            "exec_create",
            "exec_start",
            "exec_die",
            "archive-path",
            "extract-to-dir",
        ],
        attributes: &[
            "name", "image", "exitCode", "signal", "oldName", "tty", "ports", "network", "links",
            "volumes",
        ],
    },
    KindVocabulary {
        kind: "image",
        actions: &[
            "pull", "tag", "untag", "delete", "push", "build", "save", "load", "import", "prune",
        ],
        attributes: &["name"],
    },
    KindVocabulary {
        kind: "volume",
        actions: &["create", "destroy", "mount"],
        attributes: &["container", "destination", "driver"],
    },
    KindVocabulary {
        kind: "network",
        actions: &["create", "connect", "disconnect", "destroy"],
        attributes: &["name", "container", "type"],
    },
    KindVocabulary {
        kind: "request",
        actions: &[
            "search",
            "images",
            "ps",
            "logs",
            "inspect",
            "history",
            "login",
            "port-open",
        ],
        attributes: &[
            "term",
            "all",
            "container",
            "follow",
            "target",
            "type",
            "image",
            "registry",
            "port",
        ],
    },
];

/// A container's `state` as the engine reports it.
pub const CONTAINER_STATES: &[&str] = &[
    "created",
    "running",
    "paused",
    "restarting",
    "exited",
    "dead",
];

/// A step's check. In TOML: a table with exactly one of these keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Some event since the step began matches:
    /// `event = { kind = "image", action = "pull", image = "busybox" }`.
    Event(EventMatch),
    /// These events happened in this order (others may come between):
    /// `sequence = { same_id = true, events = [ {...}, {...} ] }`. With `same_id` they
    /// are all about the same object (the same container...).
    Sequence(Sequence),
    /// Every check holds: `all = [ {...}, {...} ]`.
    All(Vec<Check>),
    /// At least one check holds: `any = [ {...}, {...} ]`.
    Any(Vec<Check>),
    /// The check does not hold: `not = { event = {...} }`.
    Not(Box<Check>),
    /// The session has (at least `count_at_least`, default 1) such containers now:
    /// `container = { image = "busybox", state = "running" }`.
    Container(ContainerMatch),
    /// The session has no such container now: `no_container = { state = "exited" }`.
    NoContainer(ContainerMatch),
    /// The session has such an image now: `image = { tag = "hello:v1" }`.
    Image(ImageMatch),
    /// The session has no such image now: `no_image = { tag = "localhost:5000/mybox:v1" }`.
    NoImage(ImageMatch),
    /// The session has this volume now: `volume = { name = "data" }`.
    Volume(NameMatch),
    /// The session has no such volume now.
    NoVolume(NameMatch),
    /// The session has this network now: `network = { name = "appnet" }`.
    Network(NameMatch),
    /// The session has no such network now.
    NoNetwork(NameMatch),
}

/// Matches one [`Event`]. Every field given must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    /// One of [`VOCABULARY`]'s kinds.
    pub kind: String,
    /// One of the kind's actions; `exec_start` matches `exec_start: <cmdline>`.
    pub action: String,
    /// The event's id (a volume's or network's name, an image reference...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Pattern>,
    /// An image reference, compared with Docker's defaults applied (`busybox` =
    /// `busybox:latest` = `docker.io/library/busybox:latest`). For container and
    /// request events it tests the `image` attribute; for image events the `name`
    /// attribute (any of its comma-separated tags), or the id when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The command line of an `exec_create` / `exec_start` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Pattern>,
    /// Attributes, each of which must be present and match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, Pattern>,
    /// For container events: the container the event is about still exists now and
    /// matches (`container = { state = "running" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerMatch>,
}

/// See [`Check::Sequence`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// All the matched events have the same id (the same container, image...).
    #[serde(default)]
    pub same_id: bool,
    pub events: Vec<EventMatch>,
}

/// Matches containers of the [`State`]. Every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Pattern>,
    /// An image reference, compared with Docker's defaults applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// One of [`CONTAINER_STATES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// A host port the container publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Only in `container = {...}`: how many must match (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_at_least: Option<usize>,
}

/// Matches images of the [`State`]. Every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMatch {
    /// One of the image's tags, compared with Docker's defaults applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// One of the image's layers was made by a matching instruction
    /// (`layer = { contains = "CMD" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Pattern>,
}

/// Matches a volume or network by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameMatch {
    pub name: Pattern,
}

/// A text pattern: a plain string (or number, or boolean) is an exact match; a table
/// with one key is an operator: `{ contains = "nc" }`, `{ prefix = "sh" }`,
/// `{ one_of = ["0", "137"] }`, `{ not = "0" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Contains(String),
    Prefix(String),
    OneOf(Vec<String>),
    Not(String),
}

impl Pattern {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Exact(p) => s == p,
            Pattern::Contains(p) => s.contains(p.as_str()),
            Pattern::Prefix(p) => s.starts_with(p.as_str()),
            Pattern::OneOf(ps) => ps.iter().any(|p| p == s),
            Pattern::Not(p) => s != p,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PatternOp {
    Contains(String),
    Prefix(String),
    OneOf(Vec<String>),
    Not(String),
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let op = match self.clone() {
            Pattern::Exact(p) => return s.serialize_str(&p),
            Pattern::Contains(p) => PatternOp::Contains(p),
            Pattern::Prefix(p) => PatternOp::Prefix(p),
            Pattern::OneOf(p) => PatternOp::OneOf(p),
            Pattern::Not(p) => PatternOp::Not(p),
        };
        op.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pattern;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or one of { contains = .. }, { prefix = .. }, { one_of = [..] }, { not = .. }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pattern, E> {
                Ok(Pattern::Exact(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Pattern, E> {
                Ok(Pattern::Exact(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Pattern, E> {
                Ok(Pattern::Exact(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Pattern, E> {
                Ok(Pattern::Exact(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Pattern, A::Error> {
                let op = PatternOp::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(match op {
                    PatternOp::Contains(p) => Pattern::Contains(p),
                    PatternOp::Prefix(p) => Pattern::Prefix(p),
                    PatternOp::OneOf(p) => Pattern::OneOf(p),
                    PatternOp::Not(p) => Pattern::Not(p),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An image reference with Docker's defaults applied: `busybox` ->
/// `busybox:latest`, `docker.io/library/busybox` -> `busybox:latest`.
pub fn normalize_reference(reference: &str) -> String {
    let mut r = reference.trim();
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = r.strip_prefix(prefix) {
            r = rest;
        }
    }
    if let Some(rest) = r.strip_prefix("library/") {
        r = rest;
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') || r.starts_with("sha256:") || r.is_empty() {
        r.to_owned()
    } else {
        format!("{r}:latest")
    }
}

fn same_reference(a: &str, b: &str) -> bool {
    normalize_reference(a) == normalize_reference(b)
}

/// Full and short ids name the same object.
fn same_id(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

impl Check {
    /// Whether the check holds over what was observed.
    pub fn holds(&self, o: &Observation) -> bool {
        match self {
            Check::Event(m) => o.events.iter().any(|e| m.matches(e, o.state)),
            Check::Sequence(s) => s.holds(o),
            Check::All(cs) => cs.iter().all(|c| c.holds(o)),
            Check::Any(cs) => cs.iter().any(|c| c.holds(o)),
            Check::Not(c) => !c.holds(o),
            Check::Container(m) => {
                let n = o.state.containers.iter().filter(|c| m.matches(c)).count();
                n >= m.count_at_least.unwrap_or(1)
            }
            Check::NoContainer(m) => !o.state.containers.iter().any(|c| m.matches(c)),
            Check::Image(m) => o.state.images.iter().any(|i| m.matches(i)),
            Check::NoImage(m) => !o.state.images.iter().any(|i| m.matches(i)),
            Check::Volume(m) => o.state.volumes.iter().any(|v| m.name.matches(v)),
            Check::NoVolume(m) => !o.state.volumes.iter().any(|v| m.name.matches(v)),
            Check::Network(m) => o.state.networks.iter().any(|n| m.name.matches(n)),
            Check::NoNetwork(m) => !o.state.networks.iter().any(|n| m.name.matches(n)),
        }
    }

    /// `Err(reason)` when the check could never hold: an empty `all`/`any`/`sequence`,
    /// an event kind, action or attribute not in [`VOCABULARY`], an unknown container
    /// state, a field that does not apply where it is used.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Check::Event(m) => m.validate(),
            Check::Sequence(s) => {
                if s.events.is_empty() {
                    return Err("`sequence` has no events".into());
                }
                s.events.iter().try_for_each(EventMatch::validate)
            }
            Check::All(cs) | Check::Any(cs) => {
                if cs.is_empty() {
                    let which = if matches!(self, Check::All(_)) {
                        "all"
                    } else {
                        "any"
                    };
                    return Err(format!("`{which}` is empty"));
                }
                cs.iter().try_for_each(Check::validate)
            }
            Check::Not(c) => c.validate(),
            Check::Container(m) => {
                if m.count_at_least == Some(0) {
                    return Err("`count_at_least = 0` always holds".into());
                }
                m.validate()
            }
            Check::NoContainer(m) => {
                if m.count_at_least.is_some() {
                    return Err("`count_at_least` does not apply to `no_container`".into());
                }
                m.validate()
            }
            Check::Image(m) | Check::NoImage(m) => m.validate(),
            Check::Volume(m) | Check::NoVolume(m) | Check::Network(m) | Check::NoNetwork(m) => {
                m.name.validate()
            }
        }
    }
}

impl Sequence {
    fn holds(&self, o: &Observation) -> bool {
        if !self.same_id {
            return subsequence(&self.events, o.events.iter(), o.state);
        }
        let mut ids: Vec<&str> = Vec::new();
        for e in o.events {
            if !ids.contains(&e.id.as_str()) {
                ids.push(&e.id);
            }
        }
        ids.into_iter().any(|id| {
            subsequence(
                &self.events,
                o.events.iter().filter(|e| e.id == id),
                o.state,
            )
        })
    }
}

/// Greedy: the first event that matches each pattern, in order.
fn subsequence<'a>(
    patterns: &[EventMatch],
    events: impl Iterator<Item = &'a Event>,
    state: &State,
) -> bool {
    let mut want = patterns.iter().peekable();
    for e in events {
        match want.peek() {
            Some(m) if m.matches(e, state) => {
                want.next();
            }
            Some(_) => {}
            None => break,
        }
    }
    want.peek().is_none()
}

impl EventMatch {
    pub fn matches(&self, e: &Event, state: &State) -> bool {
        if e.kind != self.kind || e.verb() != self.action {
            return false;
        }
        if let Some(p) = &self.id {
            if !p.matches(&e.id) {
                return false;
            }
        }
        if let Some(p) = &self.command {
            match e.argument() {
                Some(cmd) if p.matches(cmd) => {}
                _ => return false,
            }
        }
        if let Some(want) = &self.image {
            let ok = if e.kind == "image" {
                match e.attributes.get("name") {
                    Some(names) => names.split(',').any(|n| same_reference(n.trim(), want)),
                    None => same_reference(&e.id, want),
                }
            } else {
                e.attributes
                    .get("image")
                    .is_some_and(|i| same_reference(i, want))
            };
            if !ok {
                return false;
            }
        }
        for (k, p) in &self.attrs {
            match e.attributes.get(k) {
                Some(v) if p.matches(v) => {}
                _ => return false,
            }
        }
        if let Some(m) = &self.container {
            let now = state.containers.iter().find(|c| same_id(&c.id, &e.id));
            if !now.is_some_and(|c| m.matches(c)) {
                return false;
            }
        }
        true
    }

    fn validate(&self) -> Result<(), String> {
        let Some(v) = VOCABULARY.iter().find(|v| v.kind == self.kind) else {
            let kinds: Vec<_> = VOCABULARY.iter().map(|v| v.kind).collect();
            return Err(format!(
                "unknown event kind `{}` (known: {})",
                self.kind,
                kinds.join(", ")
            ));
        };
        if !v.actions.contains(&self.action.as_str()) {
            return Err(format!(
                "unknown action `{}` for {} events (known: {})",
                self.action,
                self.kind,
                v.actions.join(", ")
            ));
        }
        for (k, p) in &self.attrs {
            if !v.attributes.contains(&k.as_str()) {
                return Err(format!(
                    "{} events have no attribute `{k}` (known: {})",
                    self.kind,
                    v.attributes.join(", ")
                ));
            }
            p.validate()?;
        }
        if let Some(p) = &self.id {
            p.validate()?;
        }
        if let Some(p) = &self.command {
            if !matches!(self.action.as_str(), "exec_create" | "exec_start") {
                return Err("`command` only applies to exec_create and exec_start".into());
            }
            p.validate()?;
        }
        if let Some(i) = &self.image {
            let applies = matches!(self.kind.as_str(), "container" | "image")
                || (self.kind == "request" && self.action == "history");
            if !applies {
                return Err(format!(
                    "`image` does not apply to {}.{} events",
                    self.kind, self.action
                ));
            }
            if i.trim().is_empty() {
                return Err("`image` is empty".into());
            }
        }
        if let Some(c) = &self.container {
            if self.kind != "container" {
                return Err("`container` only applies to container events".into());
            }
            if self.action == "destroy" {
                return Err("a destroyed container is never in the state".into());
            }
            if c.count_at_least.is_some() {
                return Err("`count_at_least` does not apply inside an event".into());
            }
            c.validate()?;
        }
        Ok(())
    }
}

impl ContainerMatch {
    pub fn matches(&self, c: &ContainerSummary) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches(&c.name))
            && self
                .image
                .as_ref()
                .is_none_or(|i| same_reference(&c.image, i))
            && self.state.as_ref().is_none_or(|s| &c.state == s)
            && self
                .port
                .is_none_or(|p| c.ports.iter().any(|pp| pp.host_port == p))
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(s) = &self.state {
            if !CONTAINER_STATES.contains(&s.as_str()) {
                return Err(format!(
                    "unknown container state `{s}` (known: {})",
                    CONTAINER_STATES.join(", ")
                ));
            }
        }
        if let Some(p) = &self.name {
            p.validate()?;
        }
        Ok(())
    }
}

impl ImageMatch {
    pub fn matches(&self, i: &ImageSummary) -> bool {
        self.tag
            .as_ref()
            .is_none_or(|t| i.tags.iter().any(|have| same_reference(have, t)))
            && self
                .layer
                .as_ref()
                .is_none_or(|p| i.layers.iter().any(|l| p.matches(&l.created_by)))
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.layer {
            p.validate()?;
        }
        Ok(())
    }
}

impl Pattern {
    fn validate(&self) -> Result<(), String> {
        match self {
            Pattern::OneOf(v) if v.is_empty() => Err("`one_of` is empty".into()),
            _ => Ok(()),
        }
    }
}

// The tests write checks in TOML, as lesson files do.
#[cfg(all(test, feature = "content"))]
mod tests;
