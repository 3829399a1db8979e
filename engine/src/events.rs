//! One typed event stream for everything the engine does. It feeds `/events`, the
//! lesson checks and the instructor console; it is also how `wait` learns of an exit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Events kept for `docker events --since`.
const HISTORY: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub namespace: String,
    /// "container", "image", "volume", "network".
    pub kind: String,
    /// "create", "start", "attach", "detach", "die", "destroy", "pull", "tag", ...
    pub action: String,
    /// The object's id (container id, image id or reference, volume name).
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    pub time: DateTime<Utc>,
}

#[derive(Default)]
pub struct Events {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    subscribers: Vec<Sender<Event>>,
    history: VecDeque<Event>,
}

impl Events {
    pub fn publish(&self, e: Event) {
        tracing::debug!(kind = %e.kind, action = %e.action, id = %e.id, "event");
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers.retain(|s| s.send(e.clone()).is_ok());
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(e);
    }

    /// Past events since `since` (if any), and a receiver of every event from now on.
    pub fn subscribe(&self, since: Option<DateTime<Utc>>) -> (Vec<Event>, Receiver<Event>) {
        let (tx, rx) = channel();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let past = match since {
            Some(t) => inner.history.iter().filter(|e| e.time >= t).cloned().collect(),
            None => vec![],
        };
        inner.subscribers.push(tx);
        (past, rx)
    }
}
