//! Berth's container engine: everything a Docker daemon does, as a library.
//!
//! Open one [`Engine`] on a state root and call it from any thread:
//!
//! ```no_run
//! use berth_engine::{Engine, EngineOptions};
//! let engine = Engine::open(EngineOptions {
//!     root: "/var/lib/berth".into(),
//!     helper_exe: "/usr/local/bin/berth".into(),
//!     busybox: "/bin/busybox".into(),
//!     insecure_registries: vec![],
//!     registry_mirrors: vec![],
//! })?;
//! engine.seed_images("default")?;
//! # Ok::<(), berth_engine::Error>(())
//! ```
//!
//! Containers run under a per-container supervisor, [`shim`], started as
//! `berth shim DIR` (the `helper_exe`), so they outlive the server. Every user-visible
//! object lives in a namespace (a tenant): `default` for the plain Docker endpoint.

pub mod archive;
pub mod background;
pub mod build;
pub mod capabilities;
pub mod cgroup;
pub mod container;
pub mod cpus;
pub mod detach;
pub mod disk;
pub mod distribution;
pub mod dns;
mod engine;
pub mod envelope;
pub mod error;
pub mod etc_files;
pub mod events;
pub mod fsutil;
pub mod health;
pub mod hogs;
pub mod image;
pub mod log_config;
pub mod logs;
pub mod manifest;
pub mod mounts;
pub mod netns;
pub mod network;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod resources;
pub mod registry;
pub mod runtime;
pub mod seccomp;
pub mod security;
pub mod seed;
pub mod shim;
pub mod spec;
pub mod store;
pub mod sysctl;
pub mod throttle;
pub mod top;
pub mod unsupported;
pub mod userns;
pub mod volume;
pub mod volume_mount;
pub mod xattrs;

pub use engine::{
    ArchiveReader, AttachStream, CommitOptions, ContainerSize, CreateRequest, DiskUsage, EndpointRequest, Engine, EngineOptions, NetworkCreate, ExecConfig, ExecIo, ExecRecord, ImageSummary, ImageUsage, VolumeUsage,
    RemovedImages, WaitCondition, Waiter,
};
pub use engine::{cp_extract_main, nsexec_main};
pub use error::{Error, Result};
