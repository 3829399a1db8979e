//! The classroom's records from the shell: `berth instructor add` and `berth class
//! create|list` on the state root of a running lab server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use berth_tests::berth_bin;
use berth_tests::lab::Lab;

fn berth(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(berth_bin()).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run berth");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for berth")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The line of `out` that starts with `label`, without it.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(label)).unwrap_or_else(|| panic!("no {label:?} in {out}")).trim()
}

#[test]
fn instructors_and_classes_are_made_from_the_shell_while_the_server_runs() {
    let lab = Lab::start();
    let root = lab.berth.root.to_str().unwrap().to_string();
    let r = root.as_str();

    let o = berth(&["instructor", "add", "--root", r, "kim"], "correct horse\n");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("instructor kim added"), "{}", text(&o));
    let o = berth(&["instructor", "add", "--root", r, "kim"], "battery staple\n");
    assert!(o.status.success() && text(&o).contains("new password"), "{}", text(&o));
    for (name, password, needle) in [
        ("lee", "short\n", "too short"),
        ("   ", "long enough\n", "must not be empty"),
    ] {
        let o = berth(&["instructor", "add", "--root", r, name], password);
        assert!(!o.status.success() && text(&o).contains(needle), "{name:?}: {}", text(&o));
    }

    let o = berth(&["class", "create", "--root", r, "--name", "Docker 101", "--lessons", "1,2", "--opens", "2026-12-01T09:00", "--closes", "2026-12-01T12:00", "--url", "http://lab.example:8080/"], "");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let code = field(&out, "join code:");
    assert_eq!(code.len(), 9, "{out}");
    assert!(code.chars().enumerate().all(|(i, c)| if i == 4 { c == '-' } else { "23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(c) }), "{code}");
    assert_eq!(field(&out, "join URL:"), format!("http://lab.example:8080/join/{code}"));

    let o = berth(&["class", "create", "--root", r, "--name", "도커 입문"], "");
    assert!(o.status.success(), "{}", text(&o));
    let other = field(&String::from_utf8_lossy(&o.stdout), "join code:").to_string();
    assert_ne!(other, code);

    let o = berth(&["class", "list", "--root", r], "");
    assert!(o.status.success(), "{}", text(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(&rows[0][1..4], &[code, "Docker 101", "lifecycle,step-by-step"], "{list}");
    assert_eq!(rows[0][4], "2026-12-01T09:00:00+00:00");
    assert_eq!(&rows[1][1..3], &[other.as_str(), "도커 입문"], "{list}");

    for (args, needle) in [
        (vec!["--name", "x", "--lessons", "99"], "no lesson \"99\""),
        (vec!["--name", "x", "--lessons", "1,lifecycle"], "listed twice"),
        (vec!["--name", "x", "--opens", "tomorrow"], "is not a time"),
        (vec!["--name", "x", "--opens", "2026-12-02T10:00", "--closes", "2026-12-02T09:00"], "closes"),
        (vec!["--name", ""], "must not be empty"),
    ] {
        let mut full = vec!["class", "create", "--root", r];
        full.extend(args.iter().copied());
        let o = berth(&full, "");
        assert!(!o.status.success() && text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    let o = berth(&["class", "list", "--root", "/nonexistent/berth"], "");
    assert!(!o.status.success() && text(&o).contains("not a Berth state directory"), "{}", text(&o));

    // The server went on serving throughout, on the same database.
    let _ = lab.create_session();
}
