//! deploy/kubernetes, the manifests an operator applies with `kubectl apply -k`:
//!
//! - they render with today's kubectl (kustomize v5) and with kubectl 1.20's
//!   (kustomize v2.0.3) alike, pass the schemas of Kubernetes 1.25, 1.30 and 1.37
//!   (`kubernetes-validate`, strict), and hold together where no schema looks
//!   (selectors that select, ports that resolve, variables defined before use, probes,
//!   resources, the lab nodes' network policy); the Secret's placeholder is one Berth
//!   refuses;
//! - deployed on the test cluster (berth_tests::kubernetes) through an overlay, they
//!   run a hub, two lab nodes and PostgreSQL: sessions made through the hub's Service
//!   spread over both nodes, a container and its published port work through the hub,
//!   and a lab node's pod deleted comes back with its sessions and containers while
//!   the other node's students go on.
//!
//! Classes through the hub are not done yet (the hub answers 501): the deployment
//! test covers the open playground; a classroom part goes after its sessions part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::kubernetes::Cluster;
use berth_tests::lab::Web;
use serde_json::Value;

/// The namespace deploy/kubernetes puts everything in.
const NS: &str = "berth";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

/// Runs `cmd`, expecting success; its stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The venv with kubernetes-validate that tests/run makes
/// (tests/kubernetes/validate-venv, cached in /var/cache/berth-tests).
fn validate_venv() -> PathBuf {
    let script = repo().join("tests/kubernetes/validate-venv");
    let venv =
        PathBuf::from(run(Command::new(&script).arg("--path"), "validate-venv --path").trim());
    assert!(
        venv.join(".complete").is_file(),
        "kubernetes-validate is not installed in {}: run tests/kubernetes/validate-venv \
         (tests/run does; it needs python3-venv and PyPI, about 20 s once per machine)",
        venv.display()
    );
    venv
}

/// The YAML documents of `yaml` as JSON, read with the venv's PyYAML (this crate
/// reads no YAML itself).
fn yaml_docs(venv: &Path, yaml: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("in.yaml");
    std::fs::write(&file, yaml).expect("write yaml");
    let json = run(
        Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(
                "import sys, json, yaml\n\
             docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
             json.dump(docs, sys.stdout)",
            )
            .arg(&file),
        "yaml to json",
    );
    serde_json::from_str::<Vec<Value>>(&json).expect("documents as JSON")
}

/// `kind/name` of every document.
fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or("?"),
                d["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", ids(docs)))
}

/// Whether the label selector `matchLabels` selects a pod with `labels`.
fn selects(match_labels: &Value, labels: &Value) -> bool {
    let Some(m) = match_labels.as_object() else {
        return false;
    };
    !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod templates of the workloads: (workload, template).
fn templates(docs: &[Value]) -> Vec<(String, &Value)> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
        .map(|d| {
            (
                ids(std::slice::from_ref(d)).remove(0),
                &d["spec"]["template"],
            )
        })
        .collect()
}

/// The one workload whose pods `match_labels` selects (a selector that selects none,
/// or several, is a mistake here).
fn selected<'a>(docs: &'a [Value], match_labels: &Value, by: &str) -> (String, &'a Value) {
    let hits: Vec<_> = templates(docs)
        .into_iter()
        .filter(|(_, t)| selects(match_labels, &t["metadata"]["labels"]))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{by}: selector {match_labels} selects {:?}",
        hits.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    hits.into_iter().next().unwrap()
}

/// The container named `name` of a pod template.
fn container<'a>(template: &'a Value, name: &str) -> &'a Value {
    template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// A container's environment variable `name`: its entry.
fn env<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("container {} has no {name}", c["name"]))
}

/// The container port a (named or numbered) port of `template` resolves to.
fn resolve_port(template: &Value, port: &Value) -> Option<u64> {
    if let Some(n) = port.as_u64() {
        return Some(n);
    }
    template["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == *port)
        .and_then(|p| p["containerPort"].as_u64())
}

/// What no schema checks: that the pieces fit together, and that what the README and
/// the comments promise is there.
fn check_consistency(docs: &[Value]) {
    let mut want = vec![
        "Namespace/berth",
        "Secret/berth",
        "Service/berth-hub",
        "Service/berth-node",
        "Service/berth-postgres",
        "Deployment/berth-hub",
        "StatefulSet/berth-node",
        "StatefulSet/berth-postgres",
        "PodDisruptionBudget/berth-hub",
        "PodDisruptionBudget/berth-node",
        "NetworkPolicy/berth-node",
        "NetworkPolicy/berth-postgres",
    ];
    let mut have = ids(docs);
    want.sort();
    have.sort();
    assert_eq!(have, want, "the objects of deploy/kubernetes");

    for d in docs {
        let id = ids(std::slice::from_ref(d)).remove(0);
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/name"], "berth",
            "{id}: common label"
        );
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], NS, "{id}: namespace");
        }
        if d["kind"] == "PodDisruptionBudget" {
            assert_eq!(d["apiVersion"], "policy/v1", "{id}");
        }
    }

    let secret = find(docs, "Secret", "berth");
    let secret_keys: Vec<&String> = secret["stringData"]
        .as_object()
        .expect("stringData")
        .keys()
        .collect();
    for (id, t) in templates(docs) {
        let workload = docs
            .iter()
            .find(|d| ids(std::slice::from_ref(d))[0] == id)
            .unwrap();
        assert!(
            selects(
                &workload["spec"]["selector"]["matchLabels"],
                &t["metadata"]["labels"]
            ),
            "{id}: its selector must select its own pods"
        );
        let spec = &t["spec"];
        assert!(
            spec["terminationGracePeriodSeconds"].is_u64(),
            "{id}: terminationGracePeriodSeconds"
        );
        assert_eq!(
            spec["automountServiceAccountToken"], false,
            "{id}: no API token in the pods"
        );
        let all = spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["containers"].as_array().into_iter().flatten());
        for c in all {
            let cid = format!("{id} container {}", c["name"]);
            for (what, r) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                assert!(
                    c["resources"][what][r].is_string(),
                    "{cid}: resources.{what}.{r}"
                );
            }
            let image = c["image"].as_str().unwrap_or_default();
            if image.starts_with("berth") {
                assert_eq!(
                    image, "berth:latest",
                    "{cid}: the image operators override with `images:`"
                );
            }
            assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{cid}");
            // Kubernetes expands $(VAR) only from variables defined before, in the same
            // container; anything else stays literally "$(VAR)".
            let mut defined: Vec<&str> = Vec::new();
            for e in c["env"].as_array().into_iter().flatten() {
                let value = e["value"].as_str().unwrap_or_default();
                for part in value.split("$(").skip(1) {
                    let var = part.split(')').next().unwrap_or_default();
                    assert!(
                        defined.contains(&var),
                        "{cid}: {} uses $({var}) before it is defined",
                        e["name"]
                    );
                }
                if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
                    assert_eq!(
                        e["valueFrom"]["secretKeyRef"]["name"], "berth",
                        "{cid}: {}",
                        e["name"]
                    );
                    assert!(
                        secret_keys.iter().any(|k| *k == key),
                        "{cid}: the Secret has no {key}"
                    );
                }
                defined.push(e["name"].as_str().unwrap_or_default());
            }
        }
        for c in spec["containers"].as_array().into_iter().flatten() {
            assert!(
                c["readinessProbe"].is_object() && c["livenessProbe"].is_object(),
                "{id} container {}: probes",
                c["name"]
            );
        }
    }

    // Berth's two roles: probes on /readyz and /healthz on the web port, the secret,
    // the database (the postgres Service, user and database).
    let pg = &find(docs, "StatefulSet", "berth-postgres")["spec"]["template"];
    let pg_c = container(pg, "postgres");
    let pg_port = find(docs, "Service", "berth-postgres")["spec"]["ports"][0]["port"]
        .as_u64()
        .unwrap();
    let db_url = format!(
        "postgres://{}:$(DATABASE_PASSWORD)@berth-postgres:{pg_port}/{}",
        env(pg_c, "POSTGRES_USER")["value"].as_str().unwrap(),
        env(pg_c, "POSTGRES_DB")["value"].as_str().unwrap()
    );
    assert_eq!(
        env(pg_c, "POSTGRES_PASSWORD")["valueFrom"]["secretKeyRef"]["key"],
        "postgres-password"
    );
    let pgdata = env(pg_c, "PGDATA")["value"].as_str().unwrap();
    let data_mount = pg_c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        pgdata.starts_with(&format!("{data_mount}/")),
        "PGDATA {pgdata} below the volume {data_mount}, not its root"
    );
    for (kind, name, cname, role) in [
        ("Deployment", "berth-hub", "hub", "hub"),
        ("StatefulSet", "berth-node", "node", "node"),
    ] {
        let t = &find(docs, kind, name)["spec"]["template"];
        let c = container(t, cname);
        assert_eq!(env(c, "BERTH_ROLE")["value"], role);
        assert_eq!(
            env(c, "BERTH_CLUSTER_SECRET")["valueFrom"]["secretKeyRef"]["key"],
            "cluster-secret"
        );
        assert_eq!(
            env(c, "DATABASE_PASSWORD")["valueFrom"]["secretKeyRef"]["key"],
            "postgres-password"
        );
        assert_eq!(
            env(c, "BERTH_DATABASE_URL")["value"],
            db_url.as_str(),
            "{name}"
        );
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{name} {probe}");
            assert_eq!(
                resolve_port(t, &c[probe]["httpGet"]["port"]),
                Some(8080),
                "{name} {probe} port"
            );
        }
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            args.windows(2).any(|w| w == ["--listen", "0.0.0.0:8080"]),
            "{name}: {args:?}"
        );
    }
    let hub = &find(docs, "Deployment", "berth-hub")["spec"]["template"];
    assert_eq!(
        hub["spec"]["securityContext"]["runAsNonRoot"], true,
        "the hub needs no privilege"
    );
    assert_ne!(container(hub, "hub")["securityContext"]["privileged"], true);
    let nodes = find(docs, "StatefulSet", "berth-node");
    let node = container(&nodes["spec"]["template"], "node");
    assert_eq!(
        node["securityContext"]["privileged"], true,
        "a container engine in a pod"
    );
    assert_eq!(
        env(node, "BERTH_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env(node, "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    assert_eq!(
        env(node, "BERTH_ADVERTISE_URL")["value"],
        "http://$(POD_IP):8080"
    );
    let state = nodes["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .unwrap();
    assert!(
        node["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == state && m["mountPath"] == "/var/lib/berth"),
        "the node's state root on its claim"
    );
    let node_args: Vec<&str> = node["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for flag in ["--lab-docker-cli", "--lab-compose"] {
        let at = node_args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("node args without {flag}"));
        assert!(
            // The image's own tools (Berth copies them where it can idmap them).
            node_args[at + 1].starts_with("/usr/local/lib/berth-lab/"),
            "{flag} {}",
            node_args[at + 1]
        );
    }
    let args: Vec<&str> = node["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--root", "/var/lib/berth"]),
        "{args:?}"
    );
    for set in ["berth-node", "berth-postgres"] {
        let svc = find(docs, "StatefulSet", set)["spec"]["serviceName"]
            .as_str()
            .unwrap();
        find(docs, "Service", svc);
    }
    assert_eq!(
        find(docs, "Service", "berth-node")["spec"]["clusterIP"],
        "None",
        "a StatefulSet's Service is headless"
    );

    // Services and budgets select the pods they are named for, on ports they have.
    for (kind, name, component) in [
        ("Service", "berth-hub", "hub"),
        ("Service", "berth-node", "node"),
        ("Service", "berth-postgres", "postgres"),
        ("PodDisruptionBudget", "berth-hub", "hub"),
        ("PodDisruptionBudget", "berth-node", "node"),
    ] {
        let d = find(docs, kind, name);
        let sel = if kind == "Service" {
            &d["spec"]["selector"]
        } else {
            &d["spec"]["selector"]["matchLabels"]
        };
        let (_, t) = selected(docs, sel, &format!("{kind}/{name}"));
        assert_eq!(
            t["metadata"]["labels"]["app.kubernetes.io/component"],
            component
        );
        for p in d["spec"]["ports"].as_array().into_iter().flatten() {
            assert!(
                resolve_port(t, &p["targetPort"]).is_some(),
                "{kind}/{name}: target port {} resolves",
                p["targetPort"]
            );
        }
    }
    let hub_svc = find(docs, "Service", "berth-hub");
    assert_eq!(hub_svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(
        resolve_port(hub, &hub_svc["spec"]["ports"][0]["targetPort"]),
        Some(8080)
    );

    // The lab nodes' policy: in, the hub on 8080 only; out, DNS, PostgreSQL and the
    // outside world without the private and link-local ranges.
    let np = &find(docs, "NetworkPolicy", "berth-node")["spec"];
    assert_eq!(
        selected(docs, &np["podSelector"]["matchLabels"], "berth-node policy").0,
        "StatefulSet/berth-node"
    );
    assert_eq!(np["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let ingress = np["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        selected(
            docs,
            &ingress[0]["from"][0]["podSelector"]["matchLabels"],
            "node ingress"
        )
        .0,
        "Deployment/berth-hub"
    );
    assert_eq!(ingress[0]["from"].as_array().unwrap().len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );
    let mut open_world = 0;
    for rule in np["egress"].as_array().unwrap() {
        let to = rule["to"]
            .as_array()
            .unwrap_or_else(|| panic!("an egress rule without `to` lets everything out: {rule}"));
        for peer in to {
            if let Some(block) = peer.get("ipBlock") {
                assert_eq!(block["cidr"], "0.0.0.0/0", "{rule}");
                let except: Vec<&str> = block["except"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                for private in [
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    "169.254.0.0/16",
                ] {
                    assert!(
                        except.contains(&private),
                        "the lab nodes' egress must exclude {private}: {except:?}"
                    );
                }
                open_world += 1;
            } else if peer.get("namespaceSelector").is_some() {
                assert!(
                    rule["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|p| p["port"] == 53),
                    "other namespaces: DNS only: {rule}"
                );
            } else {
                let (w, _) = selected(docs, &peer["podSelector"]["matchLabels"], "node egress");
                assert_eq!(w, "StatefulSet/berth-postgres", "{rule}");
                assert_eq!(
                    rule["ports"],
                    serde_json::json!([{"port": 5432, "protocol": "TCP"}])
                );
            }
        }
    }
    assert_eq!(open_world, 1);
    let pgp = &find(docs, "NetworkPolicy", "berth-postgres")["spec"];
    assert_eq!(
        selected(docs, &pgp["podSelector"]["matchLabels"], "postgres policy").0,
        "StatefulSet/berth-postgres"
    );
    let mut from: Vec<String> = pgp["ingress"][0]["from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| selected(docs, &p["podSelector"]["matchLabels"], "postgres ingress").0)
        .collect();
    from.sort();
    assert_eq!(from, ["Deployment/berth-hub", "StatefulSet/berth-node"]);
    assert_eq!(pgp["ingress"].as_array().unwrap().len(), 1);
}

#[test]
fn manifests_render_with_old_and_new_kubectl_and_pass_current_schemas() {
    berth_tests::require(
        "kubectl",
        "a current kubectl (1.27 or later, whose kustomize operators use): https://kubernetes.io/docs/tasks/tools/",
    );
    let venv = validate_venv();
    let dir = repo().join("deploy/kubernetes");
    let rendered = run(
        Command::new("kubectl").arg("kustomize").arg(&dir),
        "kubectl kustomize deploy/kubernetes",
    );
    // kubectl 1.20's kustomize (v2.0.3), from the test cluster's build (cached; built
    // by tests/run once per machine).
    let cluster = berth_tests::kubernetes::script();
    run(
        Command::new(&cluster).arg("build"),
        "tests/kubernetes/cluster build",
    );
    let rendered_old = run(
        Command::new(&cluster).arg("kustomize").arg(&dir),
        "kubectl 1.20 kustomize deploy/kubernetes",
    );
    let docs = yaml_docs(&venv, &rendered);
    assert_eq!(
        docs,
        yaml_docs(&venv, &rendered_old),
        "kubectl 1.20 and today's kubectl render deploy/kubernetes differently"
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("berth.yaml");
    std::fs::write(&file, &rendered).expect("write");
    let validate = |file: &Path, version: &str| {
        Command::new(venv.join("bin/kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", version])
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .expect("run kubernetes-validate")
    };
    for version in ["1.25.0", "1.30.0", "1.37.0"] {
        let o = validate(&file, version);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success(),
            "deploy/kubernetes against Kubernetes {version}:\n{out}"
        );
        // Every object checked, none skipped as unknown.
        assert_eq!(
            out.matches("passed for resource").count(),
            docs.len(),
            "{version}:\n{out}"
        );
    }
    // The validator does reject: the same manifests with a misspelt field fail.
    let broken = rendered.replacen(
        "terminationGracePeriodSeconds",
        "terminationGracePeriodSecond",
        1,
    );
    let broken_file = tmp.path().join("broken.yaml");
    std::fs::write(&broken_file, broken).expect("write");
    let o = validate(&broken_file, "1.30.0");
    assert!(
        !o.status.success(),
        "kubernetes-validate took a misspelt field"
    );

    check_consistency(&docs);

    // The Secret's placeholder is too short for Berth: nothing starts until the
    // operator sets a real secret.
    let placeholder = find(&docs, "Secret", "berth")["stringData"]["cluster-secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(placeholder.len() < 16, "{placeholder:?}");
    let o = Command::new(berth_tests::berth_bin())
        .args(["serve", "--role", "hub", "--listen", "127.0.0.1:0"])
        .env("BERTH_CLUSTER_SECRET", &placeholder)
        .env("BERTH_DATABASE_URL", "postgres://berth:x@127.0.0.1:1/berth")
        .stdin(Stdio::null())
        .output()
        .expect("run berth serve");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "berth serve started with the placeholder secret"
    );
    assert!(err.contains("at least 16 characters"), "{err}");
}

/// The overlay the deployment test applies: the images made here, a real secret, two
/// lab nodes, and what the one-node test cluster needs (smaller requests and claims).
fn write_overlay(dir: &Path, secret: &str, db_password: &str) {
    // kustomize refuses absolute paths to a base: relative from the overlay.
    let base = repo().join("deploy/kubernetes");
    let up = dir.components().count() - 1;
    let rel = format!(
        "{}{}",
        "../".repeat(up),
        base.strip_prefix("/").unwrap().display()
    );
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            r#"# `bases:`, which kubectl 1.20's kustomize (v2.0.3) needs for a directory.
bases:
- {rel}
images:
- name: berth
  newName: berth-test/berth
  newTag: e2e
- name: postgres
  newName: berth-test/postgres
  newTag: e2e
patchesStrategicMerge:
- patch.yaml
"#
        ),
    )
    .expect("kustomization");
    std::fs::write(
        dir.join("patch.yaml"),
        format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: berth}}
stringData:
  cluster-secret: {secret}
  postgres-password: {db_password}
---
# One hub: six sessions from one hub spread evenly (a second hub counts its own
# placements only).
apiVersion: apps/v1
kind: Deployment
metadata: {{name: berth-hub}}
spec:
  replicas: 1
---
# Two nodes on a 2-core machine: the base's request of one CPU each would leave one
# Pending. The test cluster's volumes are of 1Gi.
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: berth-node}}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: node
        resources:
          requests: {{cpu: 250m, memory: 512Mi}}
  volumeClaimTemplates:
  - metadata: {{name: state}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: berth-postgres}}
spec:
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
        ),
    )
    .expect("patch");
}

/// `psql` in the database's pod (the local socket, trusted there): the rows, trimmed.
fn sql(c: &Cluster, query: &str) -> String {
    c.ok(&[
        "-n",
        NS,
        "exec",
        "berth-postgres-0",
        "--",
        "psql",
        "-U",
        "berth",
        "-d",
        "berth",
        "-tAc",
        query,
    ])
}

/// A pod's field (`{.status.podIP}`, `{.metadata.uid}`); empty when there is no pod.
fn pod_field(c: &Cluster, pod: &str, path: &str) -> String {
    let o = c.kubectl(&[
        "-n",
        NS,
        "get",
        "pod",
        pod,
        "-o",
        &format!("jsonpath={path}"),
    ]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_manifests_run_a_hub_and_lab_nodes_that_keep_their_sessions() {
    for (cmd, hint) in [
        (
            "docker",
            "the docker CLI goes into the Berth image (deploy/image/build)",
        ),
        (
            "debootstrap",
            "apt-get install debootstrap (the images' Debian base)",
        ),
        ("jq", "apt-get install jq (tests/kubernetes/mkimage)"),
        ("curl", "apt-get install curl"),
    ] {
        berth_tests::require(cmd, hint);
    }
    let t0 = Instant::now();
    let c = Cluster::up();
    let dir = tempfile::Builder::new()
        .prefix("berth-deploy-k8s-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();

    // The images, made here and loaded (the cluster pulls nothing): Berth (the debug
    // binary will do) and PostgreSQL from Debian's package with the official image's
    // interface.
    let berth_tar = d.join("berth.tar");
    run(
        Command::new(repo().join("deploy/image/build"))
            .arg(&berth_tar)
            .arg("berth-test/berth:e2e")
            .env("BERTH_BIN", berth_tests::berth_bin()),
        "deploy/image/build",
    );
    let pg_tar = d.join("postgres.tar");
    run(
        Command::new(repo().join("tests/images/postgres-image"))
            .arg(&pg_tar)
            .arg("berth-test/postgres:e2e"),
        "tests/images/postgres-image",
    );
    c.load_image(&berth_tar);
    c.load_image(&pg_tar);
    std::fs::remove_file(&berth_tar).ok();
    std::fs::remove_file(&pg_tar).ok();
    let images_done = t0.elapsed();

    // The manifests through an overlay, rendered by the cluster's own kubectl.
    let secret = "e2e-cluster-secret-0123456789abcdef";
    let overlay = d.join("overlay");
    std::fs::create_dir(&overlay).expect("overlay dir");
    write_overlay(&overlay, secret, "e2edbpassword0123");
    let rendered = run(
        Command::new(berth_tests::kubernetes::script())
            .arg("kustomize")
            .arg(&overlay),
        "kustomize the overlay",
    );
    // Kubernetes 1.20 serves PodDisruptionBudgets as policy/v1beta1 only (policy/v1
    // came in 1.21); the fields used are the same in both.
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget";
    assert_eq!(rendered.matches(pdb).count(), 2, "{rendered}");
    let rendered = rendered.replace(pdb, "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget");
    c.apply_yaml(&rendered);
    // The test cluster's network plugin (a plain bridge) does not enforce
    // NetworkPolicy: they are accepted here, and this test claims no more.
    for what in [
        "statefulset/berth-postgres",
        "deployment/berth-hub",
        "statefulset/berth-node",
    ] {
        c.rollout(NS, what, Duration::from_secs(300));
    }
    c.eventually(
        "both lab nodes in the database, taking sessions",
        Duration::from_secs(60),
        || {
            sql(
                &c,
                "SELECT name FROM nodes WHERE accepting = 1 ORDER BY name",
            ) == "berth-node-0\nberth-node-1"
        },
    );
    let deployed = t0.elapsed();

    // The hub through its Service, from the cluster's node (this machine: kube-proxy
    // sends a Service's address to a pod from here as from any pod).
    let hub_ip = c.ok(&[
        "-n",
        NS,
        "get",
        "service",
        "berth-hub",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let hub_log = d.join("hub.log");
    let hub = Web {
        addr: format!("{hub_ip}:80"),
        log: hub_log.clone(),
    };
    let refresh_log = || {
        let o = c.kubectl(&["-n", NS, "logs", "deployment/berth-hub", "--tail=200"]);
        std::fs::write(&hub_log, [o.stdout, o.stderr].concat()).ok();
    };
    assert_eq!(hub.http("GET", "/readyz", None).0, 200);
    assert_eq!(hub.http("GET", "/", None).0, 200);
    assert!(hub
        .json("GET", "/api/lessons", None)
        .as_array()
        .is_some_and(|l| !l.is_empty()));
    // A node answers its hub only (the secret): asked directly, it refuses.
    let node_ip = pod_field(&c, "berth-node-0", "{.status.podIP}");
    let direct = Web {
        addr: format!("{node_ip}:8080"),
        log: hub_log.clone(),
    };
    let (code, body) = direct.http("POST", "/api/sessions", None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(direct.http("GET", "/readyz", None).0, 200);

    // --- The open playground: sessions spread over the nodes. ---
    let ids: Vec<String> = std::thread::scope(|s| {
        let made: Vec<_> = (0..6).map(|_| s.spawn(|| hub.create_session())).collect();
        made.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &ids {
        let node = sql(&c, &format!("SELECT node FROM sessions WHERE id = '{id}'"));
        by_node.entry(node).or_default().push(id.clone());
    }
    let counts: Vec<(String, usize)> = by_node.iter().map(|(n, v)| (n.clone(), v.len())).collect();
    eprintln!("deploy_kubernetes: 6 sessions placed {counts:?}");
    assert_eq!(
        by_node.keys().collect::<Vec<_>>(),
        ["berth-node-0", "berth-node-1"],
        "{counts:?}"
    );
    assert!(
        by_node.values().all(|v| v.len() >= 2),
        "sessions not spread: {counts:?}"
    );

    // Containers in a session on node 0 (one with a restart policy, its port
    // published and opened through the hub); a terminal on node 1 beside it.
    let (gone_node, kept_node) = ("berth-node-0", "berth-node-1");
    let sa = by_node[gone_node][0].clone();
    let sb = by_node[kept_node][0].clone();
    let mut ta = hub.terminal(&sa);
    let mut tb = hub.terminal(&sb);
    ta.expect("$ ");
    tb.expect("$ ");
    ta.line("mkdir -p site && echo served-by-$((1+1))-pods > site/index.html && docker run -d --restart unless-stopped -p 8080:80 -v /root/site:/www --name web busybox httpd -f -p 80 -h /www && docker run -d --name plain busybox sleep 3600 && echo started-$((2+3))");
    ta.expect("started-5");
    // Compose and --init, from the image's tools.
    ta.line("docker compose version && docker run --rm --init busybox sh -c 'echo init-$((3*3))'");
    ta.expect("Docker Compose version");
    ta.expect("init-9");
    hub.eventually(
        "the published port through the hub",
        Duration::from_secs(20),
        || {
            let (code, body) = hub.http("GET", &format!("/lab/{sa}/ports/8080/"), None);
            code == 200 && body.trim() == "served-by-2-pods"
        },
    );
    tb.line("echo b-$((20+1))");
    tb.expect("b-21");
    drop(ta);
    let sessions_done = t0.elapsed();

    // --- A class through the hub: an instructor made in the hub's pod (on the shared
    // database), a login and a class through the hub, four students joining: their
    // labs are spread over the nodes like any sessions. ---
    c.ok(&[
        "-n",
        NS,
        "exec",
        "deployment/berth-hub",
        "--",
        "sh",
        "-c",
        "echo 'correct horse' | berth instructor add kim",
    ]);
    let cookie = hub.login("kim", "correct horse").unwrap();
    let (code, body, _) = hub.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"On Kubernetes","lessons":["lifecycle"]}"#),
        &[&cookie],
    );
    assert_eq!(code, 201, "{body}");
    let class: Value = serde_json::from_str(&body).unwrap();
    let (class_id, join_code) = (
        class["id"].as_str().unwrap().to_string(),
        class["code"].as_str().unwrap().to_string(),
    );
    let students = ["Ann", "Bo", "Cy", "Di"];
    let mut student_node: BTreeMap<String, String> = BTreeMap::new();
    for n in students {
        let v = hub.json(
            "POST",
            "/api/join",
            Some(&serde_json::json!({ "code": join_code, "name": n }).to_string()),
        );
        let sid = v["session"]["id"].as_str().unwrap().to_string();
        student_node.insert(
            n.to_string(),
            sql(&c, &format!("SELECT node FROM sessions WHERE id = '{sid}'")),
        );
    }
    assert!(
        student_node.values().any(|n| n == "berth-node-0")
            && student_node.values().any(|n| n == "berth-node-1"),
        "a class spread over both nodes: {student_node:?}"
    );
    let dashboard = || -> Value {
        let (code, body, _) = hub.http_with(
            "GET",
            &format!("/api/teach/classes/{class_id}"),
            None,
            &[&cookie],
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let rows = |d: &Value| -> BTreeMap<String, bool> {
        d["students"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["reconnecting"] == true,
                )
            })
            .collect()
    };
    assert_eq!(rows(&dashboard()).len(), 4);

    // --- Node 0's pod deleted: the StatefulSet makes it again, same name and volume. ---
    // Meanwhile node 1's student goes on: status and terminal through the hub, checked
    // every second; node 0's students hear "reconnecting".
    let old_uid = pod_field(&c, gone_node, "{.metadata.uid}");
    let old_ip = pod_field(&c, gone_node, "{.status.podIP}");
    c.ok(&["-n", NS, "delete", "pod", gone_node, "--wait=false"]);
    let deleted = Instant::now();
    let mut seen_a: BTreeMap<u16, usize> = BTreeMap::new();
    let mut reconnecting = false;
    let mut class_reconnecting = false;
    let mut tick = 0;
    let back = loop {
        assert!(
            deleted.elapsed() < Duration::from_secs(300),
            "{gone_node} did not come back with session {sa} ({seen_a:?})\n{}",
            c.diagnostics()
        );
        tick += 1;
        let (code, body) = hub.http("GET", &format!("/api/sessions/{sb}"), None);
        assert_eq!(
            code, 200,
            "{kept_node}'s session through the hub while {gone_node} is away: {body}"
        );
        tb.line(&format!("echo tick-$((1000+{tick}))"));
        tb.expect(&format!("tick-{}", 1000 + tick));
        // Every student stays on the dashboard; node 0's read as reconnecting while away.
        let r = rows(&dashboard());
        assert_eq!(r.len(), 4, "the dashboard while {gone_node} is away: {r:?}");
        for (n, away) in &r {
            if *away {
                assert_eq!(student_node[n], gone_node, "{n} reconnecting: {r:?}");
                class_reconnecting = true;
            }
        }
        let (code, body) = hub.http("GET", &format!("/api/sessions/{sa}"), None);
        *seen_a.entry(code).or_default() += 1;
        if code == 503 && body.contains("\"reconnecting\"") {
            reconnecting = true;
        }
        let uid = pod_field(&c, gone_node, "{.metadata.uid}");
        if code == 200 && !uid.is_empty() && uid != old_uid {
            break deleted.elapsed();
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let new_ip = pod_field(&c, gone_node, "{.status.podIP}");
    eprintln!(
        "deploy_kubernetes: {gone_node} back after {:.1} s (pod IP {old_ip} -> {new_ip}); session {sa} answered {seen_a:?}; {kept_node}'s terminal and status answered {tick} times",
        back.as_secs_f64()
    );
    assert!(
        reconnecting,
        "{gone_node}'s session never read as reconnecting while its pod was away: {seen_a:?}"
    );
    assert!(
        class_reconnecting,
        "the dashboard never showed {gone_node}'s students as reconnecting"
    );
    c.eventually(
        "the whole class back on the dashboard",
        Duration::from_secs(30),
        || rows(&dashboard()).values().all(|away| !away),
    );
    // All of node 0's sessions are back.
    for id in &by_node[gone_node] {
        assert_eq!(
            hub.http("GET", &format!("/api/sessions/{id}"), None).0,
            200,
            "session {id}"
        );
    }
    let mut ta = hub.terminal(&sa);
    // The pod's end stopped its containers, as a reboot stops Docker's; they are
    // there, with the files of the session.
    ta.line("cat site/index.html; for c in web plain; do docker ps -a --filter name=$c --format '{{.Names}} {{.Status}}'; done; echo listed-$((6*7))");
    ta.expect("served-by-2-pods");
    let listed = ta.expect("listed-42");
    assert!(
        listed.contains("web ") && listed.contains("plain "),
        "{listed}"
    );
    // As Docker does when its daemon comes back, `web` (`--restart unless-stopped`)
    // runs again, once the node has made its session's network again; `plain` stays
    // stopped.
    assert!(
        listed.contains("web Up") && listed.contains("plain Exited"),
        "after the pod's replacement: {listed}\nnode log:\n{}",
        String::from_utf8_lossy(&c.kubectl(&["-n", NS, "logs", gone_node]).stdout)
            .lines()
            .filter(|l| l.contains("restart") || l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    hub.eventually(
        "the published port through the hub again",
        Duration::from_secs(20),
        || {
            let (code, body) = hub.http("GET", &format!("/lab/{sa}/ports/8080/"), None);
            code == 200 && body.trim() == "served-by-2-pods"
        },
    );
    tb.line("echo after-$((1+2))");
    tb.expect("after-3");
    drop((ta, tb));

    // Sessions removed through the hub are removed on their nodes.
    refresh_log();
    for id in &ids {
        let (code, body) = hub.http("DELETE", &format!("/api/sessions/{id}"), None);
        assert_eq!(code, 204, "DELETE {id}: {body}\n{}", hub.log());
    }
    // (The class's labs stay: a class member's lab is the instructor's to end.)
    assert_eq!(
        sql(
            &c,
            "SELECT count(*) FROM sessions WHERE id NOT IN (SELECT session FROM members)"
        ),
        "0"
    );
    let down = c.down();
    eprintln!(
        "deploy_kubernetes: images built and loaded {:.0} s, deployed and ready {:.0} s, sessions {:.0} s, \
         node replaced {:.0} s, down {down:.1} s, total {:.0} s",
        images_done.as_secs_f64(),
        (deployed - images_done).as_secs_f64(),
        (sessions_done - deployed).as_secs_f64(),
        back.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
