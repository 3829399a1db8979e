//! End-to-end tests: the real docker CLI against `berth serve` on a temp root.
//! One test binary, one module per area (ripgrep's layout).

mod containers;
mod interactive;
mod copy;
mod volumes;
mod images;
mod system;
mod registry_client;
mod registry_server;
mod build;
mod registry_flow;
mod lab;
mod browser;
mod lessons;
mod networks;
mod wasm;
mod security;
mod userns;
mod classroom;
