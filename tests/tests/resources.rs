//! The cgroup resource flags of `docker run` (`--memory-swap`, `--memory-reservation`,
//! `--oom-kill-disable`, `--memory-swappiness`, `--cpu-shares`, `--cpu-period`,
//! `--cpu-quota`, `--cpuset-*`, `--blkio-weight*`, `--device-*-bps/iops`): the same
//! flags run on Berth and on Debian's dockerd, and compared where they land (the
//! container's cgroup files on the host, found through /proc/PID/cgroup), what
//! `inspect` shows, and the errors and warnings for what cannot be applied.

use std::path::{Path, PathBuf};
use std::process::Output;

use berth_tests::dockerd::Dockerd;
use berth_tests::lab::Lab;
use berth_tests::{cgroup_v2, Berth};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// The host directory of `pid`'s cgroup for `controller` (v2: the one directory).
fn cgroup_dir(pid: &str, controller: &str) -> PathBuf {
    let lines =
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for l in lines.lines() {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let hit = if cgroup_v2() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        if hit {
            let base = if cgroup_v2() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                Path::new("/sys/fs/cgroup").join(ctrls)
            };
            return base.join(path.trim_start_matches('/'));
        }
    }
    panic!("{pid} has no {controller} cgroup: {lines}");
}

/// The files `docker run FLAGS` leaves in the container's cgroup, and the inspect
/// fields, on one engine; `docker` runs the CLI there.
fn applied(
    docker: &dyn Fn(&[&str]) -> Output,
    flags: &[&str],
    files: &[(&str, &str)],
) -> (Vec<String>, String) {
    let mut args = vec!["run", "-d", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sleep", "60"]);
    let (out, err) = text(&docker(&args));
    let id = out.trim().to_string();
    assert!(!id.is_empty(), "run {flags:?}: {err}");
    let (pid, _) = text(&docker(&["inspect", "-f", "{{.State.Pid}}", &id]));
    let shown: Vec<String> = files
        .iter()
        .map(|(ctrl, file)| {
            let value = std::fs::read_to_string(cgroup_dir(pid.trim(), ctrl).join(file))
                .unwrap_or_else(|e| format!("({file}: {e})"));
            // memory.oom_control: its first line is the setting.
            format!("{file}={}", value.lines().next().unwrap_or("").trim())
        })
        .collect();
    let fields = "{{json .HostConfig.Memory}} swap={{json .HostConfig.MemorySwap}} res={{json .HostConfig.MemoryReservation}} \
                  oom={{json .HostConfig.OomKillDisable}} swappiness={{json .HostConfig.MemorySwappiness}} shares={{json .HostConfig.CpuShares}} \
                  period={{json .HostConfig.CpuPeriod}} quota={{json .HostConfig.CpuQuota}} cpuset={{json .HostConfig.CpusetCpus}}/{{json .HostConfig.CpusetMems}} \
                  weight={{json .HostConfig.BlkioWeight}} {{json .HostConfig.BlkioWeightDevice}} {{json .HostConfig.BlkioDeviceReadBps}} \
                  {{json .HostConfig.BlkioDeviceWriteBps}} {{json .HostConfig.BlkioDeviceReadIOps}} {{json .HostConfig.BlkioDeviceWriteIOps}}";
    let (inspect, _) = text(&docker(&["inspect", "-f", fields, &id]));
    docker(&["rm", "-f", &id]);
    (shown, inspect.trim().to_string())
}

/// The highest CPU the host has online, so `--cpuset-cpus` names one a container
/// would not be limited to anyway on a host with more than one.
fn last_cpu() -> String {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs");
    online
        .trim()
        .rsplit([',', '-'])
        .next()
        .expect("a CPU")
        .to_string()
}

/// A block device of the host (with its node in /dev), for the throttle flags.
fn block_device() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort_by_key(|n| {
        (
            n.starts_with("loop") || n.starts_with("zram") || n.starts_with("ram"),
            n.clone(),
        )
    });
    let name = names
        .into_iter()
        .find(|n| Path::new("/dev").join(n).exists())
        .expect("this host has no block device in /dev to throttle");
    format!("/dev/{name}")
}

#[test]
fn resource_flags_write_the_cgroup_files_dockerd_writes() {
    let b = Berth::start();
    // On cgroup v2, dockerd's cgroupfs driver, as Berth's cgroups are plain directories.
    let d = if cgroup_v2() {
        Dockerd::start(&["--exec-opt", "native.cgroupdriver=cgroupfs"])
    } else {
        Dockerd::start(&[])
    };
    d.load_from(&b, "busybox");
    let dev = block_device();
    let cpu = last_cpu();
    let throttle = |flag: &str, v: &str| format!("{flag}={dev}:{v}");
    let rbps = throttle("--device-read-bps", "1mb");
    let wbps = throttle("--device-write-bps", "2mb");
    let riops = throttle("--device-read-iops", "100");
    let wiops = throttle("--device-write-iops", "200");
    let (memory, swap, soft, oom, swappiness) = if cgroup_v2() {
        (
            ("memory", "memory.max"),
            ("memory", "memory.swap.max"),
            ("memory", "memory.low"),
            ("memory", "memory.max"),
            ("memory", "memory.max"),
        )
    } else {
        (
            ("memory", "memory.limit_in_bytes"),
            ("memory", "memory.memsw.limit_in_bytes"),
            ("memory", "memory.soft_limit_in_bytes"),
            ("memory", "memory.oom_control"),
            ("memory", "memory.swappiness"),
        )
    };
    let (shares, period, quota) = if cgroup_v2() {
        (
            ("cpu", "cpu.weight"),
            ("cpu", "cpu.max"),
            ("cpu", "cpu.max"),
        )
    } else {
        (
            ("cpu", "cpu.shares"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.cfs_quota_us"),
        )
    };
    let blk = |v1: &'static str| {
        if cgroup_v2() {
            ("io", "io.max")
        } else {
            ("blkio", v1)
        }
    };
    // (flags, cgroup files as (controller, file))
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![
                memory,
                swap,
                soft,
                oom,
                swappiness,
                shares,
                period,
                quota,
                ("cpuset", "cpuset.cpus"),
                ("cpuset", "cpuset.mems"),
            ],
        ),
        (vec!["-m", "64m"], vec![memory, swap, soft]),
        (
            vec![
                "-m",
                "64m",
                "--memory-swap",
                "-1",
                "--memory-reservation",
                "32m",
                "--oom-kill-disable",
                "--memory-swappiness",
                "10",
            ],
            vec![memory, swap, soft, oom, swappiness],
        ),
        (
            vec!["-m", "64m", "--memory-swap", "100m"],
            vec![memory, swap],
        ),
        (
            vec!["--memory-reservation", "32m"],
            vec![memory, swap, soft],
        ),
        (
            vec![
                "--cpu-shares",
                "512",
                "--cpuset-cpus",
                &cpu,
                "--cpuset-mems",
                "0",
            ],
            vec![shares, ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems")],
        ),
        (
            vec!["--cpu-period", "50000", "--cpu-quota", "25000"],
            vec![period, quota],
        ),
        (vec!["--cpu-period", "50000"], vec![period, quota]),
        (vec!["--cpu-quota", "30000"], vec![period, quota]),
        (vec!["--cpu-quota", "-1"], vec![period, quota]),
        (vec!["--cpus", "0.5"], vec![period, quota]),
        (
            vec![&rbps, &wbps, &riops, &wiops],
            vec![
                blk("blkio.throttle.read_bps_device"),
                blk("blkio.throttle.write_bps_device"),
                blk("blkio.throttle.read_iops_device"),
                blk("blkio.throttle.write_iops_device"),
            ],
        ),
    ];
    let ours = |args: &[&str]| b.docker(args);
    let theirs = |args: &[&str]| d.docker(args);
    for (flags, files) in &cases {
        let (our_files, our_inspect) = applied(&ours, flags, files);
        let (their_files, their_inspect) = applied(&theirs, flags, files);
        assert_eq!(
            our_files, their_files,
            "{flags:?}: cgroup files, Berth (left) and dockerd (right)"
        );
        assert_eq!(
            our_inspect, their_inspect,
            "{flags:?}: inspect, Berth (left) and dockerd (right)"
        );
    }
    // What was asked is what is there (not only the same on both: both at defaults
    // would compare equal too).
    let (f, i) = applied(
        &ours,
        &[
            "-m",
            "64m",
            "--memory-reservation",
            "32m",
            "--oom-kill-disable",
            "--memory-swappiness",
            "10",
        ],
        &[soft, swappiness],
    );
    if !cgroup_v2() {
        assert_eq!(
            f,
            [
                "memory.soft_limit_in_bytes=33554432",
                "memory.swappiness=10"
            ]
        );
    }
    let oom = if cgroup_v2() { "null" } else { "true" };
    assert!(
        i.starts_with(&format!("67108864 swap=134217728 res=33554432 oom={oom}")),
        "{i}"
    );
    let (f, _) = applied(&ours, &[&rbps], &[blk("blkio.throttle.read_bps_device")]);
    assert!(
        f[0].ends_with(" 1048576") || f[0].contains("rbps=1048576"),
        "{f:?}"
    );

    // Block I/O weights: written where the host's scheduler has them, else discarded
    // with dockerd's warning; either way as dockerd does.
    for flags in [
        &["--blkio-weight", "300"][..],
        &["--blkio-weight-device", &format!("{dev}:300")],
    ] {
        let mut args = vec!["create", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let ((our_id, our_err), (their_id, their_err)) =
            (text(&b.docker(&args)), text(&d.docker(&args)));
        assert!(!our_id.trim().is_empty(), "{flags:?}: {our_err}");
        assert_eq!(our_err, their_err, "{flags:?}: warnings");
        let f = "{{json .HostConfig.BlkioWeight}} {{json .HostConfig.BlkioWeightDevice}}";
        assert_eq!(
            b.ok(&["inspect", "-f", f, our_id.trim()]).trim(),
            d.ok(&["inspect", "-f", f, their_id.trim()]).trim(),
            "{flags:?}"
        );
        b.ok(&["rm", our_id.trim()]);
        d.ok(&["rm", their_id.trim()]);
    }

    // `docker stats` still reads a container with all of them.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "limited",
        "--network",
        "none",
        "-m",
        "64m",
        "--memory-swap",
        "96m",
        "--cpu-shares",
        "256",
        "--cpu-quota",
        "20000",
        "busybox",
        "sleep",
        "60",
    ]);
    let stats = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
        "limited",
    ]);
    assert!(
        stats.starts_with("limited ") && stats.contains("/ 64MiB"),
        "{stats}"
    );
    b.ok(&["rm", "-f", "limited"]);
}

#[test]
fn bad_resource_values_fail_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let daemon_error = |err: &str| {
        err.lines()
            .find(|l| l.contains("Error response from daemon"))
            .unwrap_or(err)
            .to_string()
    };
    // Refused at create, with dockerd's messages.
    for flags in [
        &["--memory-swap", "100m"][..],
        &["-m", "64m", "--memory-swap", "32m"],
        &["-m", "32m", "--memory-reservation", "64m"],
        &["--memory-reservation", "1m"],
        &["--cpuset-cpus", "0-255"],
        &["--cpuset-cpus", "1-0"],
        &["--cpuset-cpus", "abc"],
        &["--cpuset-mems", "9"],
        &["--cpu-period", "500"],
        &["--cpu-quota", "500"],
        &["--cpus", "1", "--cpu-period", "50000"],
        &["--cpus", "1", "--cpu-quota", "50000"],
    ] {
        let mut args = vec!["create", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let (ours, theirs) = (b.docker(&args), d.docker(&args));
        // dockerd is the judge: without swap accounting (on v2, a daemon in the root
        // cgroup) it drops --memory-swap with a warning, and a swap below the memory
        // is then no error.
        let swap_dropped = flags.contains(&"--memory-swap")
            && flags.contains(&"-m")
            && text(&theirs).1.contains("does not support swap limit");
        if swap_dropped {
            assert!(
                ours.status.success() && theirs.status.success(),
                "{flags:?}: {ours:?}"
            );
            assert_eq!(text(&ours).1, text(&theirs).1, "{flags:?}: the warning");
            b.ok(&["rm", text(&ours).0.trim()]);
            d.ok(&["rm", text(&theirs).0.trim()]);
            continue;
        }
        assert!(
            !ours.status.success() && !theirs.status.success(),
            "{flags:?} should fail on both"
        );
        assert_eq!(
            daemon_error(&text(&ours).1),
            daemon_error(&text(&theirs).1),
            "{flags:?}"
        );
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // Refused when the container starts (created first, as on dockerd). On v2 a CPU
    // weight of 1 is what shares of 1 become (runc's conversion), no error.
    let mut refused = vec![(
        &["--device-read-bps", "/dev/nope:1mb"][..],
        "stat /dev/nope: no such file or directory",
    )];
    if !cgroup_v2() {
        refused.push((
            &["--cpu-shares", "1"],
            "the minimum allowed cpu-shares is 2",
        ));
    }
    for (flags, want) in refused {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        for (engine, o) in [("berth", b.docker(&args)), ("dockerd", d.docker(&args))] {
            assert!(!o.status.success(), "{engine} {flags:?}");
            assert!(
                text(&o).1.contains(want),
                "{engine} {flags:?}: {}",
                text(&o).1
            );
        }
    }
    // A warning, as dockerd gives it, for an OOM killer off without a memory limit.
    let args = [
        "create",
        "--network",
        "none",
        "--oom-kill-disable",
        "busybox",
        "true",
    ];
    let ((ours, our_err), (theirs, their_err)) = (text(&b.docker(&args)), text(&d.docker(&args)));
    // v2 has no OOM-killer switch: dockerd drops it with another warning.
    let want = if cgroup_v2() {
        "WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded."
    } else {
        "WARNING: OOM killer is disabled for the container, but no memory limit is set"
    };
    assert!(our_err.contains(want), "{our_err}");
    assert_eq!(our_err, their_err);
    b.ok(&["rm", ours.trim()]);
    d.ok(&["rm", theirs.trim()]);
}

#[test]
fn a_lab_session_keeps_resource_flags_in_its_envelope() {
    let lab = Lab::start_with(&["--lab-memory", "128m"]);
    let id = lab.create_session();
    let run = |flags: &[&str]| {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sleep", "60"]);
        let o = lab.session_docker(&id, &args);
        (o.status.success(), text(&o))
    };
    for (flags, want) in [
        (
            &["--oom-kill-disable"][..],
            "--oom-kill-disable is not allowed in a lab session",
        ),
        (
            &["--memory-swap", "-1"],
            "--memory-swap -1 (unlimited swap) is not allowed in a lab session",
        ),
        (
            &["-m", "64m", "--memory-swap", "1g"],
            "--memory-swap 1024m is above this lab session's limit of 256m",
        ),
        (
            &["--cpu-quota", "400000"],
            "is above this lab session's limit of 1.00",
        ),
    ] {
        let (ok, (_, err)) = run(flags);
        assert!(!ok && err.contains(want), "{flags:?}: {err}");
    }
    // Within the envelope: applied, in the container's cgroup below the session's.
    let (ok, (out, err)) = run(&[
        "--cpuset-cpus",
        "0",
        "--cpu-shares",
        "512",
        "--memory-reservation",
        "32m",
    ]);
    assert!(ok, "{err}");
    let c = out.trim();
    let o = lab.session_docker(
        &id,
        &[
            "inspect",
            "-f",
            "{{.State.Pid}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
            c,
        ],
    );
    let shown = text(&o).0;
    let mut parts = shown.split_whitespace();
    let pid = parts.next().expect("pid").to_string();
    assert_eq!(
        parts.collect::<Vec<_>>(),
        [(128u64 << 20).to_string(), (256u64 << 20).to_string()]
    );
    let envelope = format!("berth/lab-{}/{c}", &id[..12]);
    let cpuset = cgroup_dir(&pid, "cpuset");
    assert!(cpuset.ends_with(&envelope), "{}", cpuset.display());
    assert_eq!(
        std::fs::read_to_string(cpuset.join("cpuset.cpus"))
            .expect("cpuset.cpus")
            .trim(),
        "0"
    );
    let (shares, want) = if cgroup_v2() {
        ("cpu.weight", "20")
    } else {
        ("cpu.shares", "512")
    };
    assert_eq!(
        std::fs::read_to_string(cgroup_dir(&pid, "cpu").join(shares))
            .expect("cpu weight")
            .trim(),
        want
    );
    lab.session_docker(&id, &["rm", "-f", c]);
}
