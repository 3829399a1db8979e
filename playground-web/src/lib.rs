//! The playground (built for wasm32-unknown-unknown by scripts/build-playground).
