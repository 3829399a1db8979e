//! Berth split into roles on one machine: lab nodes (`berth serve --role node`, each a
//! [`Lab`] with its own state root) and a hub (`--role hub`) in front of them, sharing
//! one database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::berth_bin;
use crate::lab::{free_port, Lab, Web};

/// What hub and nodes of a test share: long enough for `--cluster-secret`.
pub const SECRET: &str = "berth-test-cluster-secret-0123456789";

/// A lab node named `name` on database `db` (a URL).
pub fn node(name: &str, db: &str) -> Lab {
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}");
    Lab::start_on(
        &addr,
        &[
            "--role",
            "node",
            "--node-name",
            name,
            "--advertise-url",
            &url,
            "--cluster-secret",
            SECRET,
            "--database",
            db,
        ],
    )
}

/// `berth serve --role hub`, stopped (kill -9) when dropped.
pub struct Hub {
    pub web: Web,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Hub {
    /// Starts a hub on database `db` and waits until its `/readyz` says ready.
    pub fn start(db: &str) -> Hub {
        let tmp = tempfile::Builder::new()
            .prefix("berth-hub-")
            .tempdir()
            .expect("temp dir");
        let log_path = tmp.path().join("hub.log");
        let log = std::fs::File::create(&log_path).expect("hub log");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(berth_bin())
            .args(["serve", "--role", "hub", "--listen", &addr])
            .args(["--cluster-secret", SECRET, "--database", db])
            .arg("--root")
            .arg(tmp.path().join("root"))
            .env("BERTH_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth serve --role hub");
        let mut hub = Hub {
            web: Web {
                addr,
                log: log_path,
            },
            child,
            _tmp: tmp,
        };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if hub.web.http("GET", "/readyz", None).0 == 200 {
                return hub;
            }
            if let Ok(Some(st)) = hub.child.try_wait() {
                panic!("the hub exited ({st}): {}", hub.web.log());
            }
            assert!(
                Instant::now() < end,
                "the hub did not get ready: {}",
                hub.web.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl std::ops::Deref for Hub {
    type Target = Web;

    fn deref(&self) -> &Web {
        &self.web
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
