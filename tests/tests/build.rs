//! `docker build` (classic builder) and `docker commit` through the real CLI: the
//! seeds' Dockerfiles adapted to busybox, the cache, multi-stage builds, history, and
//! bad input that must fail clearly and move no tag.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

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
