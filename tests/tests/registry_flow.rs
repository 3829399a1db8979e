//! The seeds' registry lessons as written, with the real CLI: tag, push to
//! `localhost:5000`, search, `rmi`, `run` pulls it back, `history`.

use berth_tests::Berth;

#[test]
fn seed_flow_push_search_rmi_run_history() {
    let _port = berth_tests::port_5000();
    let b = Berth::start_with(&["--registry-listen", "127.0.0.1:5000"]);
    b.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "echo made-by-student > /hello.txt",
    ]);
    b.ok(&[
        "commit",
        "-c",
        "LABEL org.opencontainers.image.description=greeting",
        "maker",
        "student/hello:v1",
    ]);
    b.ok(&["tag", "student/hello:v1", "localhost:5000/student/hello:v1"]);
    let push = b.ok(&["push", "localhost:5000/student/hello:v1"]);
    assert!(
        push.contains("The push refers to repository [localhost:5000/student/hello]"),
        "{push}"
    );
    assert!(push.contains("v1: digest: sha256:"), "{push}");
    // `docker search` with no registry named searches Berth's own, offline.
    // The seeds hello-wasm and hello-world are in the registry too (it is the default
    // registry mirror).
    let found = b.ok(&["search", "--format", "{{.Name}}|{{.Description}}", "hello"]);
    let want = if cfg!(target_arch = "x86_64") {
        "hello-wasm|\nhello-world|\nstudent/hello|greeting"
    } else {
        "hello-wasm|\nstudent/hello|greeting"
    };
    assert_eq!(found, want);
    b.ok(&["rmi", "localhost:5000/student/hello:v1", "student/hello:v1"]);
    b.ok(&["rm", "maker"]);
    let o = b.docker(&[
        "run",
        "--rm",
        "localhost:5000/student/hello:v1",
        "cat",
        "/hello.txt",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Unable to find image 'localhost:5000/student/hello:v1' locally"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "made-by-student\n");
    let history = b.ok(&[
        "history",
        "--format",
        "{{.CreatedBy}}",
        "localhost:5000/student/hello:v1",
    ]);
    assert!(history.lines().count() >= 3, "one row per step: {history}");
}

/// A multi-platform index: the pull picks this machine's manifest, or the one
/// `--platform` names; `run --platform` checks the image it finds.
#[test]
fn pull_picks_the_platform_from_an_index() {
    let b = Berth::start();
    let reg = b.registry_addr();
    b.ok(&["tag", "busybox", &format!("{reg}/multi:single")]);
    let push = b.ok(&["push", &format!("{reg}/multi:single")]);
    // "single: digest: sha256:… size: N"
    let line = push
        .lines()
        .find(|l| l.starts_with("single: digest:"))
        .expect("digest line");
    let digest = line.split_whitespace().nth(2).unwrap().to_string();
    let size: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    // hello-world goes in as the other platform's image: if the pull picked it, the
    // `echo` below would not exist.
    b.ok(&["tag", "hello-world", &format!("{reg}/multi:other")]);
    let push = b.ok(&["push", &format!("{reg}/multi:other")]);
    let line = push
        .lines()
        .find(|l| l.starts_with("other: digest:"))
        .expect("digest line");
    let other_digest = line.split_whitespace().nth(2).unwrap().to_string();
    let other_size: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let other_arch = if host_arch == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest, "size": other_size,
              "platform": { "architecture": other_arch, "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
              "platform": { "architecture": host_arch, "os": "linux" } },
        ],
    });
    let put = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(index.to_string())
        .arg(format!("http://{reg}/v2/multi/manifests/both"))
        .status()
        .expect("curl (apt-get install curl)");
    assert!(put.success(), "PUT index");
    b.ok(&["rmi", &format!("{reg}/multi:other")]);
    b.ok(&["rmi", &format!("{reg}/multi:single")]);
    let pull = b.ok(&["pull", &format!("{reg}/multi:both")]);
    assert!(pull.contains("Status: Downloaded newer image"), "{pull}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            &format!("{reg}/multi:both"),
            "echo",
            "picked"
        ]),
        "picked"
    );
    // `--platform`: the index's other entry (hello-world, whose config says this
    // machine's architecture, so Docker's warning comes with it) ...
    let both = format!("{reg}/multi:both");
    let pull = b.ok(&["pull", "--platform", &format!("linux/{other_arch}"), &both]);
    assert!(
        pull.contains(&format!(
            "WARNING: image with reference {both} was found but does not match the specified platform: wanted linux/{other_arch}, actual: linux/{host_arch}"
        )),
        "{pull}"
    );
    assert!(b.ok(&["run", "--rm", &both]).contains("Hello from Berth!"));
    // ... an entry it does not have, by name ...
    let (_, err) = b.fails(&["pull", "--platform", "linux/s390x", &both]);
    assert!(
        err.contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{err}"
    );
    // ... and `run --platform` checks the image: Docker's NotFound, on which the CLI
    // pulls for that platform, and the image it gets is still not one for it.
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--platform",
        &format!("linux/{other_arch}"),
        &both,
    ]);
    assert!(
        err.contains(&format!(
            "image with reference {both} was found but does not match the specified platform: wanted linux/{other_arch}, actual: linux/{host_arch}"
        )),
        "{err}"
    );
    // A build's FROM too (the classic builder: `--platform`, or `FROM --platform=`
    // with BuildKit's BUILDPLATFORM, which Dockerfiles from the web use).
    let ctx = b.root.with_file_name("ctx-platform");
    std::fs::create_dir_all(&ctx).unwrap();
    let build = |dockerfile: &str, flags: &[&str]| {
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let mut args = vec!["build", "-q"];
        args.extend_from_slice(flags);
        args.push(ctx.to_str().unwrap());
        b.cmd(&args)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build")
    };
    let o = build(
        &format!("FROM {both}\n"),
        &["--platform", &format!("linux/{other_arch}")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("does not match the specified platform"),
        "{err}"
    );
    let o = build(
        "FROM --platform=$BUILDPLATFORM busybox\nRUN echo built\n",
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = build(
        &format!("FROM --platform=linux/{other_arch} busybox\n"),
        &[],
    );
    assert!(
        !o.status.success(),
        "busybox is of this machine's platform only"
    );
    b.ok(&["pull", &both]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--platform",
            &format!("linux/{host_arch}"),
            &both,
            "echo",
            "host"
        ]),
        "host"
    );
    for path in [
        format!("/images/create?fromImage={reg}/multi&tag=both&platform=bogus//x"),
        "/containers/create?platform=linux/".to_string(),
    ] {
        let (code, body) = berth_tests::api_call(
            &b.sock,
            "1.47",
            "POST",
            &path,
            Some(r#"{"Image":"busybox"}"#),
        );
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body.contains("platform specifier component must match"),
            "{path}: {body}"
        );
    }
}

/// `docker build --pull` takes the base image from its registry even when a local
/// image has the same name.
#[test]
fn build_pull_fetches_the_base_image() {
    let b = Berth::start();
    let reg = b.registry_addr();
    let base = format!("{reg}/base:1");
    b.ok(&["tag", "busybox", &base]);
    b.ok(&["push", &base]);
    // Locally the name now means hello-world, which has no shell.
    b.ok(&["rmi", &base]);
    b.ok(&["tag", "hello-world", &base]);
    let ctx = b.root.with_file_name("pull-ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo built-on-busybox\n"),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    b.fails(&["build", "-t", "without-pull", ctx]);
    let out = b.ok(&["build", "--pull", "-t", "with-pull", ctx]);
    assert!(out.contains("built-on-busybox"), "{out}");
}

/// What the docker CLI prints when a pull cannot reach Docker Hub (the tests have no
/// internet) or, with one, when Hub has no such repository.
fn hub_unreachable_or_unknown(err: &str, name: &str) -> bool {
    err.contains("Error response from daemon")
        && (err.contains("Get \"https://registry-1.docker.io/v2/\"")
            || err.contains(&format!("pull access denied for {name}")))
}

/// Berth's own registry is the default `registry-mirrors` entry and holds the seed
/// images, so the lessons' `rmi` then `pull` works offline, with Docker's output.
#[test]
fn offline_pull_of_a_seed_image_comes_from_the_mirror() {
    let b = Berth::start();
    // `docker info` lists the mirror, as Docker lists its registry-mirrors.
    let mirrors = b.ok(&["info", "-f", "{{json .RegistryConfig.Mirrors}}"]);
    assert_eq!(mirrors, format!("[\"http://{}/\"]", b.registry_addr()));
    let id = b.inspect("busybox", "{{.Id}}");
    b.ok(&["rmi", "busybox"]);
    let pull = b.ok(&["pull", "busybox"]);
    for want in [
        "Using default tag: latest",
        "latest: Pulling from library/busybox",
        "Pull complete",
        "Digest: sha256:",
        "Status: Downloaded newer image for busybox:latest",
        "docker.io/library/busybox:latest",
    ] {
        assert!(pull.contains(want), "{want:?} in {pull}");
    }
    // The same image as the seed, recorded under its Docker Hub name.
    assert_eq!(b.inspect("busybox", "{{.Id}}"), id);
    let digests = b.inspect("busybox", "{{json .RepoDigests}}");
    assert!(digests.starts_with("[\"busybox@sha256:"), "{digests}");
    assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "back"]), "back");
    assert!(b
        .ok(&["pull", "busybox"])
        .contains("Status: Image is up to date for busybox:latest"));
    // `run` of a removed seed pulls it back the same way.
    if cfg!(target_arch = "x86_64") {
        b.ok(&["rmi", "hello-world"]);
        let o = b.docker(&["run", "--rm", "hello-world"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("Unable to find image 'hello-world:latest' locally"),
            "{err}"
        );
        assert!(
            err.contains("latest: Pulling from library/hello-world"),
            "{err}"
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("Hello from Berth!"));
    }
    let found = b.ok(&["search", "--format", "{{.Name}}", "busybox"]);
    assert_eq!(found, "busybox");
    // A push of a Docker Hub name never goes to the mirror.
    b.ok(&["tag", "busybox", "student/mine:1"]);
    let (_, err) = b.fails(&["push", "student/mine:1"]);
    assert!(err.contains("docker.io"), "{err}");
    let repos = std::fs::read_dir(b.root.join("registry/repos/student"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(repos, 0, "nothing pushed to Berth's registry");
}

/// A name the mirror does not have goes on to Docker Hub, whose error is reported.
#[test]
fn pull_of_an_unknown_image_falls_through_to_docker_hub() {
    let b = Berth::start();
    let (code, err) = b.fails(&["pull", "nosuchimage"]);
    assert_eq!(code, 1);
    assert!(hub_unreachable_or_unknown(&err, "nosuchimage"), "{err}");
    // Likewise a tag the mirror lacks.
    let (_, err) = b.fails(&["pull", "busybox:1.0-not-there"]);
    assert!(hub_unreachable_or_unknown(&err, "busybox"), "{err}");
    assert!(b.ok(&["images", "-q", "nosuchimage"]).is_empty());
}

/// `--registry-mirror none`: pulls go to Docker Hub only, so offline a removed seed
/// stays removed (the registry still has it for `docker search`).
#[test]
fn without_a_mirror_a_removed_seed_does_not_come_back() {
    let b = Berth::start_with(&["--registry-mirror", "none"]);
    b.ok(&["rmi", "busybox"]);
    let (_, err) = b.fails(&["pull", "busybox"]);
    assert!(hub_unreachable_or_unknown(&err, "busybox"), "{err}");
    assert_eq!(
        b.ok(&["search", "--format", "{{.Name}}", "busybox"]),
        "busybox"
    );
}

/// Explicit mirrors are tried in order: one that refuses connections is skipped, the
/// next (another Berth's registry) serves the image.
#[test]
fn explicit_mirrors_are_tried_in_turn() {
    let a = Berth::start();
    let mirror = format!("http://{}", a.registry_addr());
    // A port nothing listens on: bind one, then free it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = format!("http://{dead}");
    let b = Berth::start_with(&[
        "--registry-listen",
        "none",
        "--registry-mirror",
        &dead,
        "--registry-mirror",
        &mirror,
    ]);
    b.ok(&["rmi", "busybox"]);
    let pull = b.ok(&["pull", "busybox"]);
    assert!(
        pull.contains("Status: Downloaded newer image for busybox:latest"),
        "{pull}"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "busybox", "echo", "via", "a"]),
        "via a"
    );
}
