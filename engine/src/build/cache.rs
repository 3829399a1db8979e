//! The build cache: a step is reused when its parent image, its instruction (as it
//! goes into the history, so build args count) and, for COPY/ADD, the content hash of
//! its sources match an earlier build's step.
//!
//! ```text
//! <root>/build-cache/<sha256 of the key>   the image id that step made
//! ```
//! One file per entry, each written atomically: a crash leaves old or new entries,
//! never a torn index, and concurrent builds never rewrite each other's entries.

use std::path::PathBuf;

use crate::error::Result;
use crate::fsutil;
use crate::store::sha256_digest;

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(root: &std::path::Path) -> Cache {
        Cache { dir: root.join("build-cache") }
    }

    fn path(&self, parent: &str, step: &str, content: &str) -> PathBuf {
        let key = sha256_digest(format!("{parent}\n{step}\n{content}").as_bytes());
        self.dir.join(&key[7..])
    }

    pub fn get(&self, parent: &str, step: &str, content: &str) -> Option<String> {
        let id = std::fs::read_to_string(self.path(parent, step, content)).ok()?;
        let id = id.trim().to_string();
        crate::reference::validate_digest(&id).ok()?;
        Some(id)
    }

    pub fn put(&self, parent: &str, step: &str, content: &str, id: &str) -> Result<()> {
        fsutil::write_atomic(&self.path(parent, step, content), id.as_bytes())
    }
}
