//! Builds the wasm runtime's test guest (`berth-test-guest` of wasm/guests) as a
//! core module (wasm32-wasip1) and as a component (wasm32-wasip2);
//! `berth_tests::wasm::{test_guest, test_component}` give their paths.

include!("../wasm/build_guest.rs");

fn main() {
    let manifest_dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let module = build_guest(&manifest_dir, "berth-test-guest", "wasm32-wasip1");
    println!("cargo:rustc-env=BERTH_TEST_GUEST={}", module.display());
    let component = build_guest(&manifest_dir, "berth-test-guest", "wasm32-wasip2");
    println!(
        "cargo:rustc-env=BERTH_TEST_COMPONENT={}",
        component.display()
    );
}
