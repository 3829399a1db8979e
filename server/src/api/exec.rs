//! `docker exec`: `/containers/{id}/exec` creates, `/exec/{id}/start` runs it over a
//! hijacked connection (or detached), `/exec/{id}/json` reports the exit code.

use std::io::{Read, Write};
use std::process::Child;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::detach::{parse_detach_keys, DetachScanner, Scan, DEFAULT_DETACH_KEYS};
use berth_engine::logs::{self, Stream};
use berth_engine::{ExecConfig, ExecIo};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{blocking, hijack, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(State(s): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let config: ExecConfig = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if !config.detach_keys.is_empty() {
        parse_detach_keys(&config.detach_keys)?;
    }
    let exec_id = blocking(move || Ok(s.engine.exec_create(&s.namespace, &id, config)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    /// How the output is sent, as dockerd decides it: raw with `Tty`, else framed
    /// (stdout and stderr told apart), whatever the exec was created with.
    tty: bool,
    /// The terminal's size to start with (API 1.42): `[height, width]`.
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    console_size: Vec<u16>,
}

async fn start(State(s): State<ApiState>, Path(exec_id): Path<String>, mut req: Request) -> Result<Response, ApiError> {
    let on = if req.headers().contains_key(axum::http::header::UPGRADE) { Some(hijack::take_upgrade(&mut req)?) } else { None };
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let b: StartBody = if body.is_empty() { StartBody::default() } else { serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))? };
    let rec = s.engine.exec_inspect(&s.namespace, &exec_id)?;
    let finish = {
        let (engine, ns, id) = (s.engine.clone(), s.namespace.clone(), exec_id.clone());
        move |code: i32| engine.exec_finished(&ns, &id, code)
    };
    let exec_start = {
        let (engine, ns, id, console) = (s.engine.clone(), s.namespace.clone(), exec_id.clone(), b.console_size.clone());
        move || -> Result<(Child, ExecIo), berth_engine::Error> {
            let started = engine.exec_start(&ns, &id)?;
            if let ([h, w], true) = (console.as_slice(), rec.config.tty) {
                // The CLI resizes right after too; a client that only sends this gets its size.
                let _ = engine.exec_resize(&ns, &id, *h, *w);
            }
            Ok(started)
        }
    };
    if b.detach || on.is_none() {
        let (mut child, io) = blocking(move || Ok(exec_start()?)).await?;
        // Nobody reads the output: drain it so the process never blocks on a full pipe.
        tokio::task::spawn_blocking(move || {
            let _master = io;
            let drains: Vec<_> = [child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>), child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>)]
                .into_iter()
                .flatten()
                .map(|mut r| std::thread::spawn(move || { let _ = std::io::copy(&mut r, &mut std::io::sink()); }))
                .collect();
            let code = child.wait().ok().and_then(|st| st.code()).unwrap_or(-1);
            for d in drains {
                let _ = d.join();
            }
            finish(code);
        });
        return Ok(StatusCode::OK.into_response());
    }
    let on = on.ok_or_else(|| ApiError::bad_request("exec start needs an upgraded connection"))?;
    // Detach keys work on a terminal only (dockerd's rule): without one, input is
    // passed through whole.
    let keys = match (rec.config.tty, rec.config.detach_keys.is_empty()) {
        (false, _) => vec![],
        (true, true) => parse_detach_keys(DEFAULT_DETACH_KEYS)?,
        (true, false) => parse_detach_keys(&rec.config.detach_keys)?,
    };
    let raw = b.tty;
    tokio::spawn(async move {
        let Some(mut client) = hijack::upgraded(on).await else { return };
        // The process starts once the connection is the client's, as on dockerd: a
        // client that reads the upgrade's headers with a buffered reader (the Python
        // SDK) would otherwise find the first output in that buffer, and lose it.
        match tokio::task::spawn_blocking(exec_start).await {
            Ok(Ok((child, io))) => relay_exec(client, child, io, raw, keys, finish).await,
            Ok(Err(e)) => {
                // The answer was sent already: the error goes down the stream, as dockerd writes it.
                let text = format!("{e}\r\n");
                let bytes = if raw { text.into_bytes() } else { logs::frame(Stream::Stdout, text.as_bytes()) };
                let _ = client.write_all(&bytes).await;
                let _ = client.shutdown().await;
            }
            Err(_) => {}
        }
    });
    Ok(hijack::upgraded_response(raw))
}

/// Pumps the exec's output to the client (raw when the start asked for a TTY, framed
/// otherwise) and the client's input to the exec; records the exit code before
/// closing, because the CLI asks for it as soon as the stream ends.
async fn relay_exec(client: hijack::Upgraded, mut child: Child, io: ExecIo, raw: bool, keys: Vec<u8>, finish: impl FnOnce(i32) + Send + 'static) {
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(32);
    let mut readers = Vec::new();
    let input: Option<Box<dyn Write + Send>>;
    let spawn_reader = |mut r: Box<dyn Read + Send>, stream: Option<Stream>, tx: mpsc::Sender<Vec<u8>>| {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = match stream {
                            Some(s) => logs::frame(s, &buf[..n]),
                            None => buf[..n].to_vec(),
                        };
                        if tx.blocking_send(chunk).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    match io {
        ExecIo::Tty(master) => {
            let m = std::fs::File::from(master);
            input = m.try_clone().ok().map(|w| Box::new(w) as Box<dyn Write + Send>);
            readers.push(spawn_reader(Box::new(m), if raw { None } else { Some(Stream::Stdout) }, out_tx.clone()));
        }
        ExecIo::Pipes => {
            input = child.stdin.take().map(|w| Box::new(w) as Box<dyn Write + Send>);
            if let Some(o) = child.stdout.take() {
                readers.push(spawn_reader(Box::new(o), if raw { None } else { Some(Stream::Stdout) }, out_tx.clone()));
            }
            if let Some(e) = child.stderr.take() {
                if raw {
                    // dockerd attaches no stderr to a raw stream: it is read and dropped,
                    // so the process never blocks on a full pipe.
                    readers.push(std::thread::spawn(move || {
                        let mut e = e;
                        let _ = std::io::copy(&mut e, &mut std::io::sink());
                    }));
                } else {
                    readers.push(spawn_reader(Box::new(e), Some(Stream::Stderr), out_tx.clone()));
                }
            }
        }
    }
    drop(out_tx);
    let (mut cr, mut cw) = tokio::io::split(client);
    // Client → process, on a thread since the process side is blocking I/O.
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    let detach = tokio::sync::Notify::new();
    let detach = std::sync::Arc::new(detach);
    if let Some(mut w) = input {
        std::thread::spawn(move || {
            while let Ok(Some(data)) = in_rx.recv() {
                if w.write_all(&data).is_err() {
                    break;
                }
            }
            // Dropping `w` closes the process's stdin (non-TTY) on client EOF.
        });
    }
    let detach2 = detach.clone();
    let reader = tokio::spawn(async move {
        let mut scanner = DetachScanner::new(keys);
        let mut buf = vec![0u8; 8192];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = in_tx.send(None);
                    return;
                }
                Ok(n) => match scanner.feed(&buf[..n]) {
                    Scan::Forward(d) => {
                        let _ = in_tx.send(Some(d));
                    }
                    Scan::Detach(d) => {
                        let _ = in_tx.send(Some(d));
                        detach2.notify_one();
                        return;
                    }
                },
            }
        }
    });
    let detached = loop {
        tokio::select! {
            chunk = out_rx.recv() => match chunk {
                Some(c) => {
                    if cw.write_all(&c).await.is_err() {
                        break false;
                    }
                }
                None => break false,
            },
            _ = detach.notified() => break true,
        }
    };
    reader.abort();
    if detached {
        // The process keeps running; record its exit whenever it comes.
        tokio::task::spawn_blocking(move || {
            let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
            finish(code);
        });
        let _ = cw.shutdown().await;
        return;
    }
    let code = tokio::task::spawn_blocking(move || {
        for r in readers {
            let _ = r.join();
        }
        child.wait().ok().and_then(|s| s.code()).unwrap_or(-1)
    })
    .await
    .unwrap_or(-1);
    tokio::task::spawn_blocking(move || finish(code)).await.ok();
    let _ = cw.shutdown().await;
}

async fn resize(State(s): State<ApiState>, Path(exec_id): Path<String>, Query(q): Query<std::collections::BTreeMap<String, String>>) -> Result<Response, ApiError> {
    let get = |k: &str| q.get(k).and_then(|v| v.parse::<u16>().ok()).ok_or_else(|| ApiError::bad_request(format!("invalid {k}")));
    let (h, w) = (get("h")?, get("w")?);
    s.engine.exec_resize(&s.namespace, &exec_id, h, w)?;
    Ok(StatusCode::OK.into_response())
}

async fn inspect(State(s): State<ApiState>, Path(exec_id): Path<String>) -> Result<Json<Value>, ApiError> {
    let r = s.engine.exec_inspect(&s.namespace, &exec_id)?;
    let c = &r.config;
    Ok(Json(json!({
        "ID": r.id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": c.tty, "entrypoint": c.cmd.first(), "arguments": c.cmd.get(1..).unwrap_or(&[]),
            "privileged": c.privileged, "user": c.user,
        },
        "OpenStdin": c.attach_stdin, "OpenStderr": c.attach_stderr, "OpenStdout": c.attach_stdout,
        "CanRemove": false, "ContainerID": r.container_id, "DetachKeys": c.detach_keys, "Pid": r.pid,
    })))
}
