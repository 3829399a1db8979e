//! End-to-end tests: the real docker CLI against `berth serve` on a temp root.
//! One test binary, one module per area (ripgrep's layout).

mod api_endpoints;
mod api_parity;
mod browser;
mod build;
mod classroom;
mod cluster;
mod compose;
mod containers;
mod copy;
mod debian_images;
mod deploy_kubernetes;
mod fidelity;
mod health;
mod images;
mod interactive;
mod kubernetes;
mod lab;
mod layers;
mod lessons;
mod networks;
mod on_kubernetes;
mod observability;
mod python_sdk;
mod registry_client;
mod registry_flow;
mod registry_server;
mod resources;
mod security;
mod system;
mod userns;
mod volumes;
mod wasm;
