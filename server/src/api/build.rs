//! `/build` (`docker build` with the classic builder) and `/commit` (`docker commit`).
//!
//! A build answers 200 at once and streams Docker's JSON lines: `{"stream": …}` for
//! the text, `{"aux": {"ID": …}}` with the image id, and `{"errorDetail": …,
//! "error": …}` when a step fails (the CLI prints it and exits 1).

use std::collections::BTreeMap;
use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use berth_engine::build::{self, BuildOptions};
use berth_engine::CommitOptions;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{blocking, qbool, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/build", post(build_image)).route("/commit", post(commit))
}

type Pairs = Query<Vec<(String, String)>>;

fn first(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn all_of(q: &[(String, String)], k: &str) -> Vec<String> {
    q.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect()
}

/// A JSON object query value (`buildargs`, `labels`); empty means none.
fn json_map<T: serde::de::DeserializeOwned + Default>(q: &[(String, String)], k: &str) -> Result<T, ApiError> {
    match first(q, k).filter(|v| !v.is_empty()) {
        Some(v) => serde_json::from_str(&v).map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}"))),
        None => Ok(T::default()),
    }
}

/// Build settings dockerd takes that Berth's builder does not implement, with the
/// value that means "not set" (what the CLI and the SDKs send, when they send it):
/// anything else is refused rather than ignored.
const NOT_IMPLEMENTED: &[(&str, &str, &[&str])] = &[
    ("cgroupparent", "--cgroup-parent", &[""]),
    ("isolation", "--isolation", &["", "default"]),
    ("squash", "--squash", &["", "0", "false", "False"]),
    ("remote", "a remote build context (a URL or Git repository)", &[""]),
    ("outputs", "--output", &["", "null", "[]"]),
    // 2 is BuildKit, which Berth does not have: only the classic builder (1).
    ("version", "BuildKit (build version 2)", &["", "1"]),
];

fn options(q: &[(String, String)]) -> Result<BuildOptions, ApiError> {
    for (key, what, unset) in NOT_IMPLEMENTED {
        if let Some(v) = q.iter().find(|(k, v)| k == key && !unset.contains(&v.as_str())).map(|(_, v)| v) {
            return Err(ApiError::bad_request(format!("{what} ({key}={v}) is not supported by Berth's builder")));
        }
    }
    let rm = first(q, "rm");
    Ok(BuildOptions {
        tags: all_of(q, "t").into_iter().filter(|t| !t.is_empty()).collect(),
        dockerfile: first(q, "dockerfile").filter(|d| !d.is_empty()).unwrap_or_else(|| "Dockerfile".into()),
        build_args: json_map::<BTreeMap<String, Option<String>>>(q, "buildargs")?,
        labels: json_map::<BTreeMap<String, String>>(q, "labels")?,
        target: first(q, "target").filter(|t| !t.is_empty()),
        no_cache: qbool(&first(q, "nocache")),
        // --rm is on unless the client says rm=0.
        rm: rm.is_none() || qbool(&rm),
        force_rm: qbool(&first(q, "forcerm")),
        quiet: qbool(&first(q, "q")),
        pull: qbool(&first(q, "pull")),
        platform: first(q, "platform").filter(|p| !p.is_empty()),
        // Repeated, one `NAME:IP` each, as the CLI and the SDKs send them.
        extra_hosts: all_of(q, "extrahosts").into_iter().filter(|h| !h.is_empty()).collect(),
        network_mode: first(q, "networkmode").unwrap_or_default(),
        cache_from: json_map::<Option<Vec<String>>>(q, "cachefrom")?.unwrap_or_default(),
        limits: build::StepLimits {
            memory: number(q, "memory")?,
            memory_swap: number(q, "memswap")?,
            cpu_shares: number(q, "cpushares")?,
            cpu_period: number(q, "cpuperiod")?,
            cpu_quota: number(q, "cpuquota")?,
            cpuset_cpus: first(q, "cpusetcpus").unwrap_or_default(),
            cpuset_mems: first(q, "cpusetmems").unwrap_or_default(),
            shm_size: number(q, "shmsize")?,
            ulimits: json_map::<Option<Vec<berth_engine::container::Ulimit>>>(q, "ulimits")?.unwrap_or_default(),
        },
    })
}

/// An integer query value (`memory`, `cpushares`, …); empty or absent is 0 (not set).
fn number(q: &[(String, String)], k: &str) -> Result<i64, ApiError> {
    match first(q, k).filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map_err(|_| ApiError::bad_request(format!("invalid {k}: {v:?} is not an integer"))),
        None => Ok(0),
    }
}

fn json_line(v: Value) -> Bytes {
    let mut b = v.to_string().into_bytes();
    b.push(b'\n');
    Bytes::from(b)
}

fn line(v: Value) -> Out {
    Out::Line(json_line(v))
}

/// What the build thread sends the handler.
enum Out {
    /// A line of the JSON stream.
    Line(Bytes),
    /// The build failed: an HTTP error if nothing was sent yet (as dockerd answers a
    /// build that fails before its first step), else the stream's error line.
    Failed(ApiError),
}

impl Out {
    fn into_bytes(self) -> Result<Bytes, io::Error> {
        match self {
            Out::Line(b) => Ok(b),
            Out::Failed(e) => Ok(json_line(json!({ "errorDetail": { "message": e.message }, "error": e.message }))),
        }
    }
}

/// What the handler passes to the build thread: the context body, piece by piece.
enum Piece {
    /// Chunks as hyper read them, several at once (not copied together).
    Data(Vec<Bytes>),
    /// The body ended normally; without it a closed channel means the upload broke
    /// off, which must not pass for a short (and so different) context.
    End,
    Failed(String),
}

/// The request body as a blocking reader for the build thread: the context is
/// unpacked (and its files hashed) as it arrives, with no spool file in between.
struct BodyReader {
    rx: mpsc::Receiver<Piece>,
    /// The chunks received and not yet read, the first partly read maybe.
    cur: std::collections::VecDeque<Bytes>,
    ended: bool,
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.cur.front().is_none_or(Bytes::is_empty) {
            if self.cur.pop_front().is_some() {
                continue;
            }
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.cur.extend(b),
                Some(Piece::End) => self.ended = true,
                Some(Piece::Failed(m)) => return Err(io::Error::other(format!("read build context: {m}"))),
                None => return Err(io::Error::other("read build context: the upload was cut off")),
            }
        }
        let Some(first) = self.cur.front_mut() else { return Ok(0) };
        let n = buf.len().min(first.len());
        buf[..n].copy_from_slice(&first.split_to(n));
        Ok(n)
    }
}

async fn build_image(State(s): State<ApiState>, Query(q): Pairs, body: Body) -> Result<Response, ApiError> {
    let opts = match options(&q) {
        Ok(opts) => opts,
        Err(e) => {
            // The client sends the whole context before it reads the answer: answering
            // first would show it a broken pipe instead of the message.
            let mut rest = body.into_data_stream();
            while let Some(Ok(_)) = rest.next().await {}
            return Err(e);
        }
    };
    // A few chunks in flight let receiving and unpacking overlap without buffering
    // much of a large context in memory.
    let (body_tx, body_rx) = mpsc::channel::<Piece>(16);
    let reader = BodyReader { rx: body_rx, cur: Default::default(), ended: false };
    let (tx, rx) = mpsc::channel::<Out>(256);
    tokio::task::spawn_blocking(move || {
        let quiet = opts.quiet;
        let text_tx = tx.clone();
        let mut out = |text: &str| {
            if !quiet {
                // A client that went away stops only the output; the build finishes
                // (and is cached), as with Docker.
                let _ = text_tx.blocking_send(line(json!({ "stream": text })));
            }
        };
        let result = build::build_keeping_scratch(&s.engine, &s.namespace, reader, &opts, &mut out);
        let scratch = match result {
            Ok((id, scratch)) => {
                let _ = tx.blocking_send(line(json!({ "aux": { "ID": id } })));
                if quiet {
                    // With -q the CLI prints the stream text it got: just the id.
                    let _ = tx.blocking_send(line(json!({ "stream": format!("{id}\n") })));
                } else {
                    let short = &id[7..19.min(id.len())];
                    let _ = tx.blocking_send(line(json!({ "stream": format!("Successfully built {short}\n") })));
                    for t in &opts.tags {
                        let shown = berth_engine::reference::Reference::parse(t).map(|r| r.familiar()).unwrap_or(t.clone());
                        let _ = tx.blocking_send(line(json!({ "stream": format!("Successfully tagged {shown}\n") })));
                    }
                }
                Some(scratch)
            }
            Err(e) => {
                tracing::info!("build failed: {e}");
                let _ = tx.blocking_send(Out::Failed(ApiError::from(e)));
                None
            }
        };
        // The answer ends when the last sender is gone; the unpacked context is
        // removed only after that, so the client does not wait for it.
        drop(text_tx);
        drop(tx);
        drop(scratch);
    });
    // The whole body is read before the answer starts, as when it was spooled: the
    // client sends it before it reads the answer.
    let mut stream = body.into_data_stream();
    let mut wanted = true;
    // The body comes in pieces of ~16 KiB; passing each one over would wake the build
    // thread thousands of times for a large context, so they go over in batches (of
    // the chunks themselves: copying them into one buffer costs a pass over the data).
    const BATCH: usize = 256 * 1024;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) if wanted => {
                pending_len += c.len();
                pending.push(c);
                if pending_len < BATCH {
                    continue;
                }
                pending_len = 0;
                // The build stops reading where the tar ends, or at the first error;
                // the rest is read and dropped so the client gets to the answer.
                if body_tx.send(Piece::Data(std::mem::take(&mut pending))).await.is_err() {
                    wanted = false;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let _ = body_tx.send(Piece::Failed(e.to_string())).await;
                return Err(ApiError::bad_request(format!("read build context: {e}")));
            }
        }
    }
    if wanted && !pending.is_empty() {
        let _ = body_tx.send(Piece::Data(pending)).await;
    }
    let _ = body_tx.send(Piece::End).await;
    // A build that fails before its first step (no Dockerfile, an empty or unparsable
    // one, a bad option) is an HTTP error, as from dockerd, with the status its kind
    // of error has; later failures are lines of the stream the client is already
    // reading.
    let mut rx = rx;
    let first = match rx.recv().await {
        Some(Out::Failed(e)) => return Err(e),
        other => other,
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = Body::from_stream(futures_util::stream::iter(first).chain(rest).map(Out::into_bytes));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `docker commit [-a author] [-m message] [-c change] CONTAINER [REPO[:TAG]]`.
async fn commit(State(s): State<ApiState>, Query(q): Pairs) -> Result<Response, ApiError> {
    let container = first(&q, "container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("container is required"))?;
    let reference = match (first(&q, "repo").filter(|r| !r.is_empty()), first(&q, "tag").filter(|t| !t.is_empty())) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r),
        (None, Some(_)) => return Err(ApiError::bad_request("tag is given without a repository")),
        (None, None) => None,
    };
    let opts = CommitOptions {
        reference,
        comment: first(&q, "comment").unwrap_or_default(),
        author: first(&q, "author").unwrap_or_default(),
        changes: all_of(&q, "changes"),
    };
    let id = blocking(move || Ok(s.engine.commit(&s.namespace, &container, &opts)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}
