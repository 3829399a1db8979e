//! Berth's server: the Docker Engine API over [`berth_engine::Engine`], so the real
//! `docker` CLI drives Berth. `main.rs` is a thin binary around [`serve`].

// The `/info` answer is one big json! literal.
#![recursion_limit = "256"]

pub mod api;
pub mod changes;
pub mod chunks;
pub mod classroom;
pub mod cluster;
pub mod lab;
pub mod metrics;
pub mod registry;
pub mod serve;
pub mod web;
