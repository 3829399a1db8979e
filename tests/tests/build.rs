//! `docker build` (classic builder) and `docker commit` through the real CLI: the
//! seeds' Dockerfiles adapted to busybox, the cache, multi-stage builds, history, and
//! bad input that must fail clearly and move no tag.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use berth_tests::dockerd::Dockerd;
use berth_tests::Berth;

/// A build context dir next to the test's state root (removed with it).
fn context(b: &Berth, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.root.with_file_name(format!("ctx-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

/// `docker build` with the classic builder forced, as the seeds' Docker did.
fn build(b: &Berth, args: &[&str], ctx: &Path) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    b.cmd(&all)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("run docker build")
}

fn build_ok(b: &Berth, args: &[&str], ctx: &Path) -> String {
    let o = build(b, args, ctx);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "build failed:\n{out}\n{}\nserver: {}",
        String::from_utf8_lossy(&o.stderr),
        b.server_log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    out
}

fn build_fails(b: &Berth, args: &[&str], ctx: &Path) -> String {
    let o = build(b, args, ctx);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!o.status.success(), "build should fail:\n{all}");
    all
}

/// The lines after "Step N/M : ..." up to the next step, for cache checks.
fn step_block<'a>(out: &'a str, step: &str) -> &'a str {
    let start = out
        .find(step)
        .unwrap_or_else(|| panic!("no {step:?} in:\n{out}"));
    let rest = &out[start + step.len()..];
    &rest[..rest.find("Step ").unwrap_or(rest.len())]
}

#[test]
fn run_and_cmd_then_override_cmd_at_run() {
    let b = Berth::start();
    let ctx = context(&b, "hello", &[("Dockerfile", "FROM busybox\nMAINTAINER class <class@example.com>\nRUN echo 'built at build time' > /greeting && echo from-run\nCMD [\"cat\", \"/greeting\"]\n")]);
    let out = build_ok(&b, &["-t", "hello-app:0.1"], &ctx);
    for want in [
        "Step 1/4 : FROM busybox",
        "Step 3/4 : RUN echo",
        " ---> Running in ",
        "from-run",
        "Successfully built ",
        "Successfully tagged hello-app:0.1",
    ] {
        assert!(out.contains(want), "{want:?} missing in:\n{out}");
    }
    assert_eq!(
        b.ok(&["run", "--rm", "hello-app:0.1"]),
        "built at build time"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "hello-app:0.1", "echo", "overridden"]),
        "overridden"
    );
    assert_eq!(
        b.inspect("hello-app:0.1", "{{.Author}}"),
        "class <class@example.com>"
    );
    // Intermediate containers are gone (--rm is the default).
    assert_eq!(b.ok(&["ps", "-aq"]), "");

    // `docker history`: newest first, Docker's created_by texts, empty layers 0B.
    let h = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "hello-app:0.1",
    ]);
    let rows: Vec<&str> = h.lines().collect();
    assert_eq!(rows.len(), 5, "{h}");
    assert_eq!(rows[0], "/bin/sh -c #(nop)  CMD [\"cat\" \"/greeting\"]|0B");
    assert!(
        rows[1].starts_with("/bin/sh -c echo 'built at build time' > /greeting")
            && !rows[1].ends_with("|0B"),
        "{h}"
    );
    assert!(
        rows[2].starts_with("/bin/sh -c #(nop)  MAINTAINER class"),
        "{h}"
    );

    // Plain `docker build` (CLI 28 without buildx) reaches the same classic builder,
    // and a second build of the same context is all cache.
    let o = b
        .cmd(&[
            "build",
            "-q",
            "-t",
            "hello-app:again",
            ctx.to_str().unwrap(),
        ])
        .env_remove("DOCKER_BUILDKIT")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(
        id,
        b.inspect("hello-app:0.1", "{{.Id}}"),
        "-q prints the id; the cache gives the same image"
    );
}

#[test]
fn echo_server_with_copy_and_published_port() {
    let b = Berth::start();
    let ctx = context(&b, "echo", &[
        ("server.sh", "#!/bin/sh\necho \"echo server on $PORT\"\nexec nc -ll -p \"$PORT\" -e cat\n"),
        ("Dockerfile", "FROM busybox\nENV PORT=12345\nWORKDIR /srv\nCOPY server.sh ./\nRUN chmod +x server.sh\nEXPOSE ${PORT}\nCMD [\"./server.sh\"]\n"),
    ]);
    build_ok(&b, &["-t", "echo-server"], &ctx);
    assert_eq!(
        b.inspect("echo-server", "{{json .Config.ExposedPorts}}"),
        "{\"12345/tcp\":{}}"
    );
    assert_eq!(b.inspect("echo-server", "{{.Config.WorkingDir}}"), "/srv");
    let id = b.ok(&["run", "-d", "-p", "12345:12345", "echo-server"]);
    let mut reply = String::new();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:12345") {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if s.write_all(b"hello berth\n").is_ok() {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf) {
                    reply = String::from_utf8_lossy(&buf[..n]).to_string();
                    if !reply.is_empty() {
                        break;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(reply, "hello berth\n", "logs: {}", b.ok(&["logs", &id]));
    assert!(b.ok(&["logs", &id]).contains("echo server on 12345"));
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn edited_app_rebuilds_only_after_the_changed_copy() {
    let b = Berth::start();
    let dockerfile =
        "FROM busybox\nWORKDIR /app\nCOPY . /app\nEXPOSE 80\nCMD [\"cat\", \"/app/app.js\"]\n";
    let ctx = context(
        &b,
        "node",
        &[
            ("Dockerfile", dockerfile),
            ("app.js", "console.log('v0.1')\n"),
        ],
    );
    build_ok(&b, &["-t", "node-app:0.1"], &ctx);
    fs::write(ctx.join("app.js"), "console.log('v0.2')\n").unwrap();
    let out = build_ok(&b, &["-t", "node-app:0.2"], &ctx);
    assert!(
        step_block(&out, "Step 2/5 : WORKDIR /app").contains("Using cache"),
        "{out}"
    );
    for later in [
        "Step 3/5 : COPY . /app",
        "Step 4/5 : EXPOSE 80",
        "Step 5/5 : CMD",
    ] {
        assert!(
            !step_block(&out, later).contains("Using cache"),
            "{later} must re-run:\n{out}"
        );
    }
    assert_eq!(
        b.ok(&["run", "--rm", "node-app:0.1"]),
        "console.log('v0.1')"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "node-app:0.2"]),
        "console.log('v0.2')"
    );
    // Unchanged context: every step from the cache; --no-cache runs them all.
    let out = build_ok(&b, &["-t", "node-app:0.2"], &ctx);
    assert_eq!(out.matches("Using cache").count(), 4, "{out}");
    let out = build_ok(&b, &["--no-cache", "-t", "node-app:0.3"], &ctx);
    assert!(!out.contains("Using cache"), "{out}");
}

#[test]
fn multi_stage_final_image_is_smaller_than_its_build_stage() {
    let b = Berth::start();
    let ctx = context(&b, "multi", &[(
        "Dockerfile",
        "ARG SIZE=2048\nFROM busybox AS build\nARG SIZE\nRUN dd if=/dev/zero of=/big bs=1024 count=$SIZE && echo artifact > /artifact\n\nFROM scratch\nCOPY --from=build /artifact /artifact\nCOPY --from=build /bin/busybox /bin/cat\nCMD [\"/bin/cat\", \"/artifact\"]\n",
    )]);
    build_ok(&b, &["-t", "final", "--build-arg", "SIZE=3072"], &ctx);
    build_ok(&b, &["--target", "build", "-t", "stage"], &ctx);
    let size = |n: &str| b.inspect(n, "{{.Size}}").parse::<u64>().unwrap();
    assert!(
        size("final") < size("stage"),
        "final {} vs build stage {}",
        size("final"),
        size("stage")
    );
    assert!(
        size("stage") > 2_000_000,
        "the build stage holds the big file"
    );
    assert_eq!(b.ok(&["run", "--rm", "final"]), "artifact");
    assert_eq!(b.inspect("final", "{{len .RootFS.Layers}}"), "2");
}

#[test]
fn dockerfile_features() {
    let b = Berth::start();
    // A tar for ADD to unpack, made with busybox tar.
    let ctx = context(
        &b,
        "features",
        &[
            ("src/a.txt", "A\n"),
            ("src/b.log", "log\n"),
            ("secret.txt", "do not send\n"),
            (".dockerignore", "secret.txt\n*.md\n"),
            ("README.md", "ignored\n"),
            (
                "build.Dockerfile",
                concat!(
                    "# escape=\\\n",
                    "FROM busybox\n",
                    "ARG GREETING=hi\n",
                    "ENV TARGET=/data NAME=\"two words\"\n",
                    "LABEL org.example.name=\"$NAME\" stage=${STAGE:-dev}\n",
                    "COPY src/*.txt $TARGET/\n",
                    "ADD files.tar /unpacked/\n",
                    "COPY --chown=nobody:nogroup src/b.log /owned.log\n",
                    "RUN <<EOF\n",
                    "echo \"$GREETING from heredoc\" > /heredoc.txt\n",
                    "EOF\n",
                    "run echo continued \\\n",
                    "    line >> /heredoc.txt\n",
                    "USER nobody\n",
                    "STOPSIGNAL SIGINT\n",
                    "VOLUME /vol\n",
                    "HEALTHCHECK --interval=5s CMD true\n",
                    "ONBUILD RUN echo child\n",
                ),
            ),
        ],
    );
    let inner = ctx.join("inner");
    fs::create_dir_all(&inner).unwrap();
    fs::write(inner.join("x.txt"), "from the tar\n").unwrap();
    let st = std::process::Command::new("/bin/busybox")
        .args(["tar", "cf"])
        .arg(ctx.join("files.tar"))
        .arg("-C")
        .arg(&inner)
        .arg("x.txt")
        .status()
        .unwrap();
    assert!(st.success());
    fs::remove_dir_all(&inner).unwrap();

    build_ok(
        &b,
        &[
            "-f",
            ctx.join("build.Dockerfile").to_str().unwrap(),
            "-t",
            "feat:1",
            "-t",
            "feat:alias",
            "--build-arg",
            "GREETING=hello",
            "--label",
            "from-cli=yes",
        ],
        &ctx,
    );
    assert_eq!(
        b.inspect("feat:1", "{{.Id}}"),
        b.inspect("feat:alias", "{{.Id}}")
    );
    let run = |cmd: &str| b.ok(&["run", "--rm", "--user", "0", "feat:1", "sh", "-c", cmd]);
    assert_eq!(run("ls /data"), "a.txt", "wildcard copy; b.log not matched");
    assert_eq!(run("cat /unpacked/x.txt"), "from the tar");
    assert_eq!(
        run("cat /heredoc.txt"),
        "hello from heredoc\ncontinued line"
    );
    assert_eq!(run("stat -c %U /owned.log"), "nobody");
    assert_eq!(
        run("ls -ld /tmp | cut -c1-10"),
        "drwxrwxrwt",
        "COPY into a dir keeps the image's modes"
    );
    assert_eq!(b.inspect("feat:1", "{{index .Config.Labels \"org.example.name\"}} {{.Config.Labels.stage}} {{index .Config.Labels \"from-cli\"}}"), "two words dev yes");
    assert_eq!(
        b.inspect(
            "feat:1",
            "{{.Config.User}} {{.Config.StopSignal}} {{json .Config.Volumes}}"
        ),
        "nobody SIGINT {\"/vol\":{}}"
    );
    assert_eq!(
        b.inspect("feat:1", "{{json .Config.Healthcheck.Test}}"),
        "[\"CMD-SHELL\",\"true\"]"
    );
    assert_eq!(
        b.inspect("feat:1", "{{json .Config.OnBuild}}"),
        "[\"RUN echo child\"]"
    );

    // A Dockerfile from outside the context or from stdin (the CLI then sends an
    // unpadded tar), and a build arg no ARG declares.
    let outside = b.root.with_file_name("outside.Dockerfile");
    fs::write(
        &outside,
        "FROM busybox\nCOPY src/a.txt /\nCMD [\"cat\", \"/a.txt\"]\n",
    )
    .unwrap();
    let out = build_ok(
        &b,
        &[
            "-f",
            outside.to_str().unwrap(),
            "-t",
            "outside",
            "--build-arg",
            "UNUSED=1",
        ],
        &ctx,
    );
    assert!(
        out.contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{out}"
    );
    assert_eq!(b.ok(&["run", "--rm", "outside"]), "A");
    let o = b
        .cmd(&[
            "build",
            "-q",
            "-f",
            "-",
            "-t",
            "stdin-df",
            ctx.to_str().unwrap(),
        ])
        .stdin(fs::File::open(&outside).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["run", "--rm", "stdin-df"]), "A");

    // .dockerignore kept secret.txt out of the context.
    let ctx2 = context(
        &b,
        "features2",
        &[("Dockerfile", "FROM feat:1\nUSER root\nCOPY secret.txt /\n")],
    );
    fs::write(ctx2.join(".dockerignore"), "secret.txt\n").unwrap();
    fs::write(ctx2.join("secret.txt"), "x").unwrap();
    let out = build_fails(&b, &[], &ctx2);
    assert!(
        out.contains("file not found in build context or excluded by .dockerignore"),
        "{out}"
    );
    // The ONBUILD trigger runs in a child build.
    let ctx3 = context(&b, "features3", &[("Dockerfile", "FROM feat:1\n")]);
    let out = build_ok(&b, &["-t", "child"], &ctx3);
    assert!(out.contains("child"), "{out}");
}

#[test]
fn commit_makes_an_image_from_a_container() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "--name",
        "work",
        "busybox",
        "sh",
        "-c",
        "echo saved > /note && rm /etc/group",
    ]);
    let id = b.ok(&[
        "commit",
        "-m",
        "a note",
        "-a",
        "me",
        "-c",
        "CMD [\"cat\", \"/note\"]",
        "work",
        "noted:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(b.ok(&["run", "--rm", "noted:v1"]), "saved");
    let (code, _) = b.fails(&["run", "--rm", "noted:v1", "cat", "/etc/group"]);
    assert_ne!(code, 0, "the deletion is a whiteout in the new layer");
    assert_eq!(
        b.inspect("noted:v1", "{{.Author}}|{{.Comment}}"),
        "me|a note"
    );
    let h = b.ok(&["history", "--format", "{{.Comment}}", "noted:v1"]);
    assert_eq!(h.lines().next(), Some("a note"));
    b.ok(&["rm", "work"]);
}

#[test]
fn bad_input_fails_clearly_and_moves_no_tag() {
    let b = Berth::start();
    let ctx = context(
        &b,
        "bad",
        &[
            ("Dockerfile", "FROM busybox\nCMD [\"echo\", \"good\"]\n"),
            ("ok.txt", "ok\n"),
        ],
    );
    build_ok(&b, &["-t", "app:1"], &ctx);
    let good = b.inspect("app:1", "{{.Id}}");
    let images_before = b.ok(&["images", "-aq"]);
    let cases: &[(&str, &str)] = &[
        ("FROM busybox\nRUNN echo\n", "unknown instruction: RUNN"),
        ("RUN echo no from\n", "no build stage in current context"),
        ("FROM busybox\nCOPY missing.txt /\n", "file not found in build context"),
        ("FROM busybox\nCOPY ../outside /\n", "forbidden path outside the build context"),
        ("FROM busybox\nCOPY link /\n", "forbidden path outside the build context"),
        ("FROM busybox\nADD https://example.com/x.tar.gz /\n", "no network access"),
        ("FROM busybox\nRUN echo output-before-failing && false\n", "The command '/bin/sh -c echo output-before-failing && false' returned a non-zero code: 1"),
        ("FROM no-such-image-here\n", "no-such-image-here"),
    ];
    std::os::unix::fs::symlink("/etc/passwd", ctx.join("link")).unwrap();
    for (dockerfile, want) in cases {
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let out = build_fails(&b, &["-t", "app:1"], &ctx);
        assert!(
            out.contains(want),
            "{dockerfile:?}: want {want:?} in:\n{out}"
        );
        if dockerfile.contains("output-before-failing") {
            assert!(
                out.contains("\noutput-before-failing\n"),
                "the RUN's output is shown:\n{out}"
            );
        }
        assert_eq!(
            b.inspect("app:1", "{{.Id}}"),
            good,
            "{dockerfile:?} moved the tag"
        );
    }
    assert_eq!(
        b.ok(&["images", "-aq"]),
        images_before,
        "no half-built image is listed"
    );
    // The failed RUN's container stays for inspection, as with Docker (without --force-rm).
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN false\n").unwrap();
    build_fails(&b, &["--force-rm"], &ctx);
    assert_eq!(
        b.ok(&["ps", "-aq"]).lines().count(),
        1,
        "--force-rm removes the failed step's container"
    );
    // Settings the builder does not implement are refused by name, not ignored.
    for (flag, value, shown) in [
        ("--isolation", "hyperv", "--isolation (isolation=hyperv)"),
        (
            "--cgroup-parent",
            "mine",
            "--cgroup-parent (cgroupparent=mine)",
        ),
    ] {
        let out = build_fails(&b, &[flag, value], &ctx);
        assert!(
            out.contains(&format!("{shown} is not supported by Berth's builder")),
            "{flag}: {out}"
        );
    }
}

#[test]
fn large_context_files_arrive_whole() {
    // Files of a megabyte and more stay in memory while the cache is checked (see
    // engine::build::context): the image must still get every byte, with COPY, with
    // ADD of a tar, after a cached rebuild and after an edit.
    let b = Berth::start();
    let ctx = context(
        &b,
        "large",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY big.bin /data/\nADD pack.tar /unpacked/\nCMD [\"sh\"]\n",
        )],
    );
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(ctx.join("big.bin"), &big).unwrap();
    let inner = ctx.with_file_name("large-inner");
    fs::create_dir_all(&inner).unwrap();
    fs::write(inner.join("inside.bin"), &big[..1_500_000]).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&inner)
        .arg("-cf")
        .arg(ctx.join("pack.tar"))
        .arg("inside.bin")
        .status()
        .unwrap();
    assert!(st.success());
    let sum = |data: &[u8]| -> String {
        let f = ctx.with_file_name("sum-input");
        fs::write(&f, data).unwrap();
        let o = std::process::Command::new("md5sum")
            .arg(&f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let in_image = || {
        b.ok(&[
            "run",
            "--rm",
            "big:1",
            "sh",
            "-c",
            "md5sum /data/big.bin /unpacked/inside.bin | cut -d' ' -f1",
        ])
    };
    build_ok(&b, &["-t", "big:1"], &ctx);
    assert_eq!(
        in_image(),
        format!("{}\n{}", sum(&big), sum(&big[..1_500_000]))
    );
    let again = build_ok(&b, &["-t", "big:1"], &ctx);
    assert_eq!(again.matches("Using cache").count(), 3, "{again}");
    let mut edited = big.clone();
    edited[2_999_999] ^= 0xff;
    fs::write(ctx.join("big.bin"), &edited).unwrap();
    let out = build_ok(&b, &["-t", "big:1"], &ctx);
    assert_eq!(
        out.matches("Using cache").count(),
        0,
        "the edit misses the COPY and all after it: {out}"
    );
    assert_eq!(
        in_image(),
        format!("{}\n{}", sum(&edited), sum(&big[..1_500_000]))
    );
}

/// A daemon the same docker CLI talks to: Berth, or the peer dockerd.
enum Daemon<'a> {
    Berth(&'a Berth),
    Dockerd(&'a Dockerd),
}

impl Daemon<'_> {
    fn name(&self) -> &'static str {
        match self {
            Daemon::Berth(_) => "berth",
            Daemon::Dockerd(_) => "dockerd",
        }
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = match self {
            Daemon::Berth(b) => b.cmd(args),
            Daemon::Dockerd(d) => d.cmd(args),
        };
        c.env("DOCKER_BUILDKIT", "0")
            .stdin(std::process::Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run docker")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{}: docker {args:?} failed:\n{}{}",
            self.name(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// The output of the only RUN step of a build: what came between "Running in"
    /// and "Removing intermediate container".
    fn run_output(&self, args: &[&str]) -> String {
        let out = self.ok(args);
        let start = out
            .find(" ---> Running in ")
            .unwrap_or_else(|| panic!("{}: no RUN in:\n{out}", self.name()));
        let rest = &out[start..];
        let rest = &rest[rest.find('\n').map_or(rest.len(), |i| i + 1)..];
        rest[..rest
            .find("Removing intermediate container")
            .unwrap_or(rest.len())]
            .to_string()
    }
}

/// `docker build --add-host` and `--network` reach the RUN steps as on dockerd: a
/// user network's peers by name and alias, `none` with a loopback only, `host`,
/// `default` and `bridge` accepted, an unknown network refused; a step's stderr
/// comes in dockerd's red escape, its container removal in dockerd's words.
#[test]
fn run_steps_take_add_host_and_network_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let ctx = context(
        &b,
        "network",
        &[(
            "Dockerfile",
            concat!(
                "FROM busybox\n",
                "RUN grep -w foo /etc/hosts; ",
                "(ping -c1 -W2 peeralias >/dev/null 2>&1 && ping -c1 -W2 peer >/dev/null 2>&1 && echo reached) || echo unreached; ",
                "ls /sys/class/net | tr '\\n' ' '; echo; echo to-stderr >&2\n"
            ),
        )],
    );
    let plain = context(
        &b,
        "network-plain",
        &[("Dockerfile", "FROM busybox\nRUN true\n")],
    );
    let (ctx, plain) = (ctx.to_str().unwrap(), plain.to_str().unwrap());
    let mut seen = Vec::new();
    for daemon in [Daemon::Berth(&b), Daemon::Dockerd(&d)] {
        daemon.ok(&["network", "create", "buildnet"]);
        daemon.ok(&[
            "run",
            "-d",
            "--name",
            "peer",
            "--network",
            "buildnet",
            "--network-alias",
            "peeralias",
            "busybox",
            "sleep",
            "300",
        ]);
        // The step's stderr, in dockerd's red, comes apart from its stdout (two pipes:
        // where it lands among the stdout lines is not fixed).
        let red = "\u{1b}[91mto-stderr\n\u{1b}[0m";
        let apart = |out: String| {
            assert_eq!(out.matches(red).count(), 1, "{}: {out:?}", daemon.name());
            out.replacen(red, "", 1)
        };
        let on_net = apart(daemon.run_output(&[
            "build",
            "--no-cache",
            "--network",
            "buildnet",
            "--add-host",
            "foo:1.2.3.4",
            ctx,
        ]));
        let offline = apart(daemon.run_output(&["build", "--no-cache", "--network", "none", ctx]));
        for mode in ["host", "default", "bridge"] {
            daemon.ok(&["build", "--no-cache", "--network", mode, plain]);
        }
        let o = daemon.run(&["build", "--no-cache", "--network", "nosuch", plain]);
        let err =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        assert!(
            !o.status.success() && err.contains("network nosuch not found"),
            "{}: {err}",
            daemon.name()
        );
        let full = daemon.ok(&["build", "--no-cache", plain]);
        assert!(
            full.contains("Removing intermediate container ")
                && !full.contains("Removed intermediate"),
            "{}: {full}",
            daemon.name()
        );
        daemon.ok(&["rm", "-f", "peer"]);
        daemon.ok(&["network", "rm", "buildnet"]);
        seen.push((daemon.name(), on_net, offline));
    }
    let (_, berth_net, berth_offline) = &seen[0];
    assert_eq!(berth_net, "1.2.3.4\tfoo\nreached\neth0 lo \n", "berth");
    assert_eq!(berth_offline, "unreached\nlo \n", "berth");
    for (name, net, offline) in &seen[1..] {
        assert_eq!(
            (net, offline),
            (berth_net, berth_offline),
            "{name} differs from berth"
        );
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// `docker build --memory`, `--cpu-*`, `--cpuset-cpus`, `--shm-size` and `--ulimit`
/// are what every RUN step runs with (they were refused before; dockerd's classic
/// builder applies them the same way); `--cgroup-parent` is still refused.
#[test]
fn run_steps_take_the_builds_resource_limits() {
    let b = Berth::start();
    let ctx = context(
        &b,
        "limits",
        &[(
            "Dockerfile",
            concat!(
                "FROM busybox\n",
                "RUN cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ",
                "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us); ",
                "grep Cpus_allowed_list /proc/self/status; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1\n"
            ),
        )],
    );
    let ctx = ctx.to_str().unwrap();
    let out = b.ok(&[
        "build",
        "--no-cache",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpuset-cpus",
        "0",
        "--shm-size",
        "32m",
        "--ulimit",
        "nofile=100:200",
        ctx,
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let after = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix));
    let at = after("67108864").unwrap_or_else(|| panic!("no 64m memory limit: {out}"));
    assert_eq!(lines[at + 1], "25000 50000", "{out}");
    assert!(lines[at + 2].ends_with("\t0"), "{out}");
    assert_eq!(&lines[at + 3..at + 5], ["100", "200"], "{out}");
    assert!(
        lines[at + 5].split_whitespace().nth(1) == Some("32768"),
        "{out}"
    );
    // A limit Berth's checks refuse for a run is refused for a step too.
    let o = b.docker(&["build", "--no-cache", "--memory", "1k", ctx]);
    let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("Minimum memory limit allowed is 6MB"),
        "{err}"
    );
    let (_, err) = b.fails(&["build", "--cgroup-parent", "x", ctx]);
    assert!(
        err.contains("--cgroup-parent (cgroupparent=x) is not supported by Berth's builder"),
        "{err}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// `.dockerignore` as Docker applies it: the CLI leaves excluded files out (later
/// rules win, `**`, a leading `/`, exceptions under an excluded directory), always
/// sends the Dockerfile and `.dockerignore`, and the daemon takes those two out when
/// excluded. A client that sends every file (the raw API) gets every file, as from
/// dockerd, which applies no other rule itself.
#[test]
fn dockerignore_exceptions_and_patterns_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let mut files =
        vec![
        ("Dockerfile", "FROM busybox\nCOPY . /ctx\nRUN find /ctx | sort | tr '\\n' ' '\n"),
        (
            ".dockerignore",
            "# a comment\nsecret\ndir\n!dir/keep\n**/*.tmp\n/rootonly\nDockerfile\n.dockerignore\n",
        ),
    ];
    for f in [
        "secret",
        "dir/keep",
        "dir/drop",
        "dir/sub/x",
        "a/b/c.tmp",
        "a/b/c.txt",
        "rootonly",
        "sub/rootonly",
    ] {
        files.push((f, "x\n"));
    }
    let ctx = context(&b, "ignore", &files);
    // The whole directory as one tar, as a client that applies no rule sends it.
    let tar = b.root.with_file_name("ignore-context.tar");
    let o = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&ctx)
        .arg(".")
        .output()
        .expect("tar");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = |host: &str| {
        let sock = host.trim_start_matches("unix://").to_string();
        let o = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/x-tar",
                "--unix-socket",
                &sock,
                "--data-binary",
            ])
            .arg(format!("@{}", tar.display()))
            .arg("http://d/v1.41/build?nocache=1")
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&o.stdout).to_string();
        body.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["stream"].as_str().map(str::to_string))
            .find(|s| s.starts_with("/ctx "))
            .unwrap_or_else(|| panic!("no listing in:\n{body}"))
    };
    let berth_host = format!("unix://{}", b.sock.display());
    let mut seen = Vec::new();
    for daemon in [Daemon::Berth(&b), Daemon::Dockerd(&d)] {
        let cli = daemon.run_output(&["build", "--no-cache", ctx.to_str().unwrap()]);
        let host = match &daemon {
            Daemon::Berth(_) => berth_host.clone(),
            Daemon::Dockerd(d) => d.host(),
        };
        seen.push((daemon.name(), cli, raw(&host)));
    }
    let (_, cli, all) = &seen[0];
    assert_eq!(
        cli,
        "/ctx /ctx/a /ctx/a/b /ctx/a/b/c.txt /ctx/dir /ctx/dir/keep /ctx/sub /ctx/sub/rootonly "
    );
    assert_eq!(
        all,
        "/ctx /ctx/a /ctx/a/b /ctx/a/b/c.tmp /ctx/a/b/c.txt /ctx/dir /ctx/dir/drop /ctx/dir/keep /ctx/dir/sub /ctx/dir/sub/x /ctx/rootonly /ctx/secret /ctx/sub /ctx/sub/rootonly "
    );
    assert_eq!(seen[1].1, *cli, "dockerd, through the CLI");
    assert_eq!(seen[1].2, *all, "dockerd, every file sent");
}

/// `--cache-from`: only the named images' own steps serve from the cache (an
/// unrelated image serves none), and an image loaded back with no local cache entry
/// (as after a pull) still serves every step and is the result; without the option
/// the local cache serves as before, and a miss in one stage leaves the next stage's
/// cache open. The same on dockerd.
#[test]
fn cache_from_limits_the_cache_to_those_images_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let ctx = context(
        &b,
        "cache-from",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
        )],
    );
    let ctx = ctx.to_str().unwrap();
    let saved = b.root.with_file_name("cache-from.tar");
    let saved = saved.to_str().unwrap();
    let mut seen = Vec::new();
    for daemon in [Daemon::Berth(&b), Daemon::Dockerd(&d)] {
        let cached = |args: &[&str]| {
            let mut all = vec!["build"];
            all.extend_from_slice(args);
            all.push(ctx);
            daemon.ok(&all).matches(" ---> Using cache").count()
        };
        daemon.ok(&["build", "-t", "cf:1", ctx]);
        let id = daemon.ok(&["inspect", "-f", "{{.Id}}", "cf:1"]);
        let counts = (
            cached(&["--cache-from", "busybox"]),
            cached(&["--cache-from", "cf:1"]),
            cached(&["--cache-from", "no-such-image"]),
            cached(&[]),
        );
        daemon.ok(&["save", "-o", saved, "cf:1"]);
        daemon.ok(&["rmi", "cf:1"]);
        daemon.ok(&["image", "prune", "-f"]);
        daemon.ok(&["load", "-i", saved]);
        let restored = cached(&["--cache-from", "cf:1", "-t", "cf:2"]);
        assert_eq!(
            daemon.ok(&["inspect", "-f", "{{.Id}}", "cf:2"]),
            id,
            "{}: the build is the cache image itself",
            daemon.name()
        );
        daemon.ok(&["rmi", "cf:1", "cf:2"]);
        // A miss in one stage leaves the next stage's cache open.
        fs::write(
            Path::new(ctx).join("Dockerfile"),
            "FROM busybox AS a\nARG X=1\nRUN echo $X > /x\nFROM busybox\nRUN echo stable > /s\n",
        )
        .unwrap();
        daemon.ok(&["build", ctx]);
        let again = daemon.ok(&["build", "--build-arg", "X=2", ctx]);
        assert!(
            step_block(&again, "Step 3/5").contains(" ---> Running in ")
                && step_block(&again, "Step 5/5").contains(" ---> Using cache"),
            "{}: {again}",
            daemon.name()
        );
        fs::write(
            Path::new(ctx).join("Dockerfile"),
            "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
        )
        .unwrap();
        seen.push((daemon.name(), counts, restored));
    }
    assert_eq!(seen[0], ("berth", (0, 2, 0, 2), 2));
    assert_eq!((seen[1].1, seen[1].2), (seen[0].1, seen[0].2), "dockerd");
}

/// Each build step's image is kept with the image it was made on as its `Parent`, as
/// dockerd's classic builder does: `inspect` and `history` show the chain, `images`
/// hides the steps and `images -a` lists them, a step others need cannot be removed
/// by id, removing the built image removes its steps too, and removing the last tag
/// of the base only untags it. The same on dockerd.
#[test]
fn build_steps_record_their_parents_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let ctx = context(
        &b,
        "parents",
        &[(
            "Dockerfile",
            "FROM busybox\nENV A=1\nRUN echo hi > /f\nCOPY Dockerfile /\n",
        )],
    );
    let ctx = ctx.to_str().unwrap();
    let mut seen = Vec::new();
    for daemon in [Daemon::Berth(&b), Daemon::Dockerd(&d)] {
        let name = daemon.name();
        let busybox = daemon.ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
        let all_before = daemon.ok(&["images", "-aq"]).lines().count();
        let shown_before = daemon.ok(&["images", "-q"]).lines().count();
        daemon.ok(&["build", "-t", "p:1", ctx]);
        let rows: Vec<String> = daemon
            .ok(&["history", "-q", "--no-trunc", "p:1"])
            .lines()
            .map(str::to_string)
            .collect();
        let id = daemon.ok(&["inspect", "-f", "{{.Id}}", "p:1"]);
        assert_eq!(rows[0], id, "{name}");
        assert_eq!(rows[3], busybox, "{name}: the base's own step");
        assert!(
            rows[4..].iter().all(|r| r == "<missing>"),
            "{name}: {rows:?}"
        );
        // Each step's Parent is the step before, up to the base.
        for i in 0..3 {
            assert_eq!(
                daemon.ok(&["inspect", "-f", "{{.Parent}}", &rows[i]]),
                rows[i + 1],
                "{name}: parent of history row {i}"
            );
        }
        let counts = (
            daemon.ok(&["images", "-aq"]).lines().count() - all_before,
            daemon.ok(&["images", "-q"]).lines().count() - shown_before,
        );
        let o = daemon.run(&["rmi", &rows[1]]);
        let refused = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && refused.contains("image has dependent child images"),
            "{name}: {refused}"
        );
        let removed = daemon.ok(&["rmi", "p:1"]);
        for row in &rows[..3] {
            assert!(
                removed.contains(&format!("Deleted: {row}")),
                "{name}: {removed}"
            );
        }
        assert_eq!(
            daemon.ok(&["images", "-aq"]).lines().count(),
            all_before,
            "{name}"
        );
        // The base of a built image loses its tag only.
        daemon.ok(&["build", "-t", "p:1", ctx]);
        assert_eq!(
            daemon.ok(&["rmi", "busybox"]),
            "Untagged: busybox:latest",
            "{name}"
        );
        assert_eq!(
            daemon.ok(&["inspect", "-f", "{{.Id}}", &busybox]),
            busybox,
            "{name}: the base stays"
        );
        seen.push((name, counts));
    }
    assert_eq!(seen[0], ("berth", (3, 1)));
    assert_eq!(seen[1].1, seen[0].1, "dockerd");
}

#[test]
fn builds_of_the_same_step_at_once_make_it_once() {
    let b = Berth::start();
    // A RUN that takes a second, so the four builds surely ask for it together.
    let df = "FROM busybox\nRUN sleep 1 && echo made-$$ > /made\nCMD [\"cat\", \"/made\"]\n";
    let ctxs: Vec<PathBuf> = (0..4)
        .map(|i| context(&b, &format!("same-{i}"), &[("Dockerfile", df)]))
        .collect();
    let outs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ctxs
            .iter()
            .enumerate()
            .map(|(i, ctx)| {
                let b = &b;
                let tag = format!("same{i}:v1");
                s.spawn(move || build_ok(b, &["-t", &tag], ctx))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let run_blocks: Vec<&str> = outs.iter().map(|o| step_block(o, "RUN")).collect();
    let made = run_blocks
        .iter()
        .filter(|o| o.contains("Running in"))
        .count();
    let cached = run_blocks
        .iter()
        .filter(|o| o.contains("Using cache"))
        .count();
    assert_eq!(
        (made, cached),
        (1, 3),
        "one build runs the step, the others take it: {outs:#?}"
    );
    // All four images hold the very same layer (the one build's), so the same file.
    let made_by: Vec<String> = (0..4)
        .map(|i| {
            let o = b
                .cmd(&["run", "--rm", &format!("same{i}:v1")])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
        .collect();
    assert!(made_by[0].starts_with("made-"), "{made_by:?}");
    assert!(made_by.iter().all(|m| *m == made_by[0]), "{made_by:?}");
}
