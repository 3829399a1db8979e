//! "Look again": what open dashboards wait on. The lab bumps it (a step done, a
//! terminal opened, a container started) and so does the classroom (a hand raised, a
//! message, a student joined); on a hub, each lab node's changes arrive over HTTP
//! (`cluster::node`) and are bumped here too.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(Arc::new(watch::channel(0).0))
    }
}

impl Changes {
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
