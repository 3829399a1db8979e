//! End-to-end tests: the real docker CLI against `berth serve` on a temp root.
//! One test binary, one module per area (ripgrep's layout).

mod containers;
mod interactive;
mod copy;
mod volumes;
mod images;
mod system;
