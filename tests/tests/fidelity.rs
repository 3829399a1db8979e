//! Docker fidelity of `docker run` flags: each one the issue names either takes
//! effect, with the same visible result inside the container as on Debian's dockerd
//! (the same commands run against both in one test), or is refused with a message
//! naming it. Nothing is silently ignored.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use berth_tests::dockerd::Dockerd;
use berth_tests::Berth;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Copies the seed busybox into the dockerd, which has no registry to pull from.
fn load_busybox(b: &Berth, d: &Dockerd) {
    let saved = b.cmd(&["save", "busybox"]).stdin(Stdio::null()).output().expect("docker save");
    assert!(saved.status.success(), "save: {}", String::from_utf8_lossy(&saved.stderr));
    let mut load = d.cmd(&["load"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("docker load");
    load.stdin.take().expect("stdin").write_all(&saved.stdout).expect("write image");
    let o = load.wait_with_output().expect("load");
    assert!(o.status.success(), "dockerd load: {}", String::from_utf8_lossy(&o.stderr));
}

/// `docker run --rm --network none FLAGS… busybox sh -c SCRIPT` on both engines.
fn both(b: &Berth, d: &Dockerd, flags: &[&str], script: &str) -> (String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let ours = b.docker(&args);
    let theirs = d.docker(&args);
    assert!(theirs.status.success(), "dockerd {args:?}: {}", String::from_utf8_lossy(&theirs.stderr));
    assert!(ours.status.success(), "berth {args:?}: {}\n{}", String::from_utf8_lossy(&ours.stderr), b.server_log().lines().rev().take(15).collect::<Vec<_>>().join("\n"));
    (out(&ours), out(&theirs))
}

/// The same output on both engines.
fn same(b: &Berth, d: &Dockerd, flags: &[&str], script: &str) -> String {
    let (ours, theirs) = both(b, d, flags, script);
    assert_eq!(ours, theirs, "{flags:?} `{script}`: Berth's output (left) differs from dockerd's (right)");
    ours
}

#[test]
fn run_flags_take_effect_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    load_busybox(&b, &d);

    // --add-host, --domainname, --dns*: the files Docker writes.
    let hosts = same(&b, &d, &["--add-host", "db.example:10.1.2.3", "--add-host", "v6:fe80::1"], "grep -E 'db|v6' /etc/hosts");
    assert_eq!(hosts, "10.1.2.3\tdb.example\nfe80::1\tv6\n");
    let dom = same(&b, &d, &["--hostname", "web", "--domainname", "example.org"], "cat /proc/sys/kernel/domainname; hostname");
    assert_eq!(dom, "example.org\nweb\n");
    let sorted = |s: String| {
        let mut l: Vec<String> = s.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(str::to_string).collect();
        l.sort();
        l
    };
    let dns = ["--dns", "9.9.9.9", "--dns", "1.1.1.1", "--dns-search", "corp.example", "--dns-option", "ndots:3"];
    let (ours, theirs) = both(&b, &d, &dns, "cat /etc/resolv.conf");
    assert_eq!(sorted(ours.clone()), sorted(theirs), "resolv.conf: {ours}");
    assert!(ours.contains("nameserver 9.9.9.9\nnameserver 1.1.1.1\n"), "{ours}");

    // --init: tini as PID 1, the command its child; it reaps an orphaned zombie.
    let init = same(&b, &d, &["--init"], "cat /proc/1/cmdline | tr '\\0' ' '; echo");
    assert_eq!(init, "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo \n");
    let reaped = "sh -c 'sleep 0.2 & exec true' ; sleep 1; ps -o stat,comm | grep -c '^Z' || true";
    assert_eq!(same(&b, &d, &["--init"], reaped), "0\n", "a zombie left under --init");

    // --tmpfs and --mount type=tmpfs: mount options, size and mode as Docker's.
    let t = same(&b, &d, &["--tmpfs", "/scratch:size=1m,mode=1770"], "grep ' /scratch ' /proc/mounts; stat -c %a /scratch");
    assert!(t.contains("size=1024k") && t.ends_with("1770\n"), "{t}");
    same(&b, &d, &["--tmpfs", "/run/x"], "grep ' /run/x ' /proc/mounts; stat -c %a /run/x; touch /run/x/f && echo written");
    let mt = same(&b, &d, &["--mount", "type=tmpfs,destination=/t,tmpfs-size=2097152,tmpfs-mode=0700"], "grep ' /t ' /proc/mounts; stat -c %a /t");
    assert!(mt.contains("size=2048k") && mt.ends_with("700\n"), "{mt}");
    // --shm-size
    assert_eq!(same(&b, &d, &["--shm-size", "8m"], "df -k /dev/shm | tail -1 | awk '{print $2}'"), "8192\n");

    // --mount type=bind (read-only, a missing source refused), type=volume (+ subpath).
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("f"), "from the host\n").expect("write");
    let bind = format!("type=bind,source={},target=/b,readonly", src.path().display());
    let r = same(&b, &d, &["--mount", &bind], "cat /b/f; touch /b/g 2>/dev/null || echo read-only");
    assert_eq!(r, "from the host\nread-only\n");
    let missing = ["run", "--rm", "--mount", "type=bind,source=/no/such/dir,target=/b", "busybox", "true"];
    let (ours, theirs) = (b.docker(&missing), d.docker(&missing));
    assert!(!ours.status.success() && !theirs.status.success());
    assert!(String::from_utf8_lossy(&ours.stderr).contains("bind source path does not exist: /no/such/dir"), "{}", String::from_utf8_lossy(&ours.stderr));
    same(&b, &d, &["--mount", "type=volume,source=fvol,target=/data"], "mkdir -p /data/sub && echo kept > /data/sub/f");
    assert_eq!(same(&b, &d, &["--mount", "type=volume,source=fvol,target=/data,readonly"], "cat /data/sub/f; touch /data/x 2>/dev/null || echo read-only"), "kept\nread-only\n");

    // --group-add, --ulimit, --sysctl, --oom-score-adj, ping_group_range.
    assert_eq!(same(&b, &d, &["-u", "1000:1000", "--group-add", "123", "--group-add", "456"], "id -G"), "1000 123 456\n");
    assert_eq!(same(&b, &d, &["--ulimit", "nofile=512:1024"], "ulimit -n; ulimit -Hn"), "512\n1024\n");
    let sys = ["--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456789"];
    assert_eq!(same(&b, &d, &sys, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"), "1\n123456789\n");
    assert_eq!(same(&b, &d, &["--oom-score-adj", "200"], "cat /proc/self/oom_score_adj"), "200\n");
    same(&b, &d, &[], "cat /proc/sys/net/ipv4/ping_group_range");
    // Any user may bind ports below 1024 in a network of its own (Docker's default).
    assert_eq!(same(&b, &d, &[], "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"), "0\n");
    let sys = ["--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"];
    assert_eq!(same(&b, &d, &sys, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"), "1024\n");
}

/// What Berth does not implement fails `create` with the flag's name, through the CLI
/// and through the API (a field the CLI would never send).
#[test]
fn unimplemented_settings_are_refused_by_name() {
    let b = Berth::start();
    for (flags, want) in [
        (&["--cpu-rt-runtime", "1000"][..], "--cpu-rt-runtime is not supported by Berth"),
        (&["--memory-swappiness", "10"][..], "--memory-swappiness is not supported by Berth"),
        (&["--mount", "type=bind,source=/tmp,target=/x,bind-propagation=rshared"][..], "bind-propagation=rshared is not supported by Berth"),
        (&["--add-host", "gw:host-gateway"][..], "host-gateway is not supported by Berth"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let (_, err) = b.fails(&args);
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    // Through the API: a set field Berth has no member for, and a bad sysctl.
    for (body, want) in [
        (r#"{"Image":"busybox","HostConfig":{"SomethingNew":{"On":true}}}"#, "SomethingNew is not supported by Berth"),
        (r#"{"Image":"busybox","MacAddress":"02:42:ac:11:00:09"}"#, "--mac-address is not supported by Berth"),
        (r#"{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.hostname":"x"}}}"#, "sysctl 'kernel.hostname=x' is not allowed"),
        (r#"{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"bogus","Soft":1,"Hard":1}]}}"#, "invalid ulimit type: bogus"),
    ] {
        let o = Command::new("curl")
            .args(["-s", "--unix-socket"])
            .arg(&b.sock)
            .args(["-H", "Content-Type: application/json", "-d", body, "http://d/v1.47/containers/create"])
            .output()
            .expect("curl");
        let text = out(&o);
        assert!(text.contains(want), "{body}: {text}");
    }
    // Zero values, as the CLI sends for flags not given, pass: `docker run` works.
    assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}
