//! Builds the `hello-wasm` seed image's module (wasm/guests, for wasm32-wasip1) into
//! `$OUT_DIR/hello-wasm.wasm`, which `seed::HELLO_WASM` embeds.

include!("../wasm/build_guest.rs");

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let built = build_guest(&manifest_dir, "hello-wasm", "wasm32-wasip1");
    let dest = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("hello-wasm.wasm");
    std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), dest.display()));
}
