//! The Docker SDK for Python (Debian's python3-docker 5.0), a client of the Engine
//! API no one here wrote: tests/python/sdk_check.py drives containers, images (with a
//! push to and pull from Berth's own registry, and a build), volumes and networks
//! through its high-level client and its low-level `APIClient`, asserting as it goes.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_tests::{require, Berth};

/// Debian's python, where python3-docker is installed (the PATH's may be another).
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn the_python_sdk_drives_containers_images_volumes_and_networks() {
    require(PYTHON, "apt-get install python3");
    let has_sdk = Command::new(PYTHON)
        .args(["-c", "import docker"])
        .status()
        .expect("run python3")
        .success();
    assert!(
        has_sdk,
        "the Docker SDK for Python is required: apt-get install python3-docker"
    );
    let b = Berth::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("sdk_check.py");
    let o = Command::new(PYTHON)
        .arg(&script)
        .env("DOCKER_HOST", format!("unix://{}", b.sock.display()))
        .env("DOCKER_CONFIG", &b.config_dir)
        .env("BERTH_REGISTRY", b.registry_addr())
        .env_remove("DOCKER_CONTEXT")
        // Unbuffered, so the output shows how far it got even when it hangs.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run sdk_check.py");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let log = b.server_log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        o.status.success() && out.contains("sdk-check: all passed"),
        "sdk_check.py failed ({}):\nstdout:\n{out}\nstderr:\n{err}\nserver log tail:\n{}",
        o.status,
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
    // The script cleaned up after itself through the SDK: nothing of it is left.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(
        b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone"
    );
}
