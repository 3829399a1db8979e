//! Berth's lessons and the types the server and the playground exchange.
//!
//! This crate builds for the host and for wasm32 (the playground), so it depends on
//! neither the engine nor anything that needs an operating system.

pub mod api;
