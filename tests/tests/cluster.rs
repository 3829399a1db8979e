//! A hub and two lab nodes (`berth serve --role hub|node`) on one machine, sharing a
//! private PostgreSQL: sessions made through the hub are spread over the nodes, and
//! everything a student's page does (status, terminal, published ports) goes through
//! the hub to the session's node; a node that restarts gets its own sessions back,
//! and the other node's students do not notice.

use std::time::Duration;

use berth_tests::cluster::{self, Hub};
use berth_tests::lab::Web;
use berth_tests::postgres::Postgres;

#[test]
fn a_hub_spreads_sessions_over_nodes_and_forwards_their_requests() {
    let pg = Postgres::start();
    let db = pg.url();
    let mut a = cluster::node("node-a", &db);
    let b = cluster::node("node-b", &db);
    let hub = Hub::start(&db);

    // A node answers its hub only: the secret, or nothing but its probes.
    let (code, body) = a.http("POST", "/api/sessions", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("answers its hub only"), "{body}");
    assert_eq!(a.http("GET", "/readyz", None).0, 200);
    let (code, _, _) = a.http_with(
        "GET",
        "/api/lessons",
        None,
        &["Authorization: Bearer not-the-secret-at-all-0123"],
    );
    assert_eq!(code, 401);

    hub.eventually(
        "both nodes in the database",
        Duration::from_secs(20),
        || {
            pg.sql(
                "berth",
                "SELECT name FROM nodes WHERE accepting = 1 ORDER BY name",
            ) == "node-a\nnode-b"
        },
    );
    // The page and the lessons come from the hub itself.
    assert_eq!(hub.http("GET", "/", None).0, 200);
    assert!(hub
        .json("GET", "/api/lessons", None)
        .as_array()
        .is_some_and(|l| !l.is_empty()));

    // Four sessions at once: two on each node, placed by load.
    let ids: Vec<String> = std::thread::scope(|s| {
        let made: Vec<_> = (0..4).map(|_| s.spawn(|| hub.create_session())).collect();
        made.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let node_of = |id: &str| {
        pg.sql(
            "berth",
            &format!("SELECT node FROM sessions WHERE id = '{id}'"),
        )
    };
    let on_a: Vec<&String> = ids.iter().filter(|id| node_of(id) == "node-a").collect();
    let on_b: Vec<&String> = ids.iter().filter(|id| node_of(id) == "node-b").collect();
    assert_eq!(
        (on_a.len(), on_b.len()),
        (2, 2),
        "placement: {:?}",
        ids.iter().map(|i| node_of(i)).collect::<Vec<_>>()
    );
    for id in on_a.iter() {
        assert!(
            a.berth.root.join("lab").join(id).is_dir(),
            "session {id} is on node a's disk"
        );
        assert!(!b.berth.root.join("lab").join(id).exists());
    }

    // Node a drains (`berth node drain` in its pod): new sessions go to node b only,
    // node a's go on; undrained, it takes sessions again.
    let node_cmd = |args: &[&str]| berth_node(&a.berth.root, args);
    node_cmd(&["drain"]);
    let accepting = |name: &str| {
        pg.sql(
            "berth",
            &format!("SELECT accepting FROM nodes WHERE name = '{name}'"),
        )
    };
    hub.eventually("node a draining", Duration::from_secs(15), || {
        accepting("node-a") == "0"
    });
    let more: Vec<String> = (0..2).map(|_| hub.create_session()).collect();
    for id in &more {
        assert_eq!(node_of(id), "node-b", "a session placed on a draining node");
        assert_eq!(
            hub.http("DELETE", &format!("/api/sessions/{id}"), None).0,
            204
        );
    }
    assert_eq!(node_cmd(&["status"]), "draining: yes\nsessions: 2\n");
    node_cmd(&["undrain"]);
    hub.eventually(
        "node a taking sessions again",
        Duration::from_secs(15),
        || accepting("node-a") == "1",
    );
    assert_eq!(node_cmd(&["status"]), "draining: no\nsessions: 2\n");

    // The students' pages, all through the hub.
    let (sa, sb) = (on_a[0].clone(), on_b[0].clone());
    let mut ta = hub.terminal(&sa);
    let mut tb = hub.terminal(&sb);
    ta.expect("$ ");
    tb.expect("$ ");
    ta.line("mkdir -p site && echo from-node-a > site/index.html && docker run -d -p 8080:80 -v /root/site:/www --name web busybox httpd -f -p 80 -h /www && echo started-$((1+1))");
    ta.expect("started-2");
    tb.line("echo b-$((20+1))");
    tb.expect("b-21");
    let status = hub.status(&sa);
    assert_eq!(status["id"], sa.as_str());
    assert!(status["containers"].to_string().contains("web"), "{status}");
    hub.eventually("the port through the hub", Duration::from_secs(10), || {
        let (code, body) = hub.http("GET", &format!("/lab/{sa}/ports/8080/"), None);
        code == 200 && body.trim() == "from-node-a"
    });
    // The port of a session is its own, on its own node.
    assert_eq!(
        hub.http("GET", &format!("/lab/{sb}/ports/8080/"), None).0,
        502
    );
    assert_eq!(
        hub.http(
            "GET",
            "/api/sessions/0123456789abcdef0123456789abcdef",
            None
        )
        .0,
        404
    );

    // Node a dies (kill -9): its students' pages hear that their lab is reconnecting;
    // node b's terminal goes on without a break.
    a.berth.kill_server();
    let (code, body) = hub.http("GET", &format!("/api/sessions/{sa}"), None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"reconnecting\""), "{body}");
    tb.line("echo still-$((40+2))");
    tb.expect("still-42");

    // Node a is back (a pod made again, same name and state root): its sessions, with
    // their homes and containers, and only its own.
    a.berth.start_server();
    hub.eventually(
        "node a's session through the hub",
        Duration::from_secs(30),
        || hub.http("GET", &format!("/api/sessions/{sa}"), None).0 == 200,
    );
    let mut ta = hub.terminal(&sa);
    ta.line("cat site/index.html; docker ps --format '{{.Names}} {{.Status}}'");
    ta.expect("from-node-a");
    ta.expect("web Up");
    let (code, body) = hub.http("GET", &format!("/lab/{sa}/ports/8080/"), None);
    assert_eq!((code, body.trim()), (200, "from-node-a"));
    for id in on_b.iter() {
        assert!(
            !a.berth.root.join("lab").join(id).exists(),
            "node a reopened node b's session {id}"
        );
    }
    tb.line("echo after-$((1+2))");
    tb.expect("after-3");

    // Removing sessions through the hub removes them on their nodes.
    for id in &ids {
        assert_eq!(
            hub.http("DELETE", &format!("/api/sessions/{id}"), None).0,
            204,
            "{}",
            hub.log()
        );
    }
    assert_eq!(pg.sql("berth", "SELECT count(*) FROM sessions"), "0");
    drop((ta, tb));
}

/// `berth node ARGS --root ROOT` (drain, undrain, status): its output.
fn berth_node(root: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new(berth_tests::berth_bin())
        .arg("node")
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .expect("run berth node");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn dashboard(web: &Web, class: &str, cookie: &str) -> serde_json::Value {
    let (code, body, _) = web.http_with(
        "GET",
        &format!("/api/teach/classes/{class}"),
        None,
        &[cookie],
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The dashboard's row of `name`.
fn row(d: &serde_json::Value, name: &str) -> serde_json::Value {
    d["students"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no row for {name}: {d}"))
}

#[test]
fn a_class_through_the_hub_spans_nodes() {
    let pg = Postgres::start();
    let db = pg.url();
    let mut a = cluster::node("node-a", &db);
    let b = cluster::node("node-b", &db);
    let hub = Hub::start(&db);
    hub.eventually(
        "both nodes in the database",
        Duration::from_secs(20),
        || pg.sql("berth", "SELECT count(*) FROM nodes WHERE accepting = 1") == "2",
    );

    // The instructor is made in the shared database, as on a single server.
    let mut add = std::process::Command::new(berth_tests::berth_bin())
        .args(["instructor", "add", "--root", "/nonexistent", "kim"])
        .env("BERTH_DATABASE_URL", &db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run berth instructor add");
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"correct horse\n").unwrap();
    let o = add.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cookie = hub.login("kim", "correct horse").unwrap();
    let (code, body, _) = hub.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"Docker 101","lessons":["lifecycle"]}"#),
        &[&cookie],
    );
    assert_eq!(code, 201, "{body}");
    let class: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (id, join_code) = (
        class["id"].as_str().unwrap().to_string(),
        class["code"].as_str().unwrap().to_string(),
    );

    // Four students join through the hub: two labs on each node.
    let names = ["Ann", "Bo", "Cy", "Di"];
    let joins: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            hub.json(
                "POST",
                "/api/join",
                Some(&serde_json::json!({ "code": join_code, "name": n }).to_string()),
            )
        })
        .collect();
    let sessions: Vec<String> = joins
        .iter()
        .map(|v| v["session"]["id"].as_str().unwrap().to_string())
        .collect();
    let node_of = |id: &str| {
        pg.sql(
            "berth",
            &format!("SELECT node FROM sessions WHERE id = '{id}'"),
        )
    };
    let nodes: Vec<String> = sessions.iter().map(|s| node_of(s)).collect();
    assert_eq!(
        nodes.iter().filter(|n| *n == "node-a").count(),
        2,
        "{nodes:?}"
    );
    let on_a: Vec<&str> = names
        .iter()
        .zip(&nodes)
        .filter(|(_, n)| *n == "node-a")
        .map(|(s, _)| *s)
        .collect();
    let on_b: Vec<&str> = names
        .iter()
        .zip(&nodes)
        .filter(|(_, n)| *n == "node-b")
        .map(|(s, _)| *s)
        .collect();
    let session_of = |name: &str| sessions[names.iter().position(|n| *n == name).unwrap()].clone();

    // Every student on the dashboard, with their class's first lesson.
    let d = dashboard(&hub, &id, &cookie);
    assert_eq!(d["students"].as_array().map(Vec::len), Some(4), "{d}");
    assert_eq!(row(&d, "Ann")["lesson"], "lifecycle");

    // A student on node b passes a step; the dashboard on the hub sees it.
    let student = on_b[0];
    let mut t = hub.terminal(&session_of(student));
    t.expect("$ ");
    t.line("docker search busybox > /dev/null && echo searched-$((1+1))");
    t.expect("searched-2");
    hub.eventually(
        "the step on the hub's dashboard",
        Duration::from_secs(20),
        || row(&dashboard(&hub, &id, &cookie), student)["done"] == 1,
    );

    // The teacher watches that terminal through the hub (counted as watching) and
    // sees what the student types.
    let mut watch = hub
        .terminal_at(
            &format!("/api/teach/classes/{id}/students/{student}/terminal"),
            &[("Cookie", cookie.strip_prefix("Cookie: ").unwrap())],
        )
        .expect("watch through the hub");
    hub.eventually(
        "the watcher on the dashboard",
        Duration::from_secs(10),
        || {
            dashboard(&hub, &id, &cookie)["watching"]
                .to_string()
                .contains(student)
        },
    );
    t.line("echo typed-$((3*3))");
    watch.expect("typed-9");
    drop(watch);

    // The student's hand-in through the hub: signed with the key the hub keeps in the
    // database (a hub has no state root of its own), checked with `berth transcript
    // verify --hub` against that database.
    let (code, transcript, _) = hub.http_with(
        "GET",
        &format!("/api/teach/classes/{id}/students/{student}/transcript"),
        None,
        &[&cookie],
    );
    assert_eq!(code, 200, "{transcript}");
    assert!(transcript.contains("\"search\""), "{transcript}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hand-in.txt");
    let verify = |text: &str| {
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(berth_tests::berth_bin())
            .args(["transcript", "verify", "--hub"])
            .arg(&file)
            .env("BERTH_DATABASE_URL", &db)
            .output()
            .unwrap()
    };
    let o = verify(&transcript);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(this server's)"));
    assert!(!verify(&transcript.replace(student, "Someone"))
        .status
        .success());

    // A reset through the hub, on node b: the lab is made afresh, the step kept.
    let (code, body, _) = hub.http_with(
        "POST",
        &format!("/api/teach/classes/{id}/students/{student}/reset"),
        None,
        &[&cookie],
    );
    assert_eq!(code, 204, "{body}");
    assert_eq!(row(&dashboard(&hub, &id, &cookie), student)["done"], 1);
    assert!(b.berth.root.join("lab").join(session_of(student)).is_dir());

    // Node a goes away: its students show as reconnecting, with their records; the
    // others not. Back, and they are back.
    a.berth.kill_server();
    let d = dashboard(&hub, &id, &cookie);
    for n in &on_a {
        assert_eq!(row(&d, n)["reconnecting"], true, "{d}");
        assert_eq!(row(&d, n)["lesson"], "lifecycle", "{d}");
    }
    for n in &on_b {
        assert_eq!(row(&d, n)["reconnecting"], false, "{d}");
    }
    let node_a_back = || {
        hub.eventually("node a's students back", Duration::from_secs(30), || {
            let d = dashboard(&hub, &id, &cookie);
            on_a.iter().all(|n| row(&d, n)["reconnecting"] == false)
        })
    };
    a.berth.start_server();
    node_a_back();
    // A student of node a comes back (from another browser, with the PIN): the same
    // lab, found on its node.
    let i = names.iter().position(|n| *n == on_a[0]).unwrap();
    // From another browser, with the PIN.
    let rejoin = || {
        hub.json(
            "POST",
            "/api/join",
            Some(
                &serde_json::json!({ "code": join_code, "name": on_a[0], "pin": joins[i]["pin"] })
                    .to_string(),
            ),
        )
    };
    let v = rejoin();
    assert_eq!(v["session"]["id"], sessions[i].as_str(), "{v}");

    // Node a drains, then the class closes: node a's labs end with it (records and
    // progress kept) and node a is empty. The student of node a coming back once the
    // class opens again gets a lab on node b, with the steps done.
    let done_before = row(&dashboard(&hub, &id, &cookie), on_a[0])["done"].clone();
    let node_a = |args: &[&str]| berth_node(&a.berth.root, args);
    node_a(&["drain"]);
    hub.eventually("node a draining", Duration::from_secs(15), || {
        pg.sql("berth", "SELECT accepting FROM nodes WHERE name = 'node-a'") == "0"
    });
    let window = |body: &str| {
        let (code, text, _) = hub.http_with(
            "PUT",
            &format!("/api/teach/classes/{id}/window"),
            Some(body),
            &[&cookie],
        );
        assert_eq!(code, 200, "{text}");
    };
    window(r#"{"closes":"2020-01-01T00:00:00Z"}"#);
    hub.eventually("node a's labs ended", Duration::from_secs(20), || {
        on_a.iter()
            .all(|n| !a.berth.root.join("lab").join(session_of(n)).exists())
    });
    assert!(
        on_b.iter()
            .all(|n| b.berth.root.join("lab").join(session_of(n)).is_dir()),
        "node b's labs are kept (frozen) at the close"
    );
    assert_eq!(node_a(&["status"]), "draining: yes\nsessions: 0\n");
    // A restart of the drained node does not make them again.
    a.berth.kill_server();
    a.berth.start_server();
    node_a_back();
    assert!(on_a
        .iter()
        .all(|n| !a.berth.root.join("lab").join(session_of(n)).exists()));
    window("{}");
    let v = rejoin();
    assert_eq!(v["session"]["id"], sessions[i].as_str(), "{v}");
    assert_eq!(node_of(&sessions[i]), "node-b");
    assert!(b.berth.root.join("lab").join(&sessions[i]).is_dir());
    hub.eventually(
        "the moved lab on the dashboard",
        Duration::from_secs(15),
        || {
            let r = row(&dashboard(&hub, &id, &cookie), on_a[0]);
            r["reconnecting"] == false && r["done"] == done_before
        },
    );
    drop(t);
}
