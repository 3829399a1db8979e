//! Berth on Kubernetes: the server image (deploy/image/build) run by a StatefulSet on
//! the test cluster (berth_tests::kubernetes), with its state root on a persistent
//! volume: the probes answer, a lab session runs containers inside the pod, and when
//! the pod is deleted Kubernetes brings it back with the session and its containers.

use std::time::Duration;

use berth_tests::kubernetes::Cluster;

const NS: &str = "berth-on-k8s";

fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: berth, namespace: {NS}}}
spec:
  serviceName: berth
  replicas: 1
  selector: {{matchLabels: {{app: berth}}}}
  template:
    metadata: {{labels: {{app: berth}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: berth
        image: berth:test
        imagePullPolicy: Never
        args: [serve, --root, /var/lib/berth, --listen, "0.0.0.0:8080",
               --lab-docker-cli, /usr/local/lib/berth-lab/docker,
               --lab-compose, /usr/local/lib/berth-lab/compose]
        securityContext: {{privileged: true}}
        ports: [{{containerPort: 8080, name: web}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: web}}
          periodSeconds: 2
          failureThreshold: 3
        livenessProbe:
          httpGet: {{path: /healthz, port: web}}
          periodSeconds: 10
        volumeMounts: [{{name: state, mountPath: /var/lib/berth}}]
  volumeClaimTemplates:
  - metadata: {{name: state}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

/// `busybox wget` inside the pod, at the server's loopback address (so `/metrics`
/// answers without a token): the body.
fn http(c: &Cluster, method: &str, path: &str) -> String {
    let url = format!("http://127.0.0.1:8080{path}");
    let mut args = vec![
        "-n", NS, "exec", "berth-0", "--", "busybox", "wget", "-q", "-O", "-",
    ];
    if method == "POST" {
        args.extend(["--post-data", ""]);
    }
    args.push(&url);
    c.ok(&args)
}

#[test]
fn berth_serves_labs_from_a_pod_and_keeps_them_when_the_pod_is_replaced() {
    let c = Cluster::up();
    let dir = tempfile::Builder::new()
        .prefix("berth-image-")
        .tempdir()
        .expect("temp dir");
    let archive = dir.path().join("berth.tar");
    let build = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/image/build");
    let o = std::process::Command::new(&build)
        .arg(&archive)
        .arg("berth:test")
        .env("BERTH_BIN", berth_tests::berth_bin())
        .output()
        .expect("run deploy/image/build");
    assert!(
        o.status.success(),
        "deploy/image/build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    c.load_image(&archive);
    c.apply_yaml(&manifest());
    c.rollout(NS, "statefulset/berth", Duration::from_secs(300));
    assert_eq!(http(&c, "GET", "/healthz").trim(), "ok");
    let session: serde_json::Value =
        serde_json::from_str(&http(&c, "POST", "/api/sessions")).expect("session JSON");
    let id = session["id"].as_str().expect("session id").to_string();
    // The session's engine runs containers inside the pod.
    let sock = format!("unix:///var/lib/berth/lab/{id}/api/docker.sock");
    let docker = |args: &[&str]| {
        let mut a = vec!["-n", NS, "exec", "berth-0", "--", "env"];
        let host = format!("DOCKER_HOST={sock}");
        a.push(&host);
        a.push("docker");
        a.extend_from_slice(args);
        c.ok(&a)
    };
    docker(&["run", "-d", "--name", "kept", "busybox", "sleep", "3600"]);
    let metrics = http(&c, "GET", "/metrics");
    assert!(metrics.contains("berth_lab_sessions 1"), "{metrics}");
    // Kubernetes replaces a deleted pod; its volume brings the session back.
    c.ok(&["-n", NS, "delete", "pod", "berth-0", "--wait=true"]);
    c.rollout(NS, "statefulset/berth", Duration::from_secs(300));
    c.eventually("the pod ready again", Duration::from_secs(120), || {
        c.kubectl(&[
            "-n",
            NS,
            "exec",
            "berth-0",
            "--",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/readyz",
        ])
        .status
        .success()
    });
    let status: serde_json::Value =
        serde_json::from_str(&http(&c, "GET", &format!("/api/sessions/{id}")))
            .expect("status JSON");
    assert_eq!(status["id"], id.as_str(), "{status}");
    assert_eq!(
        docker(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "kept"
    );
    c.ok(&["delete", "namespace", NS, "--wait=true"]);
}
