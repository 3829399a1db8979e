//! The playground in a real browser (Debian's chromium driven by playwright-core):
//! lesson 1 with the keyboard and the "Type it" buttons, ctrl-P ctrl-Q reaching the
//! container, a reload finding the same shell, a published port opened in a new tab,
//! and the language switch. The script is tests/browser/lesson1.mjs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::lab::Lab;
use berth_tests::require;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

#[test]
fn lesson_one_in_a_real_browser() {
    let root = workspace();
    require("node", "apt-get install nodejs npm (node 20 or later)");
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(chromium.exists(), "{} is required for this test: apt-get install chromium fonts-noto-cjk", chromium.display());
    let playwright = root.join("playground-web/node_modules/playwright-core/index.mjs");
    assert!(playwright.exists(), "{} is required for this test: (cd playground-web && npm ci)", playwright.display());

    let lab = Lab::start();
    // Screenshots of this run go under target/ (the committed ones in tests/browser/
    // screenshots are refreshed by running the script by hand).
    let exe = std::env::current_exe().expect("test exe path");
    let shots = exe.parent().and_then(Path::parent).expect("target dir").join("tmp").join("browser-screenshots");
    let mut child = Command::new("node")
        .arg(root.join("tests/browser/lesson1.mjs"))
        .arg(format!("http://{}", lab.addr))
        .arg(&shots)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    // Read both pipes on threads so a chatty script never blocks.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // The script gives up on its own after 240 s; this is the backstop.
    let end = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for node") {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (out_t.join().unwrap_or_default(), err_t.join().unwrap_or_default());
    println!("{stdout}{stderr}");
    let log = lab.berth.server_log();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    match status {
        Some(st) if st.success() => {}
        Some(st) => panic!("the browser test failed ({st}):\n{stdout}{stderr}\nscreenshots: {}\nserver log tail:\n{tail}", shots.display()),
        None => panic!("the browser test did not finish in 300 s:\n{stdout}{stderr}\nserver log tail:\n{tail}"),
    }
}
