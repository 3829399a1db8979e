// Shared by engine/build.rs (the hello-wasm seed) and tests/build.rs (the test guest)
// through `include!`: builds one binary of wasm/guests for a WASI target
// (wasm32-wasip1: a core module; wasm32-wasip2: a component).
//
// The guests are a workspace of their own, built by a nested cargo with its own
// target directory: the outer build holds the lock on its target directory, so
// sharing it would deadlock.

/// Variables the outer cargo sets for a build script (or a wrapper like clippy sets
/// for the outer build) that would bend the nested build to the outer one's settings:
/// its flags, target, profile, jobserver or rustc wrapper.
const LEAKY_VARS: &[&str] = &[
    "RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC_WORKSPACE_WRAPPER", "RUSTDOC", "RUSTC_LINKER", "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR", "MAKEFLAGS", "MFLAGS", "DEBUG", "OPT_LEVEL", "PROFILE", "TARGET", "HOST", "NUM_JOBS", "OUT_DIR",
];

/// `CARGO_*` variables the nested cargo may keep: where cargo lives and how it
/// reaches the network. Every other `CARGO_*` (CARGO_TARGET_DIR, CARGO_BUILD_TARGET,
/// CARGO_ENCODED_RUSTFLAGS, CARGO_MAKEFLAGS, CARGO_PROFILE_*, CARGO_FEATURE_*,
/// CARGO_CFG_*, CARGO_PKG_*, CARGO_MANIFEST_*, ...) describes the outer build and goes.
fn keep_cargo_var(name: &str) -> bool {
    name == "CARGO_HOME"
        || ["CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_TERM_"].iter().any(|p| name.starts_with(p))
}

/// Builds `bin` of wasm/guests (found from `manifest_dir`, a crate of this workspace)
/// for `target` into `$OUT_DIR/wasm-guests`, prints the rerun rules, and returns the
/// module's path. Panics (a build script's way to fail) with what to install when it
/// cannot.
fn build_guest(manifest_dir: &std::path::Path, bin: &str, target: &str) -> std::path::PathBuf {
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cargo = std::env::var_os("CARGO").expect("cargo sets CARGO");
    let guests = manifest_dir.join("..").join("wasm").join("guests");
    // A directory is scanned as a whole, so new files under src/ count too.
    for p in ["Cargo.toml", "Cargo.lock", "src", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", guests.join(p).display());
    }
    let target_dir = out_dir.join("wasm-guests");
    let mut cmd = std::process::Command::new(&cargo);
    cmd.args(["build", "--release", "--target", target, "--bin", bin, "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads .cargo/config.toml from the current directory up, not the manifest's.
        .current_dir(&guests);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if LEAKY_VARS.contains(&name) || (name.starts_with("CARGO_") && !keep_cargo_var(name)) {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("building {bin} (wasm/guests): cannot run {}: {e}", std::path::Path::new(&cargo).display()));
    if !out.status.success() {
        panic!(
            "building {bin} (wasm/guests) needs the {target} target: rustup target add {target}\n\
             `cargo build --target {target}` in {} failed ({}):\n{}",
            guests.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let built = target_dir.join(target).join("release").join(format!("{bin}.wasm"));
    assert!(built.exists(), "cargo built wasm/guests but {} is missing", built.display());
    built
}
