//! `/images/...`: list, inspect, tag, remove, history, save (`get`), load, import
//! (`create?fromSrc=`), prune; and the registry side: pull (`create?fromImage=`),
//! push, search, and `/auth` (`docker login`). Pull and push stream Docker's JSON
//! progress lines, rendered from the engine's typed [`Progress`] events.
//!
//! Image names may contain slashes (`localhost:5000/a/b:tag`), so everything below
//! `/images/` that is not one of the fixed endpoints goes through one catch-all route
//! per method and is dispatched on its last path segment (`json`, `history`, `get`,
//! `tag`), the way Docker's own router reads `{name:.*}/json`.

use std::collections::BTreeMap;
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::archive::{Loaded, SaveItem};
use berth_engine::image::RemovedItem;
use berth_engine::platform::Platform;
use berth_engine::reference::Reference;
use berth_engine::registry::{Credentials, Progress, ProgressFn, RegistryError};
use berth_engine::ImageSummary;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::system::parse_filters;
use crate::chunks::ChunkReader;
use super::{blocking, qbool, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/get", get(save_many))
        .route("/images/load", post(load))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/search", get(search))
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(distribution))
        .route("/images/{*rest}", get(get_named).post(post_named).delete(remove))
}

/// Query strings as pairs: `names`, `changes` may repeat.
type Pairs = Query<Vec<(String, String)>>;

fn first(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn all_of(q: &[(String, String)], k: &str) -> Vec<String> {
    q.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect()
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Splits `NAME/suffix` (the catch-all) into the image name and the verb.
fn split_verb(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start_matches('/');
    match rest.rsplit_once('/') {
        Some((name, verb)) => (name, verb),
        None => (rest, ""),
    }
}

fn page_not_found(method: &str, rest: &str) -> ApiError {
    ApiError::not_found(format!("page not found: {method} /images/{}", rest.trim_start_matches('/')))
}

async fn get_named(s: State<ApiState>, Path(rest): Path<String>, Query(q): Pairs) -> Result<Response, ApiError> {
    let (name, verb) = split_verb(&rest);
    if name.is_empty() || !matches!(verb, "json" | "history" | "get") {
        return Err(page_not_found("GET", &rest));
    }
    check_platforms(&s, &[name.to_string()], &q).await?;
    match verb {
        "json" => inspect(s, name.to_string()).await,
        "history" => history(s, name.to_string()).await,
        _ => save(s, vec![name.to_string()]).await,
    }
}

/// The API's `platform` queries (JSON OCI platforms, repeatable).
fn platforms(q: &[(String, String)]) -> Result<Vec<Platform>, ApiError> {
    Ok(all_of(q, "platform").iter().filter(|p| !p.is_empty()).map(|p| Platform::from_json(p)).collect::<Result<_, _>>()?)
}

/// `image inspect`, `history` and `save` with `--platform`: an image here has one
/// platform, so one of those asked for must be it (else Docker's NotFound). Names
/// that resolve to nothing are left to the handler's own 404.
async fn check_platforms(s: &ApiState, names: &[String], q: &[(String, String)]) -> Result<(), ApiError> {
    let wanted = platforms(q)?;
    if wanted.is_empty() {
        return Ok(());
    }
    let (engine, ns, names) = (s.engine.clone(), s.namespace.clone(), names.to_vec());
    blocking(move || {
        for name in &names {
            if let Ok((_, c)) = engine.image_config(&ns, name) {
                if !wanted.iter().any(|p| p.matches_image(&c.os, &c.architecture)) {
                    return Err(berth_engine::error::Error::NotFound(wanted[0].mismatch(name, &c.os, &c.architecture)).into());
                }
            }
        }
        Ok(())
    })
    .await
}

async fn post_named(s: State<ApiState>, Path(rest): Path<String>, Query(q): Pairs, headers: HeaderMap) -> Result<Response, ApiError> {
    match split_verb(&rest) {
        (name, "tag") if !name.is_empty() => tag(s, name.to_string(), q).await,
        (name, "push") if !name.is_empty() => push(s, name.to_string(), q, &headers).await,
        _ => Err(page_not_found("POST", &rest)),
    }
}

fn ts(t: Option<DateTime<Utc>>) -> i64 {
    t.map_or(0, |t| t.timestamp())
}

pub(super) fn summary_json(s: &ImageSummary, tags: &[String], version: super::ApiVersion) -> Value {
    let mut v = json!({
        "Id": s.id,
        "ParentId": s.parent,
        "RepoTags": tags,
        "RepoDigests": s.repo_digests,
        "Created": ts(s.created),
        "Size": s.size,
        "SharedSize": -1,
        "Labels": if s.labels.is_empty() { Value::Null } else { json!(s.labels) },
        "Containers": s.containers,
    });
    // API 1.44 dropped `VirtualSize` (always `Size` since images share no layers
    // with containers' counts); older clients still read it.
    if version.below(1, 44) {
        v["VirtualSize"] = json!(s.size);
    }
    v
}

/// Go's `path.Match`, which Docker's `reference=` filter uses: `*` and `?` never
/// match `/`; `[...]` classes with ranges and `^`/`!` negation.
fn glob(pattern: &str, s: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // Returns (matched, length of the class in p) or None when malformed.
        let mut i = 1;
        let negate = matches!(p.get(1), Some('^') | Some('!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() && (p[i] != ']' || first) {
            first = false;
            let lo = p[i];
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
                matched |= lo <= c && c <= p[i + 2];
                i += 3;
            } else {
                matched |= lo == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((matched != negate, i + 1))
    }
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).take_while(|&i| i == 0 || s[i - 1] != '/').any(|i| go(&p[1..], &s[i..])),
            Some('?') => s.first().is_some_and(|c| *c != '/') && go(&p[1..], &s[1..]),
            Some('[') => match (s.first(), class(p, s.first().copied().unwrap_or('\0'))) {
                (Some(c), Some((true, n))) if *c != '/' => go(&p[n..], &s[1..]),
                _ => false,
            },
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && go(&p[2..], &s[1..]),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    go(&p, &s)
}

/// Docker's `reference.FamiliarMatch`: the pattern against `name:tag` or `name`.
fn reference_matches(pattern: &str, familiar_tag: &str) -> bool {
    let name = Reference::parse(familiar_tag).map(|r| r.familiar_name()).unwrap_or_default();
    glob(pattern, familiar_tag) || glob(pattern, &name)
}

fn labels_match(labels: &BTreeMap<String, String>, want: &[String], negate: bool) -> bool {
    want.iter().all(|l| {
        let has = match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        };
        has != negate
    })
}

fn bool_filter(f: &BTreeMap<String, Vec<String>>, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(values) = f.get(key) else { return Ok(None) };
    let mut out = None;
    for v in values {
        let b = match v.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(ApiError::bad_request(format!("Invalid filter '{key}={v}'"))),
        };
        out = Some(b);
    }
    Ok(out)
}

/// `until` values as Docker takes them: a duration before now (`24h`, `90m`), a Unix
/// timestamp, or an RFC 3339 date or time.
fn parse_until(v: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid filter 'until={v}': use a duration (24h), a Unix timestamp or an RFC 3339 time"));
    let now = Utc::now();
    if let Some((num, unit)) = v.find(|c: char| c.is_ascii_alphabetic()).map(|i| v.split_at(i)) {
        if let Ok(n) = num.parse::<f64>() {
            let secs = match unit {
                "h" => n * 3600.0,
                "m" => n * 60.0,
                "s" => n,
                "ms" => n / 1000.0,
                _ => return Err(bad()),
            };
            return Ok(now - chrono::Duration::milliseconds((secs * 1000.0) as i64));
        }
    }
    if let Ok(secs) = v.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    }
    Err(bad())
}

async fn list(State(s): State<ApiState>, version: super::ApiVersion, Query(q): Pairs) -> Result<Json<Vec<Value>>, ApiError> {
    s.engine.note_request(&s.namespace, "images", &[]);
    let filters = parse_filters(&first(&q, "filters"))?;
    for k in filters.keys() {
        if !["dangling", "label", "label!", "before", "since", "reference", "until"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let dangling = bool_filter(&filters, "dangling")?;
    let until = filters.get("until").and_then(|v| v.last()).map(|v| parse_until(v)).transpose()?;
    let all = qbool(&first(&q, "all"));
    let out = blocking(move || {
        let e = &s.engine;
        let created_of = |key: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
            match filters.get(key).and_then(|v| v.last()) {
                Some(name) => Ok(e.inspect_image(&s.namespace, name)?.0.created),
                None => Ok(None),
            }
        };
        let (before, since) = (created_of("before")?, created_of("since")?);
        let patterns = filters.get("reference").cloned().unwrap_or_default();
        let mut out = Vec::new();
        for img in e.list_images(&s.namespace, all)? {
            let is_dangling = img.repo_tags.is_empty();
            if dangling.is_some_and(|d| d != is_dangling)
                || !labels_match(&img.labels, filters.get("label").map_or(&[][..], |v| v), false)
                || !labels_match(&img.labels, filters.get("label!").map_or(&[][..], |v| v), true)
                || before.is_some_and(|b| img.created.is_none_or(|c| c >= b))
                || since.is_some_and(|b| img.created.is_none_or(|c| c <= b))
                || until.is_some_and(|u| img.created.is_none_or(|c| c >= u))
            {
                continue;
            }
            // Like Docker, a reference filter also narrows the tags shown.
            let tags: Vec<String> = if patterns.is_empty() {
                img.repo_tags.clone()
            } else {
                img.repo_tags.iter().filter(|t| patterns.iter().any(|p| reference_matches(p, t))).cloned().collect()
            };
            if !patterns.is_empty() && tags.is_empty() {
                continue;
            }
            out.push(summary_json(&img, &tags, version));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

async fn inspect(State(s): State<ApiState>, name: String) -> Result<Response, ApiError> {
    s.engine.note_request(&s.namespace, "inspect", &[("target", &name), ("type", "image")]);
    let (img, config, tagged) = blocking(move || Ok(s.engine.inspect_image(&s.namespace, &name)?)).await?;
    let extra = |k: &str| config.extra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut v = json!({
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": img.parent,
        "Comment": extra("comment"),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": extra("docker_version"),
        "Author": config.author.clone().unwrap_or_default(),
        "Config": config.config,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": img.size,
        "GraphDriver": { "Name": "overlayfs", "Data": {} },
        "RootFS": { "Type": config.rootfs.kind, "Layers": config.rootfs.diff_ids },
        "Metadata": {
            "LastTagTime": tagged.map_or("0001-01-01T00:00:00Z".to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        },
    });
    if let Some(variant) = config.extra.get("variant") {
        v["Variant"] = variant.clone();
    }
    Ok(Json(v).into_response())
}

async fn history(State(s): State<ApiState>, name: String) -> Result<Response, ApiError> {
    s.engine.note_request(&s.namespace, "history", &[("image", &name)]);
    let out = blocking(move || {
        let rows = s.engine.history(&s.namespace, &name)?;
        let mut out = Vec::new();
        for (id, h, size) in rows {
            let tags = match &id {
                Some(id) => json!(s.engine.image_summary(&s.namespace, id)?.repo_tags),
                None => Value::Null,
            };
            let created = h.created.as_deref().and_then(|c| DateTime::parse_from_rfc3339(c).ok()).map_or(0, |t| t.timestamp());
            out.push(json!({
                "Id": id.unwrap_or_else(|| "<missing>".into()),
                "Created": created,
                "CreatedBy": h.created_by.unwrap_or_default(),
                "Tags": tags,
                "Size": size,
                "Comment": h.comment.unwrap_or_default(),
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

async fn tag(State(s): State<ApiState>, name: String, q: Vec<(String, String)>) -> Result<Response, ApiError> {
    let repo = nonempty(first(&q, "repo")).ok_or_else(|| ApiError::bad_request("repository name must have at least one component"))?;
    let target = match nonempty(first(&q, "tag")) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    blocking(move || Ok(s.engine.tag_image(&s.namespace, &name, &target)?)).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(State(s): State<ApiState>, Path(rest): Path<String>, Query(q): Pairs) -> Result<Json<Vec<Value>>, ApiError> {
    let name = rest.trim_start_matches('/').to_string();
    if name.is_empty() {
        return Err(page_not_found("DELETE", &rest));
    }
    let force = qbool(&first(&q, "force"));
    let removed = blocking(move || Ok(s.engine.remove_image(&s.namespace, &name, force)?)).await?;
    Ok(Json(removed_json(&removed)))
}

fn removed_json(items: &[RemovedItem]) -> Vec<Value> {
    items
        .iter()
        .map(|r| match r {
            RemovedItem::Untagged(t) => json!({ "Untagged": t }),
            RemovedItem::Deleted(d) => json!({ "Deleted": d }),
        })
        .collect()
}

async fn prune(State(s): State<ApiState>, Query(q): Pairs) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(&first(&q, "filters"))?;
    for k in filters.keys() {
        if !["dangling", "until", "label", "label!"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    // Docker prunes only dangling images unless told `dangling=false` (`prune -a`).
    let all = bool_filter(&filters, "dangling")? == Some(false);
    let until = filters.get("until").and_then(|v| v.last()).map(|v| parse_until(v)).transpose()?;
    let (removed, reclaimed) = blocking(move || {
        let keep = |img: &ImageSummary| {
            until.is_none_or(|u| img.created.is_some_and(|c| c < u))
                && labels_match(&img.labels, filters.get("label").map_or(&[][..], |v| v), false)
                && labels_match(&img.labels, filters.get("label!").map_or(&[][..], |v| v), true)
        };
        Ok(s.engine.prune_images_where(&s.namespace, all, &keep)?)
    })
    .await?;
    let deleted = if removed.is_empty() { Value::Null } else { json!(removed_json(&removed)) };
    Ok(Json(json!({ "ImagesDeleted": deleted, "SpaceReclaimed": reclaimed })))
}

/// A request body as a blocking `Read` for engine code in `spawn_blocking`.
/// Returns the reader and the task pumping the body. Once the reader is dropped
/// (the engine is done, or gave up early on bad input) the task reads the rest
/// of the body and discards it: answering before the upload is over would make
/// the client see "broken pipe" instead of our error message. Await the task
/// before answering.
fn body_reader(body: Body) -> (ChunkReader, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let pump = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut forwarding = true;
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(io::Error::other);
            let failed = item.is_err();
            if forwarding && tx.send(item).await.is_err() {
                forwarding = false;
            }
            if failed {
                break;
            }
        }
    });
    (ChunkReader::new(rx), pump)
}

/// A blocking `Write` feeding a streamed response body in 64 KiB chunks. A client
/// that goes away shows up as a broken pipe, which stops the writer.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

async fn save_many(s: State<ApiState>, Query(q): Pairs) -> Result<Response, ApiError> {
    let names = all_of(&q, "names");
    check_platforms(&s, &names, &q).await?;
    save(s, names).await
}

/// `docker save`: names are checked first, so an unknown one is a proper 404; then
/// the tar streams. A failure mid-stream aborts the body, so the client sees an
/// error instead of a silently truncated archive.
async fn save(State(s): State<ApiState>, names: Vec<String>) -> Result<Response, ApiError> {
    let (engine, ns) = (s.engine.clone(), s.namespace.clone());
    let plan: Vec<SaveItem> = blocking(move || Ok(engine.save_plan(&ns, &names)?)).await?;
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(64 * 1024) };
        if let Err(e) = s.engine.save_images(&s.namespace, &plan, &mut w) {
            tracing::warn!("docker save failed: {e}");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

fn json_lines(lines: impl IntoIterator<Item = Value>) -> Response {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

fn loaded_lines(loaded: &[Loaded]) -> Vec<Value> {
    let mut out = Vec::new();
    for l in loaded {
        for (tag, old) in &l.replaced {
            out.push(json!({ "stream": format!("The image {tag} already exists, renaming the old one with ID {old} to empty string\n") }));
        }
        if l.tags.is_empty() {
            out.push(json!({ "stream": format!("Loaded image ID: {}\n", l.id) }));
        }
        for t in &l.tags {
            out.push(json!({ "stream": format!("Loaded image: {t}\n") }));
        }
    }
    out
}

/// `docker load`. `quiet` only hides progress bars in Docker, and we draw none.
/// Like dockerd, the answer is 200 whatever happens: a load that fails (not a tar, no
/// manifest, cut short) says so in an error line of the stream, which the CLI prints
/// and the SDKs raise (docker-py's `ImageLoadError`).
async fn load(State(s): State<ApiState>, Query(q): Pairs, body: Body) -> Result<Response, ApiError> {
    let wanted = platforms(&q)?;
    let (reader, pump) = body_reader(body);
    let loaded = blocking(move || {
        let loaded = s.engine.load_images(&s.namespace, reader)?;
        // `--platform`: an archive's image is of one platform; one of another is
        // reported (it is loaded all the same: an image here has no other variant).
        for l in &loaded {
            let (_, c) = s.engine.image_config(&s.namespace, &l.id)?;
            if !wanted.is_empty() && !wanted.iter().any(|p| p.matches_image(&c.os, &c.architecture)) {
                let name = l.tags.first().unwrap_or(&l.id);
                return Err(berth_engine::error::Error::NotFound(wanted[0].mismatch(name, &c.os, &c.architecture)).into());
            }
        }
        Ok(loaded)
    })
    .await;
    let _ = pump.await;
    Ok(match loaded {
        Ok(loaded) => json_lines(loaded_lines(&loaded)),
        Err(e) => json_lines([json!({ "errorDetail": { "message": e.message }, "error": e.message })]),
    })
}

/// `POST /images/create`: a pull (`fromImage`, streaming progress) or `docker import`
/// (`fromSrc`).
async fn create(State(s): State<ApiState>, Query(q): Pairs, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    if let Some(image) = nonempty(first(&q, "fromImage")) {
        // The CLI sends the tag (or a digest) separately; `fromImage` may carry one too.
        let name = match nonempty(first(&q, "tag")) {
            Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
            Some(t) => format!("{image}:{t}"),
            None => image,
        };
        let creds = registry_auth(&headers);
        // `--platform`: checked before the stream starts, so a bad one is a plain 400.
        let platform = nonempty(first(&q, "platform")).map(|p| Platform::parse(&p)).transpose()?;
        return progress_stream(move |progress| s.engine.pull_image_for(&s.namespace, &name, platform.as_ref(), creds.as_ref(), progress).map(|_| ())).await;
    }
    let src = nonempty(first(&q, "fromSrc")).ok_or_else(|| ApiError::bad_request("either fromImage or fromSrc is required"))?;
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from a URL ({src}) is not supported: download the file and run 'docker import FILE'"
        )));
    }
    let reference = nonempty(first(&q, "repo")).map(|repo| match nonempty(first(&q, "tag")) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    });
    let changes = all_of(&q, "changes");
    let message = first(&q, "message").unwrap_or_default();
    let (reader, pump) = body_reader(body);
    let id = blocking(move || Ok(s.engine.import_image(&s.namespace, reader, reference.as_deref(), &changes, &message)?)).await;
    let _ = pump.await;
    Ok(json_lines([json!({ "status": id? })]))
}

/// `docker push`: `tag` empty means every tag of the repository (`--all-tags`).
async fn push(State(s): State<ApiState>, name: String, q: Vec<(String, String)>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let tag = nonempty(first(&q, "tag"));
    let creds = registry_auth(headers);
    progress_stream(move |progress| s.engine.push_image(&s.namespace, &name, tag.as_deref(), creds.as_ref(), progress)).await
}

/// The credentials the CLI sends for the registry involved (after `docker login`).
fn registry_auth(headers: &HeaderMap) -> Option<Credentials> {
    headers.get("x-registry-auth").and_then(|v| v.to_str().ok()).and_then(Credentials::from_header)
}

/// A registry error as Docker's status codes. Only `/auth` answers bad credentials
/// with 401 (`docker login` reports them as such); for pull and push the CLI would
/// take a 401 as a cue to retry with other credentials, over and over, so there the
/// same error is a 403 and its message says to log in.
fn registry_error(e: RegistryError) -> ApiError {
    let status = match &e {
        RegistryError::Unauthorized(_) => StatusCode::FORBIDDEN,
        RegistryError::Denied(_) => StatusCode::FORBIDDEN,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Unsupported(_) => StatusCode::BAD_REQUEST,
        RegistryError::Engine(_) => return ApiError::from(berth_engine::Error::from(e)),
        RegistryError::DigestMismatch { .. } | RegistryError::Protocol(_) | RegistryError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// One of Docker's JSON progress lines (moby's `jsonmessage.JSONMessage`).
fn progress_json(p: &Progress) -> Value {
    match p {
        Progress::Status { id: Some(id), text } => json!({ "status": text, "id": id }),
        Progress::Status { id: None, text } => json!({ "status": text }),
        Progress::Layer { id, state } => json!({ "status": state.text(), "progressDetail": {}, "id": id }),
        Progress::Bytes { id, action, current, total } => json!({
            "status": action.text(),
            "progressDetail": { "current": current, "total": total },
            "progress": progress_bar(*current, *total),
            "id": id,
        }),
        Progress::Pushed { tag, digest, size } => json!({ "progressDetail": {}, "aux": { "Tag": tag, "Digest": digest, "Size": size } }),
    }
}

/// The text bar Docker sends alongside the numbers (`[==>   ]  1.2MB/3.4MB`), for
/// clients that print it rather than draw their own.
fn progress_bar(current: u64, total: u64) -> String {
    fn human(n: u64) -> String {
        let n = n as f64;
        match n {
            n if n >= 1e9 => format!("{:.3}GB", n / 1e9),
            n if n >= 1e6 => format!("{:.3}MB", n / 1e6),
            n if n >= 1e3 => format!("{:.3}kB", n / 1e3),
            n => format!("{n}B"),
        }
    }
    if total == 0 {
        return human(current);
    }
    let width = 50u64;
    let filled = (current.min(total) * width / total) as usize;
    let arrow = if filled < width as usize { ">" } else { "" };
    let bar = format!("{}{arrow}", "=".repeat(filled));
    format!("[{bar:<50}] {:>9}/{}", human(current), human(total))
}

enum StreamMsg {
    Line(Value),
    Done(Option<RegistryError>),
}

/// Runs a registry operation in a blocking task and streams its progress as JSON
/// lines. An error before the first line is a plain HTTP error (the CLI prints
/// "Error response from daemon: …"); a later one is an `errorDetail` line, which the
/// CLI prints before exiting 1.
async fn progress_stream(op: impl FnOnce(&ProgressFn) -> Result<(), RegistryError> + Send + 'static) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::channel::<StreamMsg>(256);
    tokio::task::spawn_blocking(move || {
        let lines = tx.clone();
        // A client that went away only stops the output; the pull or push finishes,
        // as with Docker.
        let report = move |p: Progress| {
            let _ = lines.blocking_send(StreamMsg::Line(progress_json(&p)));
        };
        let result = op(&report);
        if let Err(e) = &result {
            tracing::info!("registry operation failed: {e}");
        }
        let _ = tx.blocking_send(StreamMsg::Done(result.err()));
    });
    let first = match rx.recv().await {
        Some(StreamMsg::Done(Some(e))) => return Err(registry_error(e)),
        Some(m) => m,
        None => return Err(ApiError::internal("the registry operation stopped without an answer")),
    };
    let stream = futures_util::stream::unfold((Some(first), rx), |(pending, mut rx)| async move {
        let msg = match pending {
            Some(m) => m,
            None => rx.recv().await?,
        };
        let line = match msg {
            StreamMsg::Line(v) => v,
            StreamMsg::Done(None) => return None,
            StreamMsg::Done(Some(e)) => {
                let m = e.to_string();
                json!({ "errorDetail": { "message": m }, "error": m })
            }
        };
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        Some((Ok::<_, io::Error>(Bytes::from(bytes)), (None, rx)))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
}

/// `docker login`: 200 when the registry accepts the credentials, 401 with the
/// reason when it does not.
async fn auth(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let creds: Credentials = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid credentials: {e}")))?;
    s.engine.note_request(&s.namespace, "login", &[("registry", &creds.serveraddress)]);
    tokio::task::spawn_blocking(move || s.engine.registry_login(&s.namespace, &creds))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| match e {
            RegistryError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            e => registry_error(e),
        })?;
    Ok(Json(json!({ "Status": "Login Succeeded", "IdentityToken": "" })).into_response())
}

/// `docker search TERM`, with the `is-official`, `is-automated` and `stars` filters.
async fn search(State(s): State<ApiState>, Query(q): Pairs) -> Result<Response, ApiError> {
    let term = nonempty(first(&q, "term")).ok_or_else(|| ApiError::bad_request("a search term is required"))?;
    s.engine.note_request(&s.namespace, "search", &[("term", &term)]);
    let limit = match nonempty(first(&q, "limit")) {
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=100).contains(l)).ok_or_else(|| ApiError::bad_request("limit must be between 1 and 100"))?,
        None => 25,
    };
    let filters = parse_filters(&first(&q, "filters"))?;
    for k in filters.keys() {
        if !["is-official", "is-automated", "stars"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let official = bool_filter(&filters, "is-official")?;
    let automated = bool_filter(&filters, "is-automated")?;
    let stars = match filters.get("stars").and_then(|v| v.last()) {
        Some(v) => v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?,
        None => 0,
    };
    let results = tokio::task::spawn_blocking(move || s.engine.search_images(&s.namespace, &term, limit))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(registry_error)?;
    let out: Vec<Value> = results
        .into_iter()
        .filter(|r| official.is_none_or(|o| o == r.is_official) && automated.is_none_or(|a| a == r.is_automated) && r.star_count >= stars)
        .map(|r| json!(r))
        .collect();
    Ok(Json(out).into_response())
}

/// `GET /distribution/{name}/json` (`docker buildx imagetools`-like tools, the SDK's
/// `get_registry_data`): the manifest's descriptor and platforms, from the registry.
async fn distribution(State(s): State<ApiState>, Path(rest): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(name) = rest.strip_suffix("/json").filter(|n| !n.is_empty()) else {
        return Err(page_not_found("GET", &format!("/distribution/{rest}")));
    };
    let name = name.to_string();
    let creds = registry_auth(&headers);
    let d = tokio::task::spawn_blocking(move || s.engine.distribution_inspect(&s.namespace, &name, creds.as_ref()))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(registry_error)?;
    let platforms: Vec<Value> = d.platforms.iter().map(|p| json!({ "architecture": p.architecture, "os": p.os })).collect();
    Ok(Json(json!({
        "Descriptor": { "mediaType": d.descriptor.media_type, "digest": d.descriptor.digest, "size": d.descriptor.size },
        "Platforms": platforms,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_go_path_match() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox", "busybox"));
        assert!(!glob("busy*", "x/busybox"));
        assert!(!glob("*", "a/b"));
        assert!(glob("*/*", "a/b"));
        assert!(glob("b?sybox:[l]atest", "busybox:latest"));
        assert!(glob("[!a]usybox", "busybox"));
        assert!(!glob("[a-c]x", "dx"));
    }

    #[test]
    fn reference_filter_matches_name_or_name_and_tag() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(reference_matches("localhost:5000/*", "localhost:5000/app:v1"));
    }

    #[test]
    fn verbs_split_off_names_with_slashes() {
        assert_eq!(split_verb("localhost:5000/a/b:tag/json"), ("localhost:5000/a/b:tag", "json"));
        assert_eq!(split_verb("/busybox/history"), ("busybox", "history"));
        assert_eq!(split_verb("json"), ("json", ""));
    }

    #[test]
    fn until_accepts_durations_timestamps_and_dates() {
        let now = Utc::now();
        assert_eq!((now - parse_until("24h").unwrap()).num_minutes(), 24 * 60 - 1, "24h before a moment after `now`");
        assert_eq!(parse_until("1700000000").unwrap().timestamp(), 1_700_000_000);
        assert!(parse_until("2024-01-02T03:04:05Z").is_ok());
        assert!(parse_until("2024-01-02").is_ok());
        assert!(parse_until("soon").is_err());
    }
}
