//! `berth serve`: open the engine, seed images, listen on every `--docker-host`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::ServiceExt;
use berth_engine::registry::guard::Guard;
use berth_engine::{Engine, EngineOptions};
use tower::Layer;

use crate::api::{self, ApiState};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// State directory: images, containers, volumes.
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Where the Docker Engine API listens: unix:///PATH or tcp://127.0.0.1:PORT.
    /// Repeatable; each serves the `default` namespace.
    #[arg(long = "docker-host", default_value = "unix:///var/run/berth.sock")]
    pub docker_hosts: Vec<String>,
    /// Web listener for the playground and its lab sessions (HOST:PORT).
    #[arg(long)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub lab: crate::lab::LabOptions,
    /// The static busybox the seed image is made from.
    #[arg(long, default_value = berth_engine::seed::BUSYBOX_PATH)]
    pub busybox: PathBuf,
    /// A registry (HOST[:PORT]) to reach over plain HTTP; loopback ones always are. Repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Berth's own registry (`--registry-listen`, `--registry-users`, `--mirror`).
    #[command(flatten)]
    pub registry: crate::registry::RegistryOptions,
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let helper_exe = std::env::current_exe().context("find the berth binary")?;
    let engine = {
        let o = EngineOptions { root: opts.root.clone(), helper_exe, busybox: opts.busybox.clone(), insecure_registries: opts.insecure_registries.clone(), registry_mirrors: opts.registry.engine_mirrors()? };
        tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Engine>> {
            let e = Engine::open(o).context("open the engine")?;
            e.seed_images("default").context("seed images")?;
            Ok(e)
        })
        .await??
    };
    let state = ApiState { engine, namespace: "default".into() };
    let mut tasks = tokio::task::JoinSet::new();
    // Bound before the Docker API, so once that answers the registry's address is known.
    let registry_addr = crate::registry::start(&opts.registry, &opts.root, &mut tasks).await?;
    crate::registry::use_as_mirror(&state.engine, &opts.registry, registry_addr).await;
    // Before any lab session can ask for a pull or push.
    state.engine.set_lab_guard(Guard { allow: opts.lab.registry_allow.clone(), own: registry_addr });
    if let Some(addr) = &opts.listen {
        if !crate::web::embedded() {
            tracing::warn!("this binary has no playground built in: run scripts/build-playground playground-web/dist, then rebuild");
        }
        if let Some(why) = state.engine.linux_missing() {
            tracing::warn!("lab sessions cannot start here: their workstations are Linux containers ({why})");
        }
        let lab = crate::lab::Lab::open(state.engine.clone(), opts.lab.clone()).await.context("open the lab")?;
        let app = crate::web::routes()
            .merge(crate::lab::routes(lab.clone()))
            .merge(crate::classroom::web::routes(lab))
            .layer(axum::middleware::from_fn(crate::web::no_store_api));
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
        tracing::info!("playground on http://{addr}/");
        // The client's address: the classroom's rate limits are per address.
        tasks.spawn(async move { axum::serve(l, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
    }
    for host in &opts.docker_hosts {
        let svc = tower::util::MapRequestLayer::new(api::strip_version).layer(api::app(state.clone()));
        if let Some(path) = host.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
            if let Some(dir) = std::path::Path::new(path).parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            }
            let l = tokio::net::UnixListener::bind(path).with_context(|| format!("listen on {host}"))?;
            tracing::info!("Docker API on {host}");
            tasks.spawn(async move { axum::serve(l, svc.into_make_service()).await });
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {host}"))?;
            tracing::info!("Docker API on {host}");
            tasks.spawn(async move { axum::serve(l, svc.into_make_service()).await });
        } else {
            bail!("unsupported --docker-host {host}: use unix:///PATH or tcp://HOST:PORT");
        }
    }
    tokio::select! {
        r = tasks.join_next() => {
            match r {
                Some(Ok(Err(e))) => Err(e).context("API server failed"),
                _ => Ok(()),
            }
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down; containers keep running under their shims");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
