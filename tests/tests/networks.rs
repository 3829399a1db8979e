//! Networks with the real CLI: the default bridge and `--link`, user-defined networks
//! with names through the embedded DNS, isolation between networks and namespaces,
//! connect/disconnect, Docker's errors, and a restart of the server.

use berth_tests::lab::Lab;
use berth_tests::Berth;

/// A "db" stand-in: answers each connection on 5432 with one line.
fn db(b: &Berth, name: &str, extra: &[&str], reply: &str) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "nc", "-ll", "-p", "5432", "-e", "echo", reply]);
    b.ok(&args);
}

#[test]
fn link_on_the_default_bridge() {
    let b = Berth::start();
    db(
        &b,
        "db",
        &["--expose", "5432", "-e", "POSTGRES_PASSWORD=secret"],
        "db-ok",
    );
    let ip = b.inspect("db", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("172.17.0."), "{ip}");
    assert_eq!(
        b.inspect("db", "{{.NetworkSettings.Networks.bridge.IPAddress}}"),
        ip
    );
    assert_eq!(
        b.inspect("db", "{{.NetworkSettings.Gateway}}"),
        "172.17.0.1"
    );
    // The seed's app: the web container reaches the db by its link alias and name.
    let out = b.ok(&[
        "run",
        "--rm",
        "--link",
        "db:database",
        "busybox",
        "sh",
        "-c",
        "grep database /etc/hosts; nc database 5432; nc db 5432",
    ]);
    assert!(out.contains(&format!("{ip}\tdatabase db")), "{out}");
    assert_eq!(out.matches("db-ok").count(), 2, "{out}");
    // Docker's link variables, as the seed's wordpress reads its database's.
    let env = b.ok(&[
        "run",
        "--rm",
        "--name",
        "web",
        "--link",
        "db:database",
        "busybox",
        "env",
    ]);
    for v in [
        "DATABASE_NAME=/web/database".to_string(),
        format!("DATABASE_PORT=tcp://{ip}:5432"),
        format!("DATABASE_PORT_5432_TCP_ADDR={ip}"),
        "DATABASE_PORT_5432_TCP_PORT=5432".to_string(),
        "DATABASE_ENV_POSTGRES_PASSWORD=secret".to_string(),
    ] {
        assert!(env.lines().any(|l| l == v), "{v} missing from:\n{env}");
    }
    // Its own address is in its /etc/hosts, and eth0 has it.
    let out = b.ok(&[
        "run",
        "--rm",
        "--hostname",
        "me",
        "busybox",
        "sh",
        "-c",
        "grep me /etc/hosts; ip -o -4 addr show eth0",
    ]);
    assert!(out.contains("172.17.0.") && out.contains("eth0"), "{out}");
    // No DNS on the default bridge: names do not resolve without a link.
    b.fails(&["run", "--rm", "busybox", "nc", "-w", "2", "db", "5432"]);
    // Docker's errors.
    let (_, err) = b.fails(&["run", "--rm", "--link", "missing:alias", "busybox", "true"]);
    assert!(err.contains("Could not get container for missing"), "{err}");
    b.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let (_, err) = b.fails(&["run", "--rm", "--link", "stopped:s", "busybox", "true"]);
    assert!(
        err.contains("Cannot link to a non running container: /stopped AS"),
        "{err}"
    );
    let (_, err) = b.fails(&["run", "--rm", "--ip", "172.17.0.50", "busybox", "true"]);
    assert!(
        err.contains("user specified IP address is supported on user defined networks only"),
        "{err}"
    );
    // `--network none`: loopback only.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(out.contains("lo:") && !out.contains("eth0"), "{out}");
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let b = Berth::start();
    b.ok(&["network", "create", "appnet"]);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        "10.30.0.0/24",
        "--gateway",
        "10.30.0.1",
        "other",
    ]);
    let ls = b.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for n in [
        "appnet bridge",
        "other bridge",
        "bridge bridge",
        "host host",
        "none null",
    ] {
        assert!(ls.contains(n), "{ls}");
    }
    db(
        &b,
        "appdb",
        &["--network", "appnet", "--network-alias", "pg"],
        "appdb-ok",
    );
    // By name, by alias and by name.network, through the embedded DNS.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nc appdb 5432; nc pg 5432; nc appdb.appnet 5432",
    ]);
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    assert_eq!(out.matches("appdb-ok").count(), 3, "{out}");
    let looked_up = b.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "nslookup",
        "appdb",
    ]);
    let ip = b.inspect("appdb", "{{.NetworkSettings.Networks.appnet.IPAddress}}");
    assert!(looked_up.contains(&ip), "{looked_up}");
    // Inspect: the subnet, and who is on it.
    let inspect = b.ok(&["network", "inspect", "appnet", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}"]);
    assert!(
        inspect.contains("appdb") && inspect.contains(&format!("{ip}/")),
        "{inspect}"
    );
    // A fixed address within the subnet, and one outside it.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        "other",
        "--ip",
        "10.30.0.9",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        b.inspect("fixed", "{{.NetworkSettings.Networks.other.IPAddress}}"),
        "10.30.0.9"
    );
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "other",
        "--ip",
        "10.31.0.9",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("does not belong to any of this network's subnets"),
        "{err}"
    );
    // Isolation: from another network (or the default bridge) neither the name nor the
    // address reaches it.
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "nc",
        "-w",
        "2",
        "appdb",
        "5432",
    ]);
    assert!(err.contains("bad address"), "{err}");
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "sh",
        "-c",
        &format!("nc -w 2 {ip} 5432; echo rc=$?"),
    ]);
    assert!(out.contains("rc=1") && !out.contains("appdb-ok"), "{out}");
    let out = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("nc -w 2 {ip} 5432; echo rc=$?"),
    ]);
    assert!(out.contains("rc=1") && !out.contains("appdb-ok"), "{out}");
    // connect: now it resolves from "other"; disconnect: the name is gone again.
    b.ok(&["network", "connect", "other", "appdb"]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "nc",
        "appdb",
        "5432",
    ]);
    assert!(out.contains("appdb-ok"), "{out}");
    let (_, err) = b.fails(&["network", "connect", "other", "appdb"]);
    assert!(err.contains("already exists in network other"), "{err}");
    // Started on the default bridge (no embedded DNS there, so its shim starts the DNS
    // alongside the start rather than before it) and connected later: it resolves.
    b.ok(&["run", "-d", "--name", "late", "busybox", "sleep", "300"]);
    b.ok(&["network", "connect", "appnet", "late"]);
    let out = b.ok(&["exec", "late", "nc", "appdb", "5432"]);
    assert!(out.contains("appdb-ok"), "{out}");
    b.ok(&["rm", "-f", "late"]);
    b.ok(&["network", "disconnect", "appnet", "appdb"]);
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "nc",
        "-w",
        "2",
        "appdb",
        "5432",
    ]);
    assert!(err.contains("bad address"), "{err}");
    // Docker's errors.
    let (_, err) = b.fails(&["network", "create", "appnet"]);
    assert!(
        err.contains("network with name appnet already exists"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "create", "--subnet", "10.30.0.128/25", "clash"]);
    assert!(
        err.contains("Pool overlaps with other one on this address space"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "rm", "other"]);
    assert!(err.contains("has active endpoints"), "{err}");
    let (_, err) = b.fails(&["network", "rm", "bridge"]);
    assert!(
        err.contains("bridge is a pre-defined network and cannot be removed"),
        "{err}"
    );
    let (_, err) = b.fails(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert!(err.contains("network nope not found"), "{err}");
    let (_, err) = b.fails(&["network", "inspect", "nope"]);
    assert!(err.contains("network nope not found"), "{err}");
    // prune removes only unused networks (appnet has no one left on it).
    b.ok(&["network", "create", "unused"]);
    let out = b.ok(&["network", "prune", "-f"]);
    assert!(
        out.contains("unused") && out.contains("appnet") && !out.contains("other"),
        "{out}"
    );
    b.ok(&["rm", "-f", "appdb", "fixed"]);
    b.ok(&["network", "rm", "other"]);
}

#[test]
fn ports_publish_from_any_network_and_networks_survive_a_restart() {
    let mut b = Berth::start();
    b.ok(&["network", "create", "webnet"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "webnet",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "mkdir /w; echo page > /w/index.html; httpd -f -p 80 -h /w",
    ]);
    db(&b, "db", &["--network", "webnet"], "db-ok");
    let port = b.ok(&["port", "web", "80"]);
    let fetch = |port: &str| {
        let o = std::process::Command::new("curl")
            .args(["-s", &format!("http://{}/", port.trim())])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(fetch(&port).trim(), "page");
    let ip = b.inspect("db", "{{.NetworkSettings.Networks.webnet.IPAddress}}");
    b.kill_server();
    b.start_server();
    // Running containers keep their addresses, names and ports.
    assert_eq!(fetch(&port).trim(), "page");
    assert_eq!(
        b.inspect("db", "{{.NetworkSettings.Networks.webnet.IPAddress}}"),
        ip
    );
    let out = b.ok(&["exec", "web", "nc", "db", "5432"]);
    assert!(out.contains("db-ok"), "{out}");
    // A new container after the restart joins the same network.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "webnet",
        "busybox",
        "nc",
        "db",
        "5432",
    ]);
    assert!(out.contains("db-ok"), "{out}");
}

#[test]
fn lab_sessions_have_networks_of_their_own() {
    let lab = Lab::start();
    let a = lab.create_session();
    let bs = lab.create_session();
    let run = |id: &str, args: &[&str]| {
        let o = lab.session_docker(id, args);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // The same network name and subnet in two sessions, each its own.
    for (id, word) in [(&a, "alpha"), (&bs, "beta")] {
        assert!(run(id, &["network", "create", "appnet"]).0);
        let (ok, out) = run(
            id,
            &[
                "run",
                "-d",
                "--name",
                "db",
                "--network",
                "appnet",
                "busybox",
                "nc",
                "-ll",
                "-p",
                "5432",
                "-e",
                "echo",
                word,
            ],
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = run(
        &a,
        &[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "nc",
            "db",
            "5432",
        ],
    );
    assert!(
        ok && out.contains("alpha") && !out.contains("beta"),
        "{out}"
    );
    let (ok, out) = run(
        &bs,
        &[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "nc",
            "db",
            "5432",
        ],
    );
    assert!(ok && out.contains("beta"), "{out}");
    // A session cannot ask for the host's network.
    let (ok, out) = run(&a, &["run", "--rm", "--network", "host", "busybox", "true"]);
    assert!(
        !ok && out.contains("--network host is not allowed in a lab session"),
        "{out}"
    );
}

/// A host "outside" on a veth of its own (a network namespace made for the test),
/// removed again when dropped.
struct Outside {
    ns: String,
    link: String,
    server: Option<std::process::Child>,
}

impl Outside {
    fn start(tag: u32, port: u16) -> Outside {
        let ns = format!("berth-out-{tag}");
        let link = format!("bto{tag}");
        let sh = |cmd: &str| {
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .expect("sh");
            assert!(st.success(), "{cmd} failed (needs iproute2)");
        };
        let mut out = Outside {
            ns: ns.clone(),
            link: link.clone(),
            server: None,
        };
        sh(&format!("ip netns add {ns} && ip link add {link} type veth peer name {link}p && ip link set {link}p netns {ns}"));
        sh(&format!(
            "ip addr add 10.250.{}.1/24 dev {link} && ip link set {link} up",
            tag % 250
        ));
        sh(&format!("ip -n {ns} addr add 10.250.{}.2/24 dev {link}p && ip -n {ns} link set {link}p up && ip -n {ns} link set lo up", tag % 250));
        let bin = berth_tests::static_fixture("peerecho");
        out.server = Some(
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(bin)
                .arg(port.to_string())
                .spawn()
                .expect("start peerecho"),
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        out
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
    }
}

#[test]
fn outbound_traffic_is_masqueraded_through_the_host() {
    let b = Berth::start();
    let tag = std::process::id() % 200 + 20;
    let _outside = Outside::start(tag, 7000);
    let host_side = format!("10.250.{}.1", tag % 250);
    // From the default bridge and from a user network: the outside host sees the host.
    b.ok(&["network", "create", "outnet"]);
    for net in ["bridge", "outnet"] {
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "nc",
            "-w",
            "3",
            &format!("10.250.{}.2", tag % 250),
            "7000",
        ]);
        assert_eq!(out.trim(), format!("peer={host_side}"), "from {net}");
    }
    // A lab session stays offline.
    drop(b);
    let lab = berth_tests::lab::Lab::start();
    let id = lab.create_session();
    let o = lab.session_docker(
        &id,
        &[
            "run",
            "--rm",
            "busybox",
            "nc",
            "-w",
            "2",
            &format!("10.250.{}.2", tag % 250),
            "7000",
        ],
    );
    assert!(
        !o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("peer="),
        "a lab container reached outside"
    );
}

#[test]
fn mac_addresses_names_several_networks_and_ipv6_refusals() {
    let b = Berth::start();
    // --mac-address on the default bridge and on a user network (the CLI sends it per
    // endpoint): the interface has it, inspect shows it, a restart keeps it.
    let mac = b.ok(&[
        "run",
        "--rm",
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    assert_eq!(mac, "02:42:ac:11:00:99");
    b.ok(&["network", "create", "my net"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--network",
        "my net",
        "--mac-address",
        "02-42-AC-11-00-98",
        "busybox",
        "sleep",
        "300",
    ]);
    let shown =
        "{{.Config.MacAddress}} {{(index .NetworkSettings.Networks \"my net\").MacAddress}}";
    assert_eq!(
        b.inspect("m1", shown),
        "02-42-AC-11-00-98 02:42:ac:11:00:98"
    );
    b.ok(&["restart", "-t", "0", "m1"]);
    let link = b.ok(&["exec", "m1", "ip", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:ac:11:00:98"), "{link}");
    // A name with a space resolves on it like any other.
    let found = b.ok(&[
        "run",
        "--rm",
        "--network",
        "my net",
        "busybox",
        "nslookup",
        "m1",
    ]);
    let ip = b.inspect(
        "m1",
        "{{(index .NetworkSettings.Networks \"my net\").IPAddress}}",
    );
    assert!(found.contains(&ip), "{found}");
    // Per endpoint on connect (API 1.44+ only; the CLI has no flag for it).
    b.ok(&["network", "create", "second"]);
    let body = r#"{"Container":"m1","EndpointConfig":{"MacAddress":"02:42:ac:11:00:55","Aliases":null,"IPAMConfig":null,"Links":null,"DriverOpts":null}}"#;
    let o = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "--unix-socket",
        ])
        .arg(&b.sock)
        .arg("http://d/v1.50/networks/second/connect")
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    assert_eq!(
        b.ok(&["exec", "m1", "cat", "/sys/class/net/eth1/address"]),
        "02:42:ac:11:00:55"
    );
    // Several networks at create (API 1.44+): one interface each, the first one's
    // gateway the default route, the name resolving on each.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "two",
        "--network",
        "my net",
        "--network",
        "second",
        "busybox",
        "sleep",
        "300",
    ]);
    let addrs = b.ok(&[
        "exec",
        "two",
        "sh",
        "-c",
        "ip -o -4 addr | awk '{print $2}'; ip route | grep default",
    ]);
    let gw = b.inspect(
        "two",
        "{{(index .NetworkSettings.Networks \"my net\").Gateway}}",
    );
    assert_eq!(addrs, format!("lo\neth0\neth1\ndefault via {gw} dev eth0"));
    let two = b.inspect("two", "{{.NetworkSettings.Networks.second.IPAddress}}");
    let found = b.ok(&[
        "run",
        "--rm",
        "--network",
        "second",
        "busybox",
        "nslookup",
        "two",
    ]);
    assert!(found.contains(&two), "{found}");
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "second",
        "--network",
        "nope",
        "busybox",
        "true",
    ]);
    assert!(err.contains("network nope not found"), "{err}");
    // Refusals, in Docker's words where Docker has them.
    let (_, err) = b.fails(&["run", "--rm", "--mac-address", "zz", "busybox", "true"]);
    assert!(err.contains("zz is not a valid mac address"), "{err}");
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--mac-address",
        "01:00:5e:00:00:01",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("invalid MAC address 01:00:5e:00:00:01: a multicast address"),
        "{err}"
    );
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("conflicting options: mac-address and the network mode"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "create", "--ipv6", "--subnet", "fd00::/64", "v6"]);
    assert!(
        err.contains("IPv6 networks are not supported by Berth"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "create", "--subnet", "fd00::/64", "v6"]);
    assert!(
        err.contains("IPv6 networks are not supported by Berth (fd00::/64 is IPv6)"),
        "{err}"
    );
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--network",
        "second",
        "--ip6",
        "fd00::5",
        "busybox",
        "true",
    ]);
    assert!(err.contains("--ip6 is not supported by Berth"), "{err}");
    let (_, err) = b.fails(&[
        "network",
        "create",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "mtu",
    ]);
    assert!(
        err.contains("network option com.docker.network.driver.mtu=1400 is not supported by Berth"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "create", "--ip-range", "10.40.1.0/24", "norange"]);
    assert!(
        err.contains("every ip-range or gateway must have a corresponding subnet"),
        "{err}"
    );
    let (_, err) = b.fails(&["network", "create", "bridge"]);
    assert!(
        err.contains("operation is not permitted on predefined bridge network"),
        "{err}"
    );
    // A slash in a name: the CLI sends it unescaped in the path, as dockerd accepts.
    b.ok(&["network", "create", "team/a.b"]);
    b.ok(&["network", "connect", "team/a.b", "m1"]);
    assert_eq!(
        b.ok(&[
            "network",
            "inspect",
            "-f",
            "{{len .Containers}}",
            "team/a.b"
        ]),
        "1"
    );
    b.ok(&["network", "disconnect", "team/a.b", "m1"]);
    b.ok(&["network", "rm", "team/a.b"]);
    b.ok(&["rm", "-f", "m1", "two"]);
}

/// `network ls --filter dangling=…`: the user's networks no running container is on
/// (never the predefined ones); `scope=local` is every Berth network; a bad value is
/// refused.
#[test]
fn network_ls_filters_dangling_and_scope() {
    let b = Berth::start();
    b.ok(&["network", "create", "used"]);
    b.ok(&["network", "create", "unused"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "on-used",
        "--network",
        "used",
        "busybox",
        "sleep",
        "300",
    ]);
    let names = |filter: &str| {
        let mut v: Vec<String> = b
            .ok(&["network", "ls", "--filter", filter, "--format", "{{.Name}}"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v.join(" ")
    };
    assert_eq!(names("dangling=true"), "unused");
    assert_eq!(names("dangling=false"), "bridge host none used");
    assert_eq!(names("scope=local"), "bridge host none unused used");
    assert_eq!(names("scope=swarm"), "");
    b.ok(&["stop", "-t", "0", "on-used"]);
    assert_eq!(
        names("dangling=true"),
        "unused used",
        "a stopped container keeps no network busy"
    );
    let (_, err) = b.fails(&["network", "ls", "--filter", "dangling=maybe"]);
    assert!(err.contains("invalid filter 'dangling=maybe'"), "{err}");
}
