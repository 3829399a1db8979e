//! Embeds the built playground (scripts/build-playground's output) in the binary.
//! Its folder: `BERTH_PLAYGROUND_DIST`, else `playground-web/dist` in the workspace.
//! Without it the server still builds, and its web listener says how to build it.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_PLAYGROUND_DIST");
    let dist = std::env::var_os("BERTH_PLAYGROUND_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../playground-web/dist"));
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut out = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    if let Ok(entries) = std::fs::read_dir(&dist) {
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            println!("cargo:rerun-if-changed={}", f.display());
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let abs = f.canonicalize().unwrap();
            writeln!(out, "    ({name:?}, include_bytes!({:?})),", abs.display().to_string()).unwrap();
        }
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(dest, out).unwrap();
}
