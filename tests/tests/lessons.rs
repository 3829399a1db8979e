//! Every lesson played through a real workstation terminal: each step's solution,
//! typed as the page's "type it" button types it, makes that step's check pass, in
//! order; and a wrong action leaves a step undone.

use std::time::Duration;

use berth_lessons::{Input, Lesson};
use berth_tests::lab::{Lab, Term};

fn lesson(id: &str) -> Lesson {
    berth_lessons::all()
        .expect("the shipped lessons load")
        .into_iter()
        .find(|l| l.id == id)
        .unwrap_or_else(|| panic!("no lesson {id}"))
}

fn type_inputs(t: &mut Term, inputs: &[Input]) {
    for input in inputs {
        t.send(&input.bytes());
        t.settle(Duration::from_secs(20));
    }
}

/// Plays `lesson`'s steps up to (not including) `until`, checking each turns done.
fn play(lab: &Lab, session: &str, t: &mut Term, lesson: &Lesson, until: Option<&str>) {
    for step in &lesson.steps {
        if Some(step.id.as_str()) == until {
            return;
        }
        type_inputs(t, &step.commands);
        lab.eventually(
            &format!(
                "step {}/{} to pass; terminal:\n{}",
                lesson.id,
                step.id,
                tail(&t.text())
            ),
            Duration::from_secs(30),
            || lab.done(session, &lesson.id).contains(&step.id),
        );
    }
    assert_eq!(
        lab.done(session, &lesson.id),
        lesson
            .steps
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

fn play_all(id: &str, lab: &Lab) {
    let l = lesson(id);
    let session = lab.create_session();
    lab.select(&session, &l.id);
    let mut t = lab.terminal(&session);
    t.resize(120, 40);
    t.expect("$ ");
    play(lab, &session, &mut t, &l, None);
}

#[test]
fn lesson_1_lifecycle() {
    play_all("lifecycle", &Lab::start());
}

#[test]
fn lesson_2_step_by_step() {
    play_all("step-by-step", &Lab::start());
}

#[test]
fn lesson_3_images_and_containers() {
    play_all("images-containers", &Lab::start());
}

#[test]
fn lesson_4_debugging() {
    play_all("debugging", &Lab::start());
}

#[test]
fn lesson_5_volumes() {
    play_all("volumes", &Lab::start());
}

#[test]
fn lesson_6_dockerfile() {
    play_all("dockerfile", &Lab::start());
}

#[test]
fn lesson_7_registry() {
    // The lesson's private registry is on the seeds' port 5000.
    let _port = berth_tests::port_5000();
    play_all(
        "registry",
        &Lab::start_with(&["--registry-listen", "127.0.0.1:5000"]),
    );
}

#[test]
fn exit_instead_of_detach_leaves_the_detach_step_undone() {
    let lab = Lab::start();
    let l = lesson("lifecycle");
    let session = lab.create_session();
    lab.select(&session, &l.id);
    let mut t = lab.terminal(&session);
    t.expect("$ ");
    play(&lab, &session, &mut t, &l, Some("detach"));
    // The student types `exit`: the container stops, which is not a detach.
    t.line("exit");
    t.settle(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lab.done(&session, &l.id).contains(&"detach".to_string()),
        "exit counted as a detach"
    );
    // Starting it again and detaching properly does pass.
    t.skip();
    t.line("docker start -ai mybox");
    t.expect("/ # ");
    t.send(&[0x10, 0x11]);
    lab.eventually("detach after start -ai", Duration::from_secs(20), || {
        lab.done(&session, &l.id).contains(&"detach".to_string())
    });
}

#[test]
fn a_wrong_port_leaves_the_web_step_undone() {
    let lab = Lab::start();
    let l = lesson("step-by-step");
    let session = lab.create_session();
    lab.select(&session, &l.id);
    let mut t = lab.terminal(&session);
    t.expect("$ ");
    play(&lab, &session, &mut t, &l, Some("run-web"));
    t.line("docker run -d -p 9090:80 --name web busybox httpd -f -p 80 -h /");
    t.settle(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lab.done(&session, &l.id).contains(&"run-web".to_string()),
        "port 9090 counted as 8080"
    );
}

#[test]
fn lesson_8_two_containers() {
    play_all("two-containers", &Lab::start());
}

#[test]
fn lesson_9_beyond_linux() {
    let lab = Lab::start();
    let l = lesson("beyond-linux");
    let session = lab.create_session();
    lab.select(&session, &l.id);
    let mut t = lab.terminal(&session);
    t.resize(120, 40);
    t.expect("$ ");
    // A Linux container is not the wasm hello: the first step stays undone.
    t.line("docker run --name linuxbox busybox echo hello");
    t.settle(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lab.done(&session, &l.id)
            .contains(&"hello-wasm".to_string()),
        "a busybox run counted as the wasm hello"
    );
    t.skip();
    play(&lab, &session, &mut t, &l, None);
    // What the steps' texts promise shows in the terminal. None of these strings is
    // in a typed command line, so the echo cannot fake them.
    let shown = t.text();
    for want in [
        "wasip1/wasm",
        "linux/",
        "Hello from WebAssembly",
        "io.containerd.wasmtime.v1",
        "args: 안녕 Berth",
    ] {
        assert!(
            shown.contains(want),
            "the terminal never showed {want:?}:\n{}",
            tail(&shown)
        );
    }
    // `time` (busybox's applet) printed its report, once per timed run.
    assert!(
        shown.matches("real\t").count() >= 2 || shown.matches("real ").count() >= 2,
        "no `time` report:\n{}",
        tail(&shown)
    );
    // The runtimes the last step talks about.
    let runtime = |name: &str| {
        let out = lab.session_docker(
            &session,
            &["inspect", "-f", "{{.HostConfig.Runtime}}", name],
        );
        assert!(
            out.status.success(),
            "inspect {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(runtime("greeter"), "io.containerd.wasmtime.v1");
    assert_eq!(runtime("linuxbox"), "runc");
}

/// Compose v2 in the workstation, from `scripts/fetch-compose`'s directory.
fn compose_dir() -> String {
    let dir = "/var/cache/berth/compose-2.26.1-4";
    assert!(
        std::path::Path::new(dir).join("docker-compose").is_file(),
        "lesson 10 needs Compose for the workstations in {dir}: run scripts/fetch-compose"
    );
    dir.to_string()
}

#[test]
fn lesson_10_compose() {
    let dir = compose_dir();
    let lab = Lab::start_with(&["--lab-compose", &dir]);
    let l = lesson("compose");
    let session = lab.create_session();
    lab.select(&session, &l.id);
    let mut t = lab.terminal(&session);
    t.resize(120, 40);
    t.expect("$ ");
    play(&lab, &session, &mut t, &l, Some("exec"));
    // Reaching the db from the workstation's own shell is no exec in the web service.
    t.line("docker compose exec db nc db 5432; docker compose exec web false");
    t.settle(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !lab.done(&session, &l.id).contains(&"exec".to_string()),
        "an exec in db, or a failing one in web, counted:\n{}",
        tail(&t.text())
    );
    t.skip();
    let mut rest = l.clone();
    rest.steps
        .retain(|s| !lab.done(&session, &l.id).contains(&s.id));
    for step in &rest.steps {
        if step.id == "down" {
            app_works(&lab, &session);
        }
        type_inputs(&mut t, &step.commands);
        lab.eventually(
            &format!(
                "step compose/{} to pass; terminal:\n{}",
                step.id,
                tail(&t.text())
            ),
            Duration::from_secs(30),
            || lab.done(&session, &l.id).contains(&step.id),
        );
    }
    // Compose built with the classic builder (BuildKit's output would differ); no typed
    // line says this.
    assert!(
        t.text().contains("Successfully tagged app-web:latest"),
        "{}",
        tail(&t.text())
    );
    assert_eq!(lab.done(&session, &l.id).len(), l.steps.len());
}

/// What the lesson's texts promise of the app Compose made, asked of the session's
/// engine (the typed lines hold these strings too, so the terminal cannot tell).
fn app_works(lab: &Lab, session: &str) {
    let out = |args: &[&str]| {
        let o = lab.session_docker(session, args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(out(&["logs", "app-db-1"]).trim(), "db is ready");
    // Service names resolve on the project's network, both ways.
    assert_eq!(
        out(&["exec", "app-web-1", "nc", "db", "5432"]).trim(),
        "db is ok"
    );
    assert_eq!(
        out(&["exec", "app-db-1", "wget", "-qO-", "web"]).trim(),
        "hello from web"
    );
    let labels = out(&["inspect", "-f", "{{index .Config.Labels \"com.docker.compose.project\"}} {{index .Config.Labels \"com.docker.compose.service\"}}", "app-web-1"]);
    assert_eq!(labels.trim(), "app web");
}

#[test]
fn without_compose_the_lesson_lists_and_the_workstation_says_so() {
    let lab = Lab::start_with(&["--lab-compose", "none"]);
    let lessons = lab.json("GET", "/api/lessons", None);
    assert!(
        lessons.to_string().contains("\"compose\""),
        "lesson 10 is not listed: {lessons}"
    );
    let session = lab.create_session();
    let mut t = lab.terminal(&session);
    t.resize(160, 40);
    t.expect("$ ");
    t.line("docker compose version; echo rc=$?; docker-compose up -d; echo rc=$?");
    for _ in 0..2 {
        t.expect("This Berth server has no Docker Compose");
        t.expect("rc=1");
    }
    assert_eq!(
        t.text()
            .matches("This Berth server has no Docker Compose")
            .count(),
        2,
        "{}",
        tail(&t.text())
    );
}
