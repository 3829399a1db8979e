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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn lesson_one_in_a_real_browser() {
    let root = workspace();
    require("node", "apt-get install nodejs npm (node 20 or later)");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is required for this test: apt-get install chromium fonts-noto-cjk",
        chromium.display()
    );
    let playwright = root.join("playground-web/node_modules/playwright-core/index.mjs");
    assert!(
        playwright.exists(),
        "{} is required for this test: (cd playground-web && npm ci)",
        playwright.display()
    );

    let lab = Lab::start();
    // Screenshots of this run go under target/ (the committed ones in tests/browser/
    // screenshots are refreshed by running the script by hand).
    let exe = std::env::current_exe().expect("test exe path");
    let shots = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("tmp")
        .join("browser-screenshots");
    let url = format!("http://{}", lab.addr);
    // The script gives up on its own after 240 s; this is the backstop.
    let (status, output) = run_node(
        &root.join("tests/browser/lesson1.mjs"),
        &[&url, shots.to_str().expect("utf-8 path")],
        &[],
        Duration::from_secs(300),
    );
    println!("{output}");
    let log = lab.berth.server_log();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    match status {
        Some(st) if st.success() => {}
        Some(st) => panic!(
            "the browser test failed ({st}):\n{output}\nscreenshots: {}\nserver log tail:\n{tail}",
            shots.display()
        ),
        None => {
            panic!("the browser test did not finish in 300 s:\n{output}\nserver log tail:\n{tail}")
        }
    }
}

/// Runs `node SCRIPT ARGS` with `env`, giving up after `limit`: (exit status, stdout and
/// stderr together); None for the status when it did not finish.
fn run_node(
    script: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let mut child = Command::new("node")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace())
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
    let end = Instant::now() + limit;
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
    (
        status,
        format!(
            "{}{}",
            out_t.join().unwrap_or_default(),
            err_t.join().unwrap_or_default()
        ),
    )
}

/// A teacher and three students, each in their own browser context: joining (by link,
/// by typing the code, with a name already taken), lesson 1 with the dashboard keeping
/// up (its delay is measured), a stuck flag, watching and taking over a terminal, a
/// raised hand, messages, a reset and an ended lab, the CSV, closing and reopening the
/// class, coming back from another browser, and what a student may not open. The
/// script is tests/browser/classroom.mjs; the transcript it downloads is checked here
/// with `berth transcript verify`.
#[test]
fn a_whole_class_in_real_browsers() {
    use std::io::Write;
    let root = workspace();
    require("node", "apt-get install nodejs npm (node 20 or later)");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is required for this test: apt-get install chromium fonts-noto-cjk",
        chromium.display()
    );
    let playwright = root.join("playground-web/node_modules/playwright-core/index.mjs");
    assert!(
        playwright.exists(),
        "{} is required for this test: (cd playground-web && npm ci)",
        playwright.display()
    );

    // Three failing commands make a student stuck; only class members get labs.
    let lab = Lab::start_with(&["--class-stuck-attempts", "3", "--open-playground=false"]);
    let state = lab.berth.root.to_str().expect("utf-8 root").to_string();
    let (teacher, password) = ("teacher-kim", "correct horse battery");
    let mut add = Command::new(berth_tests::berth_bin())
        .args(["instructor", "add", "--root", &state, teacher])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth instructor add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let o = add
        .wait_with_output()
        .expect("wait for berth instructor add");
    assert!(
        o.status.success(),
        "berth instructor add: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let exe = std::env::current_exe().expect("test exe path");
    let shots = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("tmp")
        .join("browser-screenshots")
        .join("classroom");
    let _ = std::fs::remove_file(shots.join("transcript.txt"));
    let url = format!("http://{}", lab.addr);
    // The script gives up on its own after 300 s; this is the backstop.
    let (status, output) = run_node(
        &root.join("tests/browser/classroom.mjs"),
        &[&url, shots.to_str().expect("utf-8 path")],
        &[("TEACH_NAME", teacher), ("TEACH_PASSWORD", password)],
        Duration::from_secs(360),
    );
    println!("{output}");
    let log = lab.berth.server_log();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(80)..].join("\n");
    match status {
        Some(st) if st.success() => {}
        Some(st) => panic!("the classroom browser test failed ({st}):\n{output}\nscreenshots: {}\nserver log tail:\n{tail}", shots.display()),
        None => panic!("the classroom browser test did not finish in 360 s:\n{output}\nserver log tail:\n{tail}"),
    }

    // The transcript the teacher downloaded is the server's, signed.
    let file = shots.join("transcript.txt");
    assert!(
        file.exists(),
        "the script saved no transcript at {}",
        file.display()
    );
    let o = Command::new(berth_tests::berth_bin())
        .args(["transcript", "verify"])
        .arg(&file)
        .args(["--root", &state])
        .stdin(Stdio::null())
        .output()
        .expect("run berth transcript verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "berth transcript verify {}: {said}",
        file.display()
    );
    for needle in [
        "student: Ann Park",
        "lifecycle/search",
        "lifecycle/pull",
        "lifecycle/images",
        "this server's",
    ] {
        assert!(
            said.contains(needle),
            "{needle:?} not in the verification:\n{said}"
        );
    }
}
