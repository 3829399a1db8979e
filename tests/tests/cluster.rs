//! A hub and two lab nodes (`berth serve --role hub|node`) on one machine, sharing a
//! private PostgreSQL: sessions made through the hub are spread over the nodes, and
//! everything a student's page does (status, terminal, published ports) goes through
//! the hub to the session's node; a node that restarts gets its own sessions back,
//! and the other node's students do not notice.

use std::time::Duration;

use berth_tests::cluster::{self, Hub};
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
