use super::*;
use crate::api::{LayerSummary, PublishedPort};

fn check(toml_src: &str) -> Check {
    #[derive(Deserialize)]
    struct W {
        check: Check,
    }
    let w: W = toml_from_str(toml_src);
    w.check
        .validate()
        .unwrap_or_else(|e| panic!("{toml_src}: {e}"));
    w.check
}

fn toml_from_str<T: serde::de::DeserializeOwned>(src: &str) -> T {
    toml::from_str(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn container(id: &str, name: &str, image: &str, state: &str) -> ContainerSummary {
    ContainerSummary {
        id: id.into(),
        name: name.into(),
        image: image.into(),
        state: state.into(),
        status: String::new(),
        ports: vec![],
    }
}

fn image(tags: &[&str], layers: &[&str]) -> ImageSummary {
    ImageSummary {
        id: "sha256:abc".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        size: 1,
        layers: layers
            .iter()
            .map(|l| LayerSummary {
                created_by: l.to_string(),
                size: 0,
                empty: true,
            })
            .collect(),
    }
}

fn holds(c: &Check, events: &[Event], state: &State) -> bool {
    c.holds(&Observation { events, state })
}

const DETACH: &str = r#"check = { event = { kind = "container", action = "detach", image = "busybox", container = { state = "running" } } }"#;

fn ev(action: &str, id: &str) -> Event {
    Event::new("container", action, id)
        .attr("image", "busybox")
        .attr("name", "mybox")
}

#[test]
fn detach_holds_when_detached_and_running() {
    let c = check(DETACH);
    let state = State {
        containers: vec![container("c1", "mybox", "busybox", "running")],
        ..Default::default()
    };
    assert!(holds(
        &c,
        &[ev("create", "c1"), ev("start", "c1"), ev("detach", "c1")],
        &state
    ));
}

#[test]
fn detach_fails_on_die_instead_of_detach() {
    let c = check(DETACH);
    let state = State {
        containers: vec![container("c1", "mybox", "busybox", "running")],
        ..Default::default()
    };
    assert!(!holds(&c, &[ev("start", "c1"), ev("die", "c1")], &state));
}

#[test]
fn detach_fails_when_the_container_exited() {
    let c = check(DETACH);
    let state = State {
        containers: vec![container("c1", "mybox", "busybox", "exited")],
        ..Default::default()
    };
    assert!(!holds(&c, &[ev("detach", "c1")], &state));
    // Another running container does not count: it must be the same one.
    let state = State {
        containers: vec![
            container("c1", "mybox", "busybox", "exited"),
            container("c2", "other", "busybox", "running"),
        ],
        ..Default::default()
    };
    assert!(!holds(&c, &[ev("detach", "c1")], &state));
    // Gone altogether.
    assert!(!holds(&c, &[ev("detach", "c1")], &State::default()));
}

#[test]
fn detach_fails_for_another_image() {
    let c = check(DETACH);
    let state = State {
        containers: vec![container("c1", "x", "alpine", "running")],
        ..Default::default()
    };
    let e = Event::new("container", "detach", "c1").attr("image", "alpine");
    assert!(!holds(&c, &[e], &state));
    // busybox:latest and docker.io/library/busybox are busybox.
    let e =
        Event::new("container", "detach", "c1").attr("image", "docker.io/library/busybox:latest");
    assert!(holds(&c, &[e], &state));
}

#[test]
fn event_with_attrs_and_patterns() {
    let c = check(
        r#"check = { event = { kind = "container", action = "die", attrs = { exitCode = { not = "0" } } } }"#,
    );
    let s = State::default();
    assert!(holds(&c, &[ev("die", "c").attr("exitCode", "1")], &s));
    assert!(!holds(&c, &[ev("die", "c").attr("exitCode", "0")], &s));
    assert!(
        !holds(&c, &[ev("die", "c")], &s),
        "a missing attribute never matches"
    );

    let c =
        check(r#"check = { event = { kind = "request", action = "ps", attrs = { all = true } } }"#);
    assert!(holds(
        &c,
        &[Event::new("request", "ps", "").attr("all", "true")],
        &s
    ));
    assert!(!holds(
        &c,
        &[Event::new("request", "ps", "").attr("all", "false")],
        &s
    ));

    let c = check(
        r#"check = { event = { kind = "request", action = "search", attrs = { term = { one_of = ["busybox", "hello-world"] } } } }"#,
    );
    assert!(holds(
        &c,
        &[Event::new("request", "search", "").attr("term", "hello-world")],
        &s
    ));
    assert!(!holds(
        &c,
        &[Event::new("request", "search", "").attr("term", "nginx")],
        &s
    ));
}

#[test]
fn exec_command_lines() {
    let c = check(
        r#"check = { event = { kind = "container", action = "exec_start", command = { prefix = "sh" } } }"#,
    );
    let s = State::default();
    assert!(holds(&c, &[ev("exec_start: sh", "c")], &s));
    assert!(holds(&c, &[ev("exec_start: sh -c ls", "c")], &s));
    assert!(!holds(&c, &[ev("exec_start: ps", "c")], &s));
    assert!(!holds(&c, &[ev("exec_create: sh", "c")], &s));
    let c = check(
        r#"check = { event = { kind = "container", action = "exec_start", command = { contains = "nc" } } }"#,
    );
    assert!(holds(
        &c,
        &[ev("exec_start: sh -c echo hello | nc 127.0.0.1 5000", "c")],
        &s
    ));
}

#[test]
fn image_events_match_their_names() {
    let c =
        check(r#"check = { event = { kind = "image", action = "build", image = "hello:v1" } }"#);
    let s = State::default();
    let build = Event::new("image", "build", "sha256:1").attr("name", "hello:latest,hello:v1");
    assert!(holds(&c, &[build], &s));
    let build = Event::new("image", "build", "sha256:1").attr("name", "hello:v2");
    assert!(!holds(&c, &[build], &s));
    let c = check(r#"check = { event = { kind = "image", action = "pull", image = "busybox" } }"#);
    assert!(holds(
        &c,
        &[Event::new("image", "pull", "busybox:latest")],
        &s
    ));
    assert!(holds(
        &c,
        &[Event::new("image", "pull", "busybox").attr("name", "busybox")],
        &s
    ));
    assert!(!holds(
        &c,
        &[Event::new("image", "push", "busybox").attr("name", "busybox")],
        &s
    ));
}

#[test]
fn event_id_pattern() {
    let c = check(r#"check = { event = { kind = "volume", action = "mount", id = "data" } }"#);
    let s = State::default();
    assert!(holds(
        &c,
        &[Event::new("volume", "mount", "data").attr("destination", "/data")],
        &s
    ));
    assert!(!holds(&c, &[Event::new("volume", "mount", "other")], &s));
}

#[test]
fn sequence_in_order() {
    let c = check(
        r#"check = { sequence = { events = [
            { kind = "container", action = "stop" },
            { kind = "container", action = "start" },
        ] } }"#,
    );
    let s = State::default();
    assert!(holds(
        &c,
        &[ev("stop", "a"), ev("die", "a"), ev("start", "a")],
        &s
    ));
    assert!(holds(&c, &[ev("stop", "a"), ev("start", "b")], &s));
    assert!(!holds(&c, &[ev("start", "a"), ev("stop", "a")], &s));
    assert!(!holds(&c, &[ev("stop", "a")], &s));
}

#[test]
fn sequence_same_id() {
    let c = check(
        r#"check = { sequence = { same_id = true, events = [
            { kind = "container", action = "create", attrs = { tty = "true" } },
            { kind = "container", action = "start", container = { state = "running" } },
        ] } }"#,
    );
    let s = State {
        containers: vec![
            container("a", "x", "busybox", "running"),
            container("b", "y", "busybox", "running"),
        ],
        ..Default::default()
    };
    assert!(holds(
        &c,
        &[ev("create", "a").attr("tty", "true"), ev("start", "a")],
        &s
    ));
    // Two different containers: no.
    assert!(!holds(
        &c,
        &[ev("create", "a").attr("tty", "true"), ev("start", "b")],
        &s
    ));
    // The first matching create is not the one that gets started: still found.
    let events = [
        ev("create", "a").attr("tty", "true"),
        ev("create", "b").attr("tty", "true"),
        ev("start", "b"),
    ];
    assert!(holds(&c, &events, &s));
}

#[test]
fn all_any_not() {
    let s = State::default();
    let c = check(
        r#"check = { all = [
            { event = { kind = "request", action = "ps", attrs = { all = false } } },
            { event = { kind = "request", action = "ps", attrs = { all = true } } },
        ] }"#,
    );
    let ps = |all: &str| Event::new("request", "ps", "").attr("all", all);
    assert!(holds(&c, &[ps("true"), ps("false")], &s));
    assert!(!holds(&c, &[ps("true")], &s));

    let c = check(
        r#"check = { any = [
            { event = { kind = "request", action = "port-open", attrs = { port = 8080 } } },
            { event = { kind = "request", action = "images" } },
        ] }"#,
    );
    assert!(holds(
        &c,
        &[Event::new("request", "port-open", "").attr("port", "8080")],
        &s
    ));
    assert!(holds(&c, &[Event::new("request", "images", "")], &s));
    assert!(!holds(
        &c,
        &[Event::new("request", "port-open", "").attr("port", "8081")],
        &s
    ));

    let c = check(r#"check = { not = { event = { kind = "container", action = "die" } } }"#);
    assert!(holds(&c, &[ev("start", "a")], &s));
    assert!(!holds(&c, &[ev("die", "a")], &s));
}

#[test]
fn container_state_predicates() {
    let mut web = container("w", "web", "busybox:latest", "running");
    web.ports = vec![PublishedPort {
        container_port: 80,
        host_port: 8080,
        protocol: "tcp".into(),
        url: None,
    }];
    let s = State {
        containers: vec![web, container("x", "old", "busybox", "exited")],
        ..Default::default()
    };
    let c =
        check(r#"check = { container = { image = "busybox", state = "running", port = 8080 } }"#);
    assert!(holds(&c, &[], &s));
    let c =
        check(r#"check = { container = { image = "busybox", state = "running", port = 8081 } }"#);
    assert!(!holds(&c, &[], &s));
    let c = check(r#"check = { container = { image = "busybox", count_at_least = 2 } }"#);
    assert!(holds(&c, &[], &s));
    let c = check(
        r#"check = { container = { image = "busybox", state = "running", count_at_least = 2 } }"#,
    );
    assert!(!holds(&c, &[], &s));
    let c = check(r#"check = { container = { name = { prefix = "we" } } }"#);
    assert!(holds(&c, &[], &s));

    let c = check(r#"check = { no_container = { state = "exited" } }"#);
    assert!(!holds(&c, &[], &s));
    let running_only = State {
        containers: vec![s.containers[0].clone()],
        ..Default::default()
    };
    assert!(holds(&c, &[], &running_only));
}

#[test]
fn image_state_predicates() {
    let s = State {
        images: vec![image(
            &["hello:v1"],
            &["/bin/sh -c #(nop) ADD file", "CMD [\"sh\"]"],
        )],
        ..Default::default()
    };
    assert!(holds(
        &check(r#"check = { image = { tag = "hello:v1" } }"#),
        &[],
        &s
    ));
    assert!(
        !holds(&check(r#"check = { image = { tag = "hello" } }"#), &[], &s),
        "hello means hello:latest"
    );
    assert!(holds(
        &check(r#"check = { image = { tag = "hello:v1", layer = { contains = "CMD" } } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { image = { layer = { contains = "EXPOSE" } } }"#),
        &[],
        &s
    ));
    assert!(holds(
        &check(r#"check = { no_image = { tag = "hello:v2" } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { no_image = { tag = "hello:v1" } }"#),
        &[],
        &s
    ));
}

#[test]
fn volume_and_network_predicates() {
    let s = State {
        volumes: vec!["data".into()],
        networks: vec!["bridge".into(), "appnet".into()],
        ..Default::default()
    };
    assert!(holds(
        &check(r#"check = { volume = { name = "data" } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { volume = { name = "logs" } }"#),
        &[],
        &s
    ));
    assert!(holds(
        &check(r#"check = { no_volume = { name = "logs" } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { no_volume = { name = "data" } }"#),
        &[],
        &s
    ));
    assert!(holds(
        &check(r#"check = { network = { name = "appnet" } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { network = { name = "other" } }"#),
        &[],
        &s
    ));
    assert!(holds(
        &check(r#"check = { no_network = { name = "other" } }"#),
        &[],
        &s
    ));
    assert!(!holds(
        &check(r#"check = { no_network = { name = "appnet" } }"#),
        &[],
        &s
    ));
}

fn invalid(src: &str) -> String {
    #[derive(Deserialize)]
    struct W {
        check: Check,
    }
    let w: W = toml_from_str(src);
    w.check.validate().expect_err(src)
}

#[test]
fn checks_that_can_never_hold() {
    assert!(invalid("check = { all = [] }").contains("`all` is empty"));
    assert!(invalid("check = { any = [] }").contains("`any` is empty"));
    assert!(invalid("check = { sequence = { events = [] } }").contains("no events"));
    assert!(
        invalid(r#"check = { event = { kind = "pod", action = "create" } }"#)
            .contains("unknown event kind")
    );
    assert!(
        invalid(r#"check = { event = { kind = "container", action = "explode" } }"#)
            .contains("unknown action")
    );
    assert!(invalid(
        r#"check = { event = { kind = "container", action = "die", attrs = { exit_code = 0 } } }"#
    )
    .contains("no attribute `exit_code`"));
    assert!(invalid(
        r#"check = { event = { kind = "container", action = "die", command = "sh" } }"#
    )
    .contains("command"));
    assert!(
        invalid(r#"check = { event = { kind = "image", action = "pull", container = {} } }"#)
            .contains("container")
    );
    assert!(invalid(
        r#"check = { event = { kind = "volume", action = "create", image = "busybox" } }"#
    )
    .contains("image"));
    assert!(invalid(r#"check = { container = { state = "sleeping" } }"#)
        .contains("unknown container state"));
    assert!(invalid(r#"check = { container = { count_at_least = 0 } }"#).contains("always"));
    assert!(
        invalid(r#"check = { no_container = { count_at_least = 2 } }"#).contains("count_at_least")
    );
    assert!(invalid(r#"check = { not = { all = [] } }"#).contains("empty"));
    assert!(invalid(r#"check = { volume = { name = { one_of = [] } } }"#).contains("one_of"));
}

#[test]
fn unknown_kinds_and_fields_do_not_deserialize() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct W {
        check: Check,
    }
    for bad in [
        "check = { evnt = { kind = \"container\", action = \"die\" } }",
        "check = { event = { kind = \"container\", action = \"die\", colour = \"red\" } }",
        "check = { container = { state = \"running\", label = \"x\" } }",
        "check = { event = { kind = \"container\", action = \"die\", attrs = { exitCode = { equals = \"0\" } } } }",
        "check = { event = { kind = \"container\" } }",
    ] {
        assert!(toml::from_str::<W>(bad).is_err(), "{bad}");
    }
}

#[test]
fn checks_round_trip_through_json() {
    let c = check(
        r#"check = { all = [
            { sequence = { same_id = true, events = [
                { kind = "container", action = "exec_start", command = { contains = "nc" }, attrs = { name = "echo" } },
                { kind = "container", action = "exec_die", attrs = { exitCode = 0 } },
            ] } },
            { not = { no_image = { tag = "a:b", layer = { one_of = ["x", "y"] } } } },
            { container = { name = { not = "x" }, count_at_least = 2, port = 80 } },
        ] }"#,
    );
    let json = serde_json::to_string(&c).unwrap();
    let back: Check = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn reference_normalization() {
    assert_eq!(normalize_reference("busybox"), "busybox:latest");
    assert_eq!(
        normalize_reference("docker.io/library/busybox"),
        "busybox:latest"
    );
    assert_eq!(
        normalize_reference("localhost:5000/web"),
        "localhost:5000/web:latest"
    );
    assert_eq!(
        normalize_reference("localhost:5000/web:v1"),
        "localhost:5000/web:v1"
    );
    assert_eq!(
        normalize_reference("busybox@sha256:ab"),
        "busybox@sha256:ab"
    );
}

#[test]
fn every_vocabulary_entry_validates() {
    for v in VOCABULARY {
        for a in v.actions {
            let c = Check::Event(EventMatch {
                kind: v.kind.into(),
                action: a.to_string(),
                id: None,
                image: None,
                command: None,
                attrs: v
                    .attributes
                    .iter()
                    .map(|k| (k.to_string(), Pattern::Exact("x".into())))
                    .collect(),
                container: None,
            });
            c.validate().unwrap();
        }
    }
}
