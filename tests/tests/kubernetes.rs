//! The Kubernetes test cluster itself (tests/kubernetes/cluster, through
//! `berth_tests::kubernetes::Cluster`): what a deployment of Berth will rely on —
//! privileged pods of a StatefulSet finding each other by name, local persistent
//! volumes that outlive a pod — and that `down` leaves the machine as it found it.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::kubernetes::{busybox_image, state_dir, Cluster};

const NS: &str = "berth-k8s-test";

/// A headless Service and a StatefulSet of two privileged busybox pods, each with a
/// claim on a local volume, each serving its name over HTTP.
fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: x, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: x}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: x, namespace: {NS}}}
spec:
  serviceName: x
  replicas: 2
  selector: {{matchLabels: {{app: x}}}}
  template:
    metadata: {{labels: {{app: x}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: x
        image: local/busybox:1
        imagePullPolicy: Never
        securityContext: {{privileged: true}}
        command: ["/bin/sh", "-c"]
        args:
        - |
          mkdir -p /www && hostname > /www/index.html
          exec httpd -f -p 8080 -h /www
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 100Mi}}}}
"#
    )
}

/// What of the machine the cluster may change and must give back: interfaces, routes,
/// iptables chains, mounts and sysctls as they were (the cluster's names only: other
/// tests change the rest of the machine meanwhile).
fn cluster_traces() -> Vec<String> {
    let mut t = Vec::new();
    let state = state_dir();
    let state_s = state.display().to_string();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&format!("{state_s}/")) || cmdline.contains(&format!("{state_s} ")) {
            t.push(format!(
                "process {}: {cmdline}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    let links = run("ip", &["-o", "link", "show"]);
    for name in ["cni0", "berthk8s0"] {
        if links.contains(&format!(": {name}:")) {
            t.push(format!("interface {name}"));
        }
    }
    for l in run("ip", &["route", "show", "table", "all"]).lines() {
        if l.contains("10.244.")
            || l.contains("10.96.")
            || l.contains("berthk8s0")
            || l.contains("cni0")
        {
            t.push(format!("route {l}"));
        }
    }
    for cmd in ["iptables-save", "ip6tables-save"] {
        for l in run(cmd, &[]).lines() {
            if l.contains("KUBE-") || l.contains("CNI-") || l.contains("BERTH-K8S-") {
                t.push(format!("{cmd}: {l}"));
            }
        }
    }
    for l in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let point = l.split(' ').nth(4).unwrap_or("");
        if point.starts_with(&state_s) {
            t.push(format!("mount {point}"));
        }
    }
    for base in berth_tests::CGROUP_BASES {
        if Path::new(base).join("berth-k8s").exists() {
            t.push(format!("cgroup {base}/berth-k8s"));
        }
    }
    for p in ["/var/log/pods", "/var/log/containers"] {
        for e in fs::read_dir(p).into_iter().flatten().flatten() {
            t.push(format!("{}", e.path().display()));
        }
    }
    if state.exists() {
        t.push(format!("state dir {state_s}"));
    }
    t
}

/// The sysctls `cluster up` saved before the kubelet and kube-proxy changed them
/// (`key=value` lines, as sysctl names them), which `down` must restore.
fn saved_sysctls() -> Vec<(String, String)> {
    let f = state_dir().join("saved/sysctl");
    let saved = fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    let kv: Vec<(String, String)> = saved
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for k in ["kernel.panic", "net.ipv4.conf.all.route_localnet"] {
        assert!(kv.iter().any(|(n, _)| n == k), "{k} not saved in {saved}");
    }
    kv
}

fn sysctl(name: &str) -> String {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Packets the cluster's FORWARD chain dropped for coming from a pod.
fn forward_drops() -> u64 {
    let save = run("iptables-save", &["-c", "-t", "filter"]);
    let line = save
        .lines()
        .find(|l| l.ends_with("-A BERTH-K8S-FORWARD -s 10.244.0.0/16 -j DROP"))
        .unwrap_or_else(|| panic!("no pod DROP rule in BERTH-K8S-FORWARD:\n{save}"));
    line.trim_start_matches('[')
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("packet count of {line}"))
}

/// A field (jsonpath) of an object of the test's namespace.
fn get(c: &Cluster, object: &str, path: &str) -> String {
    c.ok(&["-n", NS, "get", object, "-o", &format!("jsonpath={path}")])
}

/// `sh -c SCRIPT` in POD of the test's namespace; its output whatever the status.
fn sh(c: &Cluster, pod: &str, script: &str) -> Output {
    c.kubectl(&["-n", NS, "exec", pod, "--", "sh", "-c", script])
}

/// `sh -c SCRIPT` in POD, expected to succeed; its stdout.
fn sh_ok(c: &Cluster, pod: &str, script: &str) -> String {
    c.ok(&["-n", NS, "exec", pod, "--", "sh", "-c", script])
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn statefulset_of_privileged_pods_finds_itself_by_name_keeps_its_volumes_and_down_cleans_up() {
    let t0 = Instant::now();
    let c = Cluster::up();
    eprintln!("kubernetes: cluster up in {:.1} s", c.up_seconds);
    // What the machine had before (read here, not before `up`: a cluster left by a
    // killed test would have changed them; `up` tears that one down first).
    let sysctls_before = saved_sysctls();
    assert_eq!(
        sysctl("kernel.panic"),
        "10",
        "the kubelet sets kernel.panic (this test checks that down restores it)"
    );
    // The node is Ready and the server is the version built (no kubectl skew).
    assert!(
        c.ok(&["get", "nodes"]).contains(" Ready "),
        "node not Ready"
    );
    assert!(c
        .ok(&["version", "--short"])
        .contains("Server Version: v1.20.2"));

    let tmp = tempfile::tempdir().expect("temp dir");
    let image = tmp.path().join("busybox.tar");
    busybox_image("local/busybox:1", &image);
    c.load_image(&image);

    c.ok(&["create", "namespace", NS]);
    c.apply_yaml(&manifest());
    c.rollout(NS, "statefulset/x", Duration::from_secs(180));
    let pod_ip = |pod: &str| get(&c, &format!("pod/{pod}"), "{.status.podIP}");
    let ip1 = pod_ip("x-1");
    assert!(ip1.starts_with("10.244.0."), "x-1's IP: {ip1}");

    // Pod-to-pod DNS by StatefulSet name, and a connection to the name.
    let name1 = format!("x-1.x.{NS}.svc.cluster.local");
    c.eventually(
        &format!("{name1} resolving to {ip1} in x-0"),
        Duration::from_secs(30),
        || {
            let out = String::from_utf8_lossy(&sh(&c, "x-0", &format!("nslookup {name1}")).stdout)
                .to_string();
            out.contains(&format!("Address: {ip1}"))
        },
    );
    let page = sh_ok(&c, "x-0", &format!("wget -qO- http://{name1}:8080/"));
    assert_eq!(page.trim(), "x-1", "x-1's page fetched from x-0 by name");
    // The short name, through the pod's search path (libc's resolver; busybox's
    // nslookup does not search).
    let page = sh_ok(&c, "x-1", "wget -qO- http://x-0.x:8080/");
    assert_eq!(
        page.trim(),
        "x-0",
        "x-0's page fetched from x-1 by its short name"
    );
    // Names outside the cluster are refused, not looked up elsewhere.
    let o = sh(&c, "x-0", "nslookup deb.debian.org");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && out.contains("REFUSED"),
        "deb.debian.org from a pod: {out}"
    );

    // Services: the API's cluster IP reaches the apiserver (kube-proxy's NAT)...
    sh_ok(&c, "x-0", "nc -w 5 10.96.0.1 443 </dev/null");
    // ...and what a pod sends anywhere else is dropped by the cluster's FORWARD chain
    // (here a service IP no Service has, which would otherwise be routed off the pod).
    let dropped = forward_drops();
    let o = sh(&c, "x-0", "nc -w 2 10.96.0.99 80 </dev/null");
    assert!(
        !o.status.success(),
        "a connection to an unused service IP succeeded"
    );
    assert!(
        forward_drops() > dropped,
        "BERTH-K8S-FORWARD dropped nothing"
    );

    // A privileged pod can mount (what Berth inside a pod needs).
    let out = sh_ok(
        &c,
        "x-0",
        "mkdir -p /mnt/t && mount -t tmpfs -o size=1m tmpfs /mnt/t && echo mounted > /mnt/t/f \
         && cat /mnt/t/f && grep ' /mnt/t ' /proc/mounts && umount /mnt/t",
    );
    assert!(
        out.starts_with("mounted") && out.contains("tmpfs"),
        "tmpfs in a privileged pod: {out}"
    );

    // The local volume outlives its pod: write, delete the pod, read it back from the
    // pod the StatefulSet makes anew.
    let token = format!("token-{}", std::process::id());
    sh_ok(&c, "x-1", &format!("echo {token} > /data/token"));
    let uid = get(&c, "pod/x-1", "{.metadata.uid}");
    c.ok(&["-n", NS, "delete", "pod", "x-1", "--wait=true"]);
    c.eventually("x-1 back and Ready", Duration::from_secs(120), || {
        let o = c.kubectl(&[
            "-n",
            NS,
            "get",
            "pod/x-1",
            "-o",
            r#"jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        let s = String::from_utf8_lossy(&o.stdout);
        o.status.success() && !s.starts_with(&uid) && s.ends_with(" True")
    });
    let back = sh_ok(&c, "x-1", "cat /data/token");
    assert_eq!(
        back.trim(),
        token,
        "x-1's volume after the pod was recreated"
    );
    let pv = get(&c, "pvc/data-x-1", "{.spec.volumeName}");
    assert!(pv.starts_with("local-pv"), "data-x-1 bound to {pv}");

    let test_seconds = t0.elapsed().as_secs_f64();
    let down = c.down();
    eprintln!("kubernetes: test {test_seconds:.1} s, down {down:.1} s");
    let left = cluster_traces();
    assert!(
        left.is_empty(),
        "left after cluster down:\n{}",
        left.join("\n")
    );
    for (name, before) in sysctls_before {
        assert_eq!(sysctl(&name), before, "{name} after cluster down");
    }
}
