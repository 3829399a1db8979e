//! The seeds' registry lessons as written, with the real CLI: tag, push to
//! `localhost:5000`, search, `rmi`, `run` pulls it back, `history`.

use berth_tests::Berth;

#[test]
fn seed_flow_push_search_rmi_run_history() {
    // The only test on the seeds' literal port 5000.
    let b = Berth::start_with(&["--registry-listen", "127.0.0.1:5000"]);
    b.ok(&["run", "--name", "maker", "busybox", "sh", "-c", "echo made-by-student > /hello.txt"]);
    b.ok(&["commit", "-c", "LABEL org.opencontainers.image.description=greeting", "maker", "student/hello:v1"]).len();
    b.ok(&["tag", "student/hello:v1", "localhost:5000/student/hello:v1"]);
    let push = b.ok(&["push", "localhost:5000/student/hello:v1"]);
    assert!(push.contains("The push refers to repository [localhost:5000/student/hello]"), "{push}");
    assert!(push.contains("v1: digest: sha256:"), "{push}");
    // `docker search` with no registry named searches Berth's own, offline.
    let found = b.ok(&["search", "--format", "{{.Name}}|{{.Description}}", "hello"]);
    assert_eq!(found, "student/hello|greeting");
    b.ok(&["rmi", "localhost:5000/student/hello:v1", "student/hello:v1"]);
    b.ok(&["rm", "maker"]);
    let o = b.docker(&["run", "--rm", "localhost:5000/student/hello:v1", "cat", "/hello.txt"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Unable to find image 'localhost:5000/student/hello:v1' locally"), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "made-by-student\n");
    let history = b.ok(&["history", "--format", "{{.CreatedBy}}", "localhost:5000/student/hello:v1"]);
    assert!(history.lines().count() >= 3, "one row per step: {history}");
}
