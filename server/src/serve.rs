//! `berth serve`: open the engine, seed images, listen on every `--docker-host`.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Router, ServiceExt};
use berth_engine::registry::guard::Guard;
use berth_engine::{Engine, EngineOptions};
use tower::Layer;

use crate::api::{self, ApiState};
use crate::changes::Changes;
use crate::classroom::labs::Labs;
use crate::classroom::room::{Classroom, KeyPlace};
use crate::classroom::roster::Roster;
use crate::cluster::{ClusterOptions, Role};
use crate::metrics::{Listener, Metrics, MetricsToken, Parts, Requests};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// State directory: images, containers, volumes.
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Where the Docker Engine API listens: unix:///PATH or tcp://127.0.0.1:PORT.
    /// Repeatable; each serves the `default` namespace.
    #[arg(long = "docker-host", default_value = "unix:///var/run/berth.sock")]
    pub docker_hosts: Vec<String>,
    /// Web listener for the playground and its lab sessions (HOST:PORT); also serves
    /// /healthz, /readyz and /metrics.
    #[arg(long)]
    pub listen: Option<String>,
    /// A bearer token that may read /metrics from anywhere (without it, only clients on
    /// this machine may).
    #[arg(long = "metrics-token", value_name = "TOKEN", env = "BERTH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<MetricsToken>,
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
    /// The role in a cluster (`--role`, `--node-name`, `--advertise-url`, `--cluster-secret`).
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    opts.cluster.check()?;
    if opts.cluster.role == Role::Hub {
        return serve_hub(opts).await;
    }
    if opts.cluster.role == Role::Node && opts.listen.is_none() {
        bail!("--role node needs --listen: the hub reaches the node's lab there");
    }
    let requests = Requests::default();
    let parts = Arc::new(Parts::new(opts.cluster.role));
    let mut tasks = tokio::task::JoinSet::new();
    // The web listener first: its probes answer (alive, not ready) while the engine and
    // the lab open, which takes a while when a restart reopens many sessions.
    let web = match &opts.listen {
        Some(addr) => Some(listen_web(addr, Metrics::new(parts.clone(), &requests, opts.metrics_token.clone()), &requests, &mut tasks).await?),
        None => None,
    };
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
    let _ = parts.engine.set(engine.clone());
    let state = ApiState { engine, namespace: "default".into() };
    // Bound before the Docker API, so once that answers the registry's address is known.
    let registry_addr = crate::registry::start(&opts.registry, &opts.root, &mut tasks).await?;
    crate::registry::use_as_mirror(&state.engine, &opts.registry, registry_addr).await;
    // Before any lab session can ask for a pull or push.
    state.engine.set_lab_guard(Guard { allow: opts.lab.registry_allow.clone(), own: registry_addr });
    if let Some(app_slot) = web {
        if !crate::web::embedded() {
            tracing::warn!("this binary has no playground built in: run scripts/build-playground playground-web/dist, then rebuild");
        }
        if let Some(why) = state.engine.linux_missing() {
            tracing::warn!("lab sessions cannot start here: their workstations are Linux containers ({why})");
        }
        let url = opts.lab.database.url(&opts.root)?;
        let db = crate::lab::Db::connect(&url).await?;
        tracing::info!("lab database: {url}");
        let roster = Arc::new(Roster::load(&db).await?);
        let changes = Changes::default();
        let shared = crate::lab::Shared { db: db.clone(), roster: roster.clone(), changes: changes.clone() };
        let lab = crate::lab::Lab::open(state.engine.clone(), opts.lab.clone(), &opts.cluster.node_name, requests.clone(), shared).await.context("open the lab")?;
        let mut app = crate::web::routes().merge(crate::lab::routes(lab.clone()));
        match (opts.cluster.role, &opts.cluster.secret, &opts.cluster.advertise_url) {
            (Role::Node, Some(secret), Some(url)) => {
                // The classroom is the hub's; a node answers its hub's questions about its labs.
                app = app.merge(crate::cluster::node::routes(lab.clone())).layer(axum::middleware::from_fn_with_state(Arc::new(secret.clone()), crate::cluster::require_secret));
                let accepting = state.engine.linux_missing().is_none();
                crate::cluster::heartbeat(lab.clone(), opts.cluster.node_name.clone(), url.clone(), accepting, opts.root.clone());
                tracing::info!(node = %opts.cluster.node_name, url = %url, "lab node: answering its hub");
            }
            _ => {
                let room = Classroom::new(db, opts.lab.clone(), changes, Labs::Local(lab.clone()), KeyPlace::Root(opts.root.clone()))?;
                app = app.merge(crate::classroom::web::routes(room));
            }
        }
        let app = app.layer(axum::middleware::from_fn(crate::web::no_store_api));
        let _ = app_slot.set(requests.instrument(app, Listener::Web));
        let _ = parts.lab.set(lab);
    }
    for host in &opts.docker_hosts {
        let svc = tower::util::MapRequestLayer::new(api::strip_version).layer(requests.instrument(api::app(state.clone()), Listener::Docker));
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
            if let (Role::Node, Some(lab), Some(url)) = (opts.cluster.role, parts.lab.get(), &opts.cluster.advertise_url) {
                // The hub places no more sessions here while the node is away.
                crate::cluster::leaving(lab, &opts.cluster.node_name, url).await;
            }
            tracing::info!("shutting down; containers keep running under their shims");
            Ok(())
        }
    }
}

/// `berth serve --role hub`: the playground in front of lab nodes (no engine here).
async fn serve_hub(opts: ServeOptions) -> anyhow::Result<()> {
    let addr = opts.listen.as_deref().context("--role hub needs --listen: the playground's address")?;
    let secret = opts.cluster.secret.clone().context("--role hub needs --cluster-secret")?;
    let requests = Requests::default();
    let parts = Arc::new(Parts::new(Role::Hub));
    let mut tasks = tokio::task::JoinSet::new();
    let slot = listen_web(addr, Metrics::new(parts.clone(), &requests, opts.metrics_token.clone()), &requests, &mut tasks).await?;
    let url = opts.lab.database.url(&opts.root)?;
    if url.backend() == crate::lab::db::Backend::Sqlite {
        tracing::warn!("the hub's database is a SQLite file ({url}): only nodes on this machine can share it; use PostgreSQL (--database) for nodes elsewhere");
        std::fs::create_dir_all(&opts.root).with_context(|| format!("create {}", opts.root.display()))?;
    }
    let db = crate::lab::Db::connect(&url).await.context("open the database")?;
    tracing::info!("hub database: {url}");
    let changes = Changes::default();
    let hub = crate::cluster::hub::Hub::new(db.clone(), secret)?;
    hub.clone().follow_nodes(changes.clone());
    let room = Classroom::new(db.clone(), opts.lab.clone(), changes, Labs::Remote(hub.clone()), KeyPlace::Database)?;
    let app = crate::web::routes()
        .merge(crate::cluster::hub::routes(hub))
        .merge(crate::classroom::web::routes(room))
        .layer(axum::middleware::from_fn(crate::web::no_store_api));
    let _ = slot.set(requests.instrument(app, Listener::Web));
    let _ = parts.hub_db.set(db);
    tokio::select! {
        r = tasks.join_next() => {
            match r {
                Some(Ok(Err(e))) => Err(e).context("web server failed"),
                _ => Ok(()),
            }
        }
        _ = shutdown_signal() => {
            tracing::info!("hub shutting down");
            Ok(())
        }
    }
}

/// Binds the web listener and serves its probes and `/metrics` at once; everything else
/// there (the playground, lab and classroom) answers 503 until the app is put in the
/// slot returned.
async fn listen_web(addr: &str, metrics: Arc<Metrics>, requests: &Requests, tasks: &mut tokio::task::JoinSet<std::io::Result<()>>) -> anyhow::Result<Arc<OnceLock<Router>>> {
    let slot: Arc<OnceLock<Router>> = Default::default();
    let app = {
        let slot = slot.clone();
        tower::service_fn(move |req: Request| {
            let app = slot.get().cloned();
            async move {
                Ok::<_, Infallible>(match app {
                    Some(app) => tower::ServiceExt::oneshot(app, req).await.into_response(),
                    None => (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")], "Berth is starting: try again in a few seconds\n").into_response(),
                })
            }
        })
    };
    // Timed here are the probes and /metrics; the app times its own requests (its
    // router knows their routes), so the fallback is added after the layer.
    let router = requests.instrument(metrics.routes(), Listener::Web).fallback_service(app);
    let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    tracing::info!("playground on http://{addr}/ (/healthz, /readyz, /metrics)");
    // The client's address: the classroom's rate limits are per address, and /metrics
    // answers loopback clients without a token.
    tasks.spawn(async move { axum::serve(l, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
    Ok(slot)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
