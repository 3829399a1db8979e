//! Builds the wasm runtime's test guest (`berth-test-guest` of wasm/guests, for
//! wasm32-wasip1); `berth_tests::wasm::test_guest` gives its path.

include!("../wasm/build_guest.rs");

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let built = build_guest(&manifest_dir, "berth-test-guest");
    println!("cargo:rustc-env=BERTH_TEST_GUEST={}", built.display());
}
