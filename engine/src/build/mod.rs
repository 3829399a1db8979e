//! Dockerfile builds, like Docker's classic builder: every instruction makes an image
//! on top of the previous one (metadata-only steps add an `empty_layer` history
//! entry, RUN commits a real container's changes, COPY/ADD make a layer straight from
//! the context), each step can be reused from the cache, and only a complete build
//! moves tags.
//!
//! ```no_run
//! # fn f(engine: &std::sync::Arc<berth_engine::Engine>, ctx: std::fs::File) -> berth_engine::Result<()> {
//! use berth_engine::build::{build, BuildOptions};
//! let opts = BuildOptions { tags: vec!["app:1".into()], ..Default::default() };
//! let id = build(engine, "default", ctx, &opts, &mut |text| print!("{text}"))?;
//! # Ok(()) }
//! ```

pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod ignore;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::archive::{host_arch, TempDir};
use crate::container::ContainerConfig;
use crate::{CreateRequest, WaitCondition};
use crate::error::{Context, Error, Result};
use crate::image::{History, ImageConfig, RootFs};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::spec::ShimRequest;
use crate::Engine;
use cache::Cache;
use copy::{CopyRequest, Tree};
use ignore::DockerIgnore;
use dockerfile::{expand, key_values, words, Args, Instruction};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `-t`, repeatable.
    pub tags: Vec<String>,
    /// `-f`: the Dockerfile's path inside the context.
    pub dockerfile: String,
    /// `--build-arg` (a name without a value takes none).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--label`, added to the final image.
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// Remove intermediate containers after a successful step (`--rm`, default on).
    pub rm: bool,
    /// Remove them even after a failed step.
    pub force_rm: bool,
    /// `-q`: the caller prints only the id; RUN output is not sent.
    pub quiet: bool,
    /// `--pull`: fetch every base image from its registry even when we have it.
    pub pull: bool,
    /// `--platform os/arch`: what `FROM scratch` records (`wasi/wasm` for a wasm
    /// image); a `FROM --platform=` of its own wins.
    pub platform: Option<String>,
    /// `--add-host NAME:IP`: lines added to /etc/hosts of every RUN step.
    pub extra_hosts: Vec<String>,
    /// `--network`: where RUN steps run, as `docker run --network` takes it (empty:
    /// the default network).
    pub network_mode: String,
    /// `--cache-from`: when not empty, only these images (and the images they were
    /// built on) may serve a step from the cache, as with Docker's classic builder.
    pub cache_from: Vec<String>,
    /// `--memory`, `--cpu-shares`, `--ulimit` & co.: what every RUN step runs with.
    pub limits: StepLimits,
}

/// The resources of each RUN step's container, as `docker run` takes them (zero or
/// empty: not set); a lab session's policy holds them to its limits, as a run's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLimits {
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub shm_size: i64,
    pub ulimits: Vec<crate::container::Ulimit>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            tags: vec![],
            dockerfile: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            target: None,
            no_cache: false,
            rm: true,
            platform: None,
            force_rm: false,
            quiet: false,
            pull: false,
            extra_hosts: vec![],
            network_mode: String::new(),
            cache_from: vec![],
            limits: StepLimits::default(),
        }
    }
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One build stage in progress.
struct Stage {
    name: Option<String>,
    image: String,
    config: ImageConfig,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
}

impl Stage {
    fn lookup(&self, name: &str) -> Option<String> {
        // ENV wins over ARG, as in Docker.
        for e in self.config.config.env.iter().rev() {
            if let Some((k, v)) = e.split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .extra
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
}

struct Builder<'a> {
    engine: &'a Arc<Engine>,
    ns: &'a str,
    opts: &'a BuildOptions,
    out: &'a mut dyn FnMut(&str),
    cache: Cache,
    context: Tree,
    /// SHA-256 of the context's files, taken while unpacking (COPY's cache key).
    digests: context::Digests,
    /// The context's large files, in memory until a step needs them on disk.
    kept: context::Kept,
    escape: char,
    global_args: BTreeMap<String, Option<String>>,
    /// Finished stages: (name, image id).
    done: Vec<(Option<String>, String)>,
    /// Build args some ARG declared, for the "not consumed" warning.
    consumed: std::collections::BTreeSet<String>,
    /// Whether an earlier step missed the cache: then later ones are not looked up,
    /// as in Docker.
    cache_broken: bool,
    /// `--cache-from`'s images that exist here (id, config); None without the option.
    cache_sources: Option<Vec<(String, ImageConfig)>>,
    /// The step this build is making now, which other builds wait for (see
    /// [`Self::wait_or_claim`]).
    claim: Option<cache::Claim<'a>>,
}

/// How long a build waits for another build making the same step before making it
/// itself (a long RUN in someone else's build must not hold this one forever).
const WAIT_FOR_OTHER_BUILD: std::time::Duration = std::time::Duration::from_secs(600);

/// Builds an image from a context tar (maybe gzip) and tags it. `out` receives the
/// build's text output (`Step 1/3 : …`, RUN output). Returns the image id. On error nothing is
/// tagged; the error says which step failed and why.
pub fn build(engine: &Arc<Engine>, ns: &str, context: impl Read, opts: &BuildOptions, out: &mut dyn FnMut(&str)) -> Result<String> {
    build_keeping_scratch(engine, ns, context, opts, out).map(|(id, _scratch)| id)
}

/// [`build`], but a successful build hands back its scratch dir (the unpacked
/// context) for the caller to drop, so a server can finish its answer first:
/// removing a large context takes a noticeable time. A failed build removes it
/// before returning, as [`build`] does.
pub fn build_keeping_scratch(engine: &Arc<Engine>, ns: &str, context: impl Read, opts: &BuildOptions, out: &mut dyn FnMut(&str)) -> Result<(String, TempDir)> {
    engine.check_frozen(ns)?;
    engine.check_disk(ns)?;
    let tags: Vec<Reference> = opts.tags.iter().map(|t| Reference::parse(t)).collect::<Result<_>>()?;
    if tags.iter().any(|r| r.digest.is_some()) {
        return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".into()));
    }
    let dir = TempDir::new(&engine.root().join("tmp"), "build")?;
    let ctx_dir = dir.path().join("context");
    std::fs::create_dir_all(&ctx_dir).ctx(|| format!("create {}", ctx_dir.display()))?;
    // The reader is dropped once the tar ends, so a caller streaming the body into it
    // sees at once that the rest is not wanted.
    let (digests, mut kept) = context::unpack(Padded { inner: crate::archive::decompress(context)?, read: 0, tail: None }, &ctx_dir)
        .map_err(|e| Error::InvalidArgument(format!("invalid build context: {e}")))?;
    let df_rel = copy::clean(&opts.dockerfile)
        .ok_or_else(|| Error::InvalidArgument(format!("forbidden path outside the build context: {}", opts.dockerfile)))?;
    let context_tree = Tree { layers: vec![ctx_dir.clone()] };
    // The two files read before any step: written first if they were kept (large).
    for rel in [df_rel.as_path(), std::path::Path::new(".dockerignore")] {
        if let Some(p) = context_tree.lookup(rel) {
            kept.write(&p)?;
        }
    }
    let text = copy::read_context_file(&context_tree, &df_rel)?
        .ok_or_else(|| Error::InvalidArgument(format!("Cannot locate specified Dockerfile: {}", opts.dockerfile)))?;
    // dockerd's two answers (both 400): no bytes at all, or nothing but comments.
    if text.is_empty() {
        return Err(Error::InvalidArgument(format!("the Dockerfile ({}) cannot be empty", opts.dockerfile)));
    }
    let text = String::from_utf8(text).map_err(|_| Error::InvalidArgument(format!("the Dockerfile {} is not UTF-8 text", opts.dockerfile)))?;
    let df = dockerfile::parse(&text).map_err(|e| match e {
        Error::InvalidArgument(m) if m == dockerfile::NO_INSTRUCTIONS => Error::InvalidArgument(format!("failed to parse {}: {m}", opts.dockerfile)),
        e => e,
    })?;
    drop_ignored_build_files(&context_tree, &ctx_dir, &df_rel)?;
    let mut b = Builder {
        engine,
        ns,
        opts,
        out,
        cache: Cache::new(engine.root()),
        context: context_tree,
        digests,
        kept,
        escape: df.escape,
        global_args: BTreeMap::new(),
        done: vec![],
        consumed: Default::default(),
        cache_broken: opts.no_cache,
        cache_sources: cache_sources(engine, ns, &opts.cache_from),
        claim: None,
    };
    let id = b.run(&df.instructions)?;
    // Tags move only now, after every step worked: a failed build leaves them be.
    // (The caller prints "Successfully built/tagged", after the id.)
    engine.tag_built(ns, &id, &tags)?;
    let names = tags.iter().map(Reference::familiar).collect::<Vec<_>>().join(",");
    engine.emit(ns, "image", "build", &id, &[("name", &names)]);
    Ok((id, dir))
}

/// The images `--cache-from` names. As dockerd does, a name that is not here is left
/// out (the build then simply misses the cache for it); None when none were named.
fn cache_sources(engine: &Engine, ns: &str, names: &[String]) -> Option<Vec<(String, ImageConfig)>> {
    if names.is_empty() {
        return None;
    }
    Some(names.iter().filter_map(|n| engine.image_config(ns, n).ok()).collect())
}

/// The client sends the Dockerfile and `.dockerignore` even when `.dockerignore`
/// excludes them, for the daemon to read; dockerd then takes them out of the context,
/// so `COPY . /` copies neither. Other excluded files never arrived: the client left
/// them out (see [`ignore`]).
fn drop_ignored_build_files(tree: &Tree, ctx_dir: &std::path::Path, dockerfile: &std::path::Path) -> Result<()> {
    let Some(text) = copy::read_context_file(tree, std::path::Path::new(".dockerignore"))? else { return Ok(()) };
    // dockerd ignores a pattern it cannot read here (the client refused it already,
    // if it applied the file): nothing is taken out then.
    let Ok(rules) = DockerIgnore::parse(&String::from_utf8_lossy(&text)) else { return Ok(()) };
    for rel in [std::path::Path::new(".dockerignore"), dockerfile] {
        let path = ctx_dir.join(rel);
        let is_file = path.symlink_metadata().is_ok_and(|m| !m.is_dir());
        if is_file && rules.excludes(&rel.to_string_lossy()) {
            std::fs::remove_file(&path).ctx(|| format!("remove {} from the build context", rel.display()))?;
        }
    }
    Ok(())
}

impl Builder<'_> {
    fn say(&mut self, s: &str) {
        (self.out)(s);
    }

    /// Which instructions to run: all up to the end of the target stage.
    fn run(&mut self, all: &[Instruction]) -> Result<String> {
        let Some(first_from) = all.iter().position(|i| i.keyword == "FROM") else {
            return Err(Error::InvalidArgument(format!(
                "Dockerfile parse error line {}: no build stage in current context",
                all.first().map_or(1, |i| i.line)
            )));
        };
        if let Some(bad) = all[..first_from].iter().find(|i| i.keyword != "ARG") {
            return Err(Error::InvalidArgument(format!(
                "Dockerfile parse error line {}: no build stage in current context",
                bad.line
            )));
        }
        let mut end = all.len();
        if let Some(t) = &self.opts.target {
            let mut found = None;
            for (i, ins) in all.iter().enumerate().filter(|(_, i)| i.keyword == "FROM") {
                if found.is_some() {
                    end = i;
                    break;
                }
                if from_parts(ins, self.escape)?.1.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)) {
                    found = Some(i);
                }
            }
            if found.is_none() {
                return Err(Error::InvalidArgument(format!("failed to reach build target {t} in Dockerfile")));
            }
        }
        let total = end;
        let mut stage: Option<Stage> = None;
        for (n, ins) in all[..end].iter().enumerate() {
            self.say(&format!("Step {}/{} : {}\n", n + 1, total, ins.original));
            self.step(&mut stage, ins)?;
        }
        let mut st = stage.ok_or_else(|| Error::InvalidArgument("no build stage in current context".into()))?;
        // Docker's proxy variables are predefined args: never reported as unused.
        const PROXY: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"];
        let unused: Vec<&String> = self.opts.build_args.keys().filter(|k| !self.consumed.contains(*k) && !PROXY.contains(&k.to_ascii_uppercase().as_str())).collect();
        if !unused.is_empty() {
            let list = unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
            self.say(&format!("[Warning] One or more build-args [{list}] were not consumed\n"));
        }
        if !self.opts.labels.is_empty() {
            // `--label` makes one more metadata step, as Docker's does.
            for (k, v) in &self.opts.labels {
                st.config.config.labels.insert(k.clone(), v.clone());
            }
            let by = format!("/bin/sh -c #(nop)  LABEL {}", self.opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
            self.commit_meta(&mut st, &by, "")?;
        }
        Ok(st.image)
    }

    fn step(&mut self, stage: &mut Option<Stage>, ins: &Instruction) -> Result<()> {
        ins.check_flags()?;
        if ins.keyword == "FROM" {
            if let Some(s) = stage.take() {
                self.done.push((s.name, s.image));
            }
            // A stage starts with the cache open again, as Docker's classic builder
            // probes each stage afresh: a miss in one stage says nothing of the next.
            self.cache_broken = self.opts.no_cache;
            let st = self.from(ins)?;
            self.say(&format!(" ---> {}\n", short(&st.image)));
            *stage = Some(st);
            return Ok(());
        }
        let Some(st) = stage.as_mut() else {
            // Only ARG can come before the first FROM (checked in `run`).
            return self.global_arg(ins);
        };
        self.instruction(st, ins)?;
        self.say(&format!(" ---> {}\n", short(&st.image)));
        Ok(())
    }

    fn global_arg(&mut self, ins: &Instruction) -> Result<()> {
        for (k, default) in arg_decls(ins, self.escape, &|_| None)? {
            self.consumed.insert(k.clone());
            let v = match self.opts.build_args.get(&k) {
                Some(Some(v)) => Some(v.clone()),
                _ => default,
            };
            self.global_args.insert(k, v);
        }
        Ok(())
    }

    fn from(&mut self, ins: &Instruction) -> Result<Stage> {
        let globals = self.global_args.clone();
        let lookup = |n: &str| globals.get(n).cloned().flatten();
        let text = expand(&ins.text(), self.escape, &lookup)?;
        let (base, name) = from_parts(&Instruction { args: Args::Shell(text), ..ins.clone() }, self.escape)?;
        // `FROM --platform=…` (or `build --platform`), its variables expanded: the
        // global ARGs, and BuildKit's BUILDPLATFORM and TARGETPLATFORM, which
        // Dockerfiles from the web use (this machine's, or `--platform`'s).
        let host_platform = format!("linux/{}", host_arch());
        let target = self.opts.platform.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| host_platform.clone());
        let platform_lookup = |n: &str| match n {
            "BUILDPLATFORM" => lookup(n).or(Some(host_platform.clone())),
            "TARGETPLATFORM" => lookup(n).or(Some(target.clone())),
            _ => lookup(n),
        };
        let platform_text = match ins.flag("platform") {
            Some(f) => Some(expand(f, self.escape, &platform_lookup)?),
            None => self.opts.platform.clone(),
        }
        .filter(|p| !p.is_empty());
        let engine = self.engine;
        let stage_image = self.done.iter().rev().find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&base))).map(|(_, id)| id.clone());
        let image = if let Some(id) = stage_image {
            id
        } else if base.eq_ignore_ascii_case("scratch") {
            let (os, architecture) = scratch_platform(platform_text.as_deref())?;
            let config = ImageConfig {
                architecture,
                os,
                rootfs: RootFs { kind: "layers".into(), diff_ids: vec![] },
                ..Default::default()
            };
            engine.create_child_image(None, &config, None)?
        } else {
            let platform = platform_text.as_deref().map(Platform::parse).transpose()?;
            let local = if self.opts.pull { Err(Error::NotFound(base.clone())) } else { engine.image_config(self.ns, &base) };
            // A local image of another platform than the one asked for is as good as
            // none: Docker pulls the name for that platform.
            let local = match local {
                Ok((_, c)) if platform.as_ref().is_some_and(|p| !p.matches_image(&c.os, &c.architecture)) => Err(Error::NotFound(base.clone())),
                other => other,
            };
            match local {
                Ok((id, _)) => id,
                Err(Error::NotFound(_)) => {
                    let shown = Reference::parse(&base).map(|r| r.familiar()).unwrap_or(base.clone());
                    self.say(&format!("{}: Pulling from {}\n", Reference::parse(&base).ok().and_then(|r| r.tag).unwrap_or("latest".into()), shown));
                    // The registry's own error says best why (no such repository,
                    // no network, denied).
                    let id = engine.pull_image_for(self.ns, &base, platform.as_ref(), None, &|_| {}).map_err(Error::from)?;
                    let c = engine.images.config(&engine.store, &id)?;
                    if let Some(p) = platform.as_ref().filter(|p| !p.matches_image(&c.os, &c.architecture)) {
                        return Err(Error::NotFound(p.mismatch(&shown, &c.os, &c.architecture)));
                    }
                    id
                }
                Err(e) => return Err(e),
            }
        };
        let config = engine.images.config(&engine.store, &image)?;
        let mut st = Stage { name, image, config, args: BTreeMap::new() };
        // ONBUILD triggers of the base image run first, as in Docker.
        let triggers: Vec<String> = st.config.config.extra.get("OnBuild").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        if !triggers.is_empty() {
            st.config.config.extra.remove("OnBuild");
            for t in triggers {
                self.say(&format!(" ---> Running trigger: {t}\n"));
                let df = dockerfile::parse(&t)?;
                for ins in &df.instructions {
                    if matches!(ins.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
                        return Err(Error::InvalidArgument(format!("{} isn't allowed as an ONBUILD trigger", ins.keyword)));
                    }
                    self.instruction(&mut st, ins)?;
                }
            }
        }
        Ok(st)
    }

    fn expand(&self, st: &Stage, s: &str) -> Result<String> {
        expand(s, self.escape, &|n| st.lookup(n))
    }

    fn instruction(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let esc = self.escape;
        let rest = ins.text();
        let kw = ins.keyword.as_str();
        let nop = |s: String| format!("/bin/sh -c #(nop)  {s}");
        let cmd_form = |st: &Stage| -> Vec<String> {
            match &ins.args {
                Args::Json(v) => v.clone(),
                Args::Shell(s) => {
                    let mut v = st.shell();
                    v.push(s.clone());
                    v
                }
            }
        };
        let quoted = |v: &[String]| format!("[{}]", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" "));
        match kw {
            "RUN" => self.run_step(st, ins),
            "COPY" | "ADD" => self.copy_step(st, ins),
            "WORKDIR" => self.workdir_step(st, ins),
            "CMD" => {
                let v = cmd_form(st);
                st.config.config.cmd = Some(v.clone());
                let by = nop(format!("CMD {}", quoted(&v)));
                self.commit_meta(st, &by, "")
            }
            "ENTRYPOINT" => {
                let v = cmd_form(st);
                st.config.config.entrypoint = Some(v.clone()).filter(|v| !v.is_empty());
                let by = nop(format!("ENTRYPOINT {}", quoted(&v)));
                self.commit_meta(st, &by, "")
            }
            "SHELL" => {
                let Args::Json(v) = &ins.args else {
                    return Err(Error::InvalidArgument("SHELL requires the arguments to be in JSON form".into()));
                };
                st.config.config.extra.insert("Shell".into(), json!(v));
                let by = nop(format!("SHELL {}", quoted(v)));
                self.commit_meta(st, &by, "")
            }
            "ENV" | "LABEL" => {
                let text = self.expand(st, &rest)?;
                let pairs = key_values(kw, &text, esc)?;
                for (k, v) in &pairs {
                    if kw == "ENV" {
                        st.config.config.env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                        st.config.config.env.push(format!("{k}={v}"));
                    } else {
                        st.config.config.labels.insert(k.clone(), v.clone());
                    }
                }
                let shown = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                self.commit_meta(st, &nop(format!("{kw} {shown}")), "")
            }
            "MAINTAINER" => {
                st.config.author = Some(rest.clone());
                self.commit_meta(st, &nop(format!("MAINTAINER {rest}")), "")
            }
            "EXPOSE" => {
                let text = self.expand(st, &rest)?;
                let mut ports = Vec::new();
                for p in words(&text, esc)? {
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    if port.is_empty() || !port.split('-').all(|n| n.parse::<u16>().is_ok()) || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                        return Err(Error::InvalidArgument(format!("invalid containerPort: {p}")));
                    }
                    st.config.config.exposed_ports.insert(format!("{port}/{proto}"), json!({}));
                    ports.push(format!("{port}/{proto}"));
                }
                if ports.is_empty() {
                    return Err(Error::InvalidArgument("EXPOSE requires at least one argument".into()));
                }
                self.commit_meta(st, &nop(format!("EXPOSE {}", ports.join(" "))), "")
            }
            "USER" => {
                let u = self.expand(st, &rest)?;
                if u.is_empty() {
                    return Err(Error::InvalidArgument("USER requires exactly one argument".into()));
                }
                st.config.config.user = u.clone();
                self.commit_meta(st, &nop(format!("USER {u}")), "")
            }
            "VOLUME" => {
                let list = match &ins.args {
                    Args::Json(v) => v.clone(),
                    Args::Shell(s) => words(&self.expand(st, s)?, esc)?,
                };
                if list.is_empty() {
                    return Err(Error::InvalidArgument("VOLUME requires at least one argument".into()));
                }
                for v in &list {
                    st.config.config.volumes.insert(v.clone(), json!({}));
                }
                self.commit_meta(st, &nop(format!("VOLUME {}", quoted(&list))), "")
            }
            "STOPSIGNAL" => {
                let s = self.expand(st, &rest)?;
                crate::container::parse_signal(&s)?;
                st.config.config.stop_signal = Some(s.clone());
                self.commit_meta(st, &nop(format!("STOPSIGNAL {s}")), "")
            }
            "ARG" => {
                for (k, default) in arg_decls(ins, esc, &|n| st.lookup(n))? {
                    self.consumed.insert(k.clone());
                    let v = match self.opts.build_args.get(&k) {
                        Some(Some(v)) => Some(v.clone()),
                        // A redeclared global ARG takes the global value.
                        _ => default.or_else(|| self.global_args.get(&k).cloned().flatten()),
                    };
                    st.args.insert(k, v);
                }
                // ARG changes no config: no history entry, no new image.
                Ok(())
            }
            "ONBUILD" => {
                let inner = rest.trim();
                let first = inner.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if matches!(first.as_str(), "ONBUILD" | "FROM" | "MAINTAINER" | "") {
                    return Err(Error::InvalidArgument(format!("{first} isn't allowed as an ONBUILD trigger")));
                }
                let list = st.config.config.extra.entry("OnBuild".into()).or_insert_with(|| json!([]));
                // Another tool's config may say `"OnBuild": null`.
                if list.is_null() {
                    *list = json!([]);
                }
                if let Value::Array(a) = list {
                    a.push(json!(inner));
                }
                self.commit_meta(st, &nop(format!("ONBUILD {inner}")), "")
            }
            "HEALTHCHECK" => {
                let hc = healthcheck(ins)?;
                st.config.config.extra.insert("Healthcheck".into(), hc.clone());
                let test = hc["Test"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>()).unwrap_or_default();
                self.commit_meta(st, &nop(format!("HEALTHCHECK &{{{} ...}}", quoted(&test))), "")
            }
            other => Err(Error::InvalidArgument(format!("unknown instruction: {other}"))),
        }
    }

    /// Looks a step up in the cache; on a hit, moves the stage there. With
    /// `--cache-from`, only a step of those images may serve (see [`Self::may_serve`]
    /// and [`Self::cached_from_sources`]).
    fn cached(&mut self, st: &mut Stage, by: &str, content: &str) -> bool {
        // The previous step is in the cache by now, or failed: others may look again.
        self.claim = None;
        if self.cache_broken {
            return false;
        }
        let mut local = self.cache.get(&st.image, by, content).filter(|id| self.may_serve(id));
        if local.is_none() {
            local = self.wait_or_claim(&st.image, by, content);
        }
        let found = match local {
            Some(id) => Some(id),
            None => match self.cached_from_sources(st, by, content) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("build cache from --cache-from images: {e}");
                    None
                }
            },
        };
        let Some(id) = found else {
            self.cache_broken = true;
            return false;
        };
        let Ok(config) = self.engine.images.config(&self.engine.store, &id) else {
            self.cache_broken = true;
            return false;
        };
        if self.engine.images.record(&id).is_err() {
            self.cache_broken = true;
            return false;
        }
        if let Err(e) = self.keep(&st.image, &st.config, &id) {
            tracing::warn!("keep the cached build step {id}: {e}");
            self.cache_broken = true;
            return false;
        }
        self.say(" ---> Using cache\n");
        st.image = id;
        st.config = config;
        true
    }

    /// After a cache miss: when another build is making this very step, waits for it
    /// and takes its result from the cache; otherwise claims the step (until its
    /// entry is written) so that builds asking for it meanwhile wait for this one.
    fn wait_or_claim(&mut self, parent: &str, by: &str, content: &str) -> Option<String> {
        let key = Cache::key(parent, by, content);
        let deadline = std::time::Instant::now() + WAIT_FOR_OTHER_BUILD;
        loop {
            match self.engine.build_steps.claim(&key) {
                Ok(claim) => {
                    self.claim = Some(claim);
                    return None;
                }
                Err(making) => {
                    if !making.wait_until(deadline) {
                        return None;
                    }
                    if let Some(id) = self.cache.get(parent, by, content).filter(|id| self.may_serve(id)) {
                        return Some(id);
                    }
                    // Its maker failed: this build makes the step (or waits for the
                    // next one that claimed it).
                }
            }
        }
    }

    /// Keeps a step's image in the namespace with its parent (see
    /// [`Engine::keep_build_step`]); `parent_config` is the parent's, or the stage's
    /// config still equal to it in history and layers. The empty image `FROM scratch`
    /// starts from is no one's parent, as with Docker, which makes none.
    fn keep(&self, parent: &str, parent_config: &ImageConfig, id: &str) -> Result<()> {
        let scratch = parent_config.history.is_empty() && parent_config.rootfs.diff_ids.is_empty();
        self.engine.keep_build_step(self.ns, id, Some(parent).filter(|_| !scratch))
    }

    /// Whether a locally cached step image may serve this build: any may without
    /// `--cache-from`; with it, only one of those images or an image one of them was
    /// built on (its history and layers are a prefix of theirs), as the classic
    /// builder allows only the sources' own chains.
    fn may_serve(&self, id: &str) -> bool {
        let Some(sources) = &self.cache_sources else { return true };
        let Ok(candidate) = self.engine.images.config(&self.engine.store, id) else { return false };
        sources.iter().any(|(source_id, source)| {
            source_id == id
                || (source.history.len() > candidate.history.len()
                    && source.history.starts_with(&candidate.history)
                    && source.rootfs.diff_ids.starts_with(&candidate.rootfs.diff_ids))
        })
    }

    /// A step taken from a `--cache-from` image that has no local cache entry (pulled
    /// from a registry, loaded): when the image starts with this stage's history and
    /// layers and its next history entry is this step, the step's image is remade
    /// from that entry and its layer, as Docker's classic builder restores it.
    fn cached_from_sources(&self, st: &Stage, by: &str, content: &str) -> Result<Option<String>> {
        let Some(sources) = &self.cache_sources else { return Ok(None) };
        let n = st.config.history.len();
        for (source_id, source) in sources {
            let fits = source.history.starts_with(&st.config.history) && source.rootfs.diff_ids.starts_with(&st.config.rootfs.diff_ids);
            let Some(entry) = source.history.get(n).filter(|h| fits && h.created_by.as_deref() == Some(by)).cloned() else { continue };
            let id = if n + 1 == source.history.len() {
                // The source's last step: the source itself.
                source_id.clone()
            } else {
                let mut config = st.config.clone();
                let layer = if entry.empty_layer {
                    None
                } else {
                    // The layer this entry made: one per earlier non-empty entry before it.
                    let index = source.history[..n].iter().filter(|h| !h.empty_layer).count();
                    let record = self.engine.images.record(source_id)?;
                    let (Some(l), Some(diff_id)) = (record.layers.get(index), source.rootfs.diff_ids.get(index)) else { continue };
                    config.rootfs.diff_ids.push(diff_id.clone());
                    Some((l.digest.clone(), l.media_type.clone(), l.size))
                };
                config.created = entry.created.clone();
                config.history.push(entry);
                self.engine.create_child_image_with(Some(&st.image), &config, layer)?
            };
            self.cache.put(&st.image, by, content, &id)?;
            return Ok(Some(id));
        }
        Ok(None)
    }

    fn history(st: &mut Stage, by: &str, empty: bool) {
        let t = now();
        st.config.created = Some(t.clone());
        st.config.history.push(History { created: Some(t), created_by: Some(by.to_string()), author: None, comment: None, empty_layer: empty });
    }

    /// A step that only changed `st.config`: a new image with the same layers.
    fn commit_meta(&mut self, st: &mut Stage, by: &str, content: &str) -> Result<()> {
        let parent = st.image.clone();
        let mut probe = Stage { name: None, image: parent.clone(), config: st.config.clone(), args: BTreeMap::new() };
        if self.cached(&mut probe, by, content) {
            st.image = probe.image;
            st.config = probe.config;
            return Ok(());
        }
        let before = st.config.clone();
        Self::history(st, by, true);
        let id = self.engine.create_child_image(Some(&parent), &st.config, None)?;
        self.keep(&parent, &before, &id)?;
        self.cache.put(&parent, by, content, &id)?;
        self.claim = None;
        st.image = id;
        Ok(())
    }

    /// A step that made a layer blob: a new image with it on top.
    fn commit_layer(&mut self, st: &mut Stage, by: &str, content: &str, layer: (String, u64)) -> Result<()> {
        let parent = st.image.clone();
        let before = st.config.clone();
        Self::history(st, by, false);
        st.config.rootfs.diff_ids.push(layer.0.clone());
        let id = self.engine.create_child_image(Some(&parent), &st.config, Some(layer))?;
        self.keep(&parent, &before, &id)?;
        self.cache.put(&parent, by, content, &id)?;
        self.claim = None;
        st.image = id;
        Ok(())
    }

    fn image_tree(&self, id: &str) -> Result<Tree> {
        Ok(Tree { layers: self.engine.image_layer_dirs(id)? })
    }

    fn workdir_step(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let w = self.expand(st, &ins.text())?;
        if w.is_empty() {
            return Err(Error::InvalidArgument("WORKDIR requires exactly one argument".into()));
        }
        let cur = &st.config.config.working_dir;
        let joined = if w.starts_with('/') || cur.is_empty() { format!("/{}", w.trim_start_matches('/')) } else { format!("{}/{w}", cur.trim_end_matches('/')) };
        let clean = format!("/{}", copy::clean(&joined).unwrap_or_default().display());
        st.config.config.working_dir = clean.clone();
        let by = format!("/bin/sh -c #(nop) WORKDIR {clean}");
        let tree = self.image_tree(&st.image)?;
        let rel = copy::clean(&clean).unwrap_or_default();
        if rel.as_os_str().is_empty() || tree.lookup(&rel).is_some() {
            return self.commit_meta(st, &by, "");
        }
        // The directory does not exist yet: Docker creates it, in a layer.
        let mut probe = Stage { name: None, image: st.image.clone(), config: st.config.clone(), args: BTreeMap::new() };
        if self.cached(&mut probe, &by, "mkdir") {
            st.image = probe.image;
            st.config = probe.config;
            return Ok(());
        }
        let mut entries = Vec::new();
        let mut p = std::path::PathBuf::new();
        for c in rel.components() {
            p.push(c);
            let existing = tree.lookup(&p).and_then(|x| x.symlink_metadata().ok()).filter(|m| m.is_dir());
            use std::os::unix::fs::MetadataExt;
            let (mode, uid, gid) = existing.map_or((0o755, 0, 0), |m| (m.mode() & 0o7777, m.uid() as u64, m.gid() as u64));
            entries.push(copy::Entry { dest: p.to_string_lossy().into_owned(), kind: copy::Kind::Dir, mode, uid, gid, mtime: chrono::Utc::now().timestamp().max(0) as u64 });
        }
        let layer = self.engine.store_layer(|f| copy::write_layer(&entries, f).map(|_| ()))?;
        self.commit_layer(st, &by, "mkdir", layer)
    }

    fn copy_step(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let kw = ins.keyword.as_str();
        let text = self.expand(st, &ins.text())?;
        let mut list = match &ins.args {
            Args::Json(v) => v.iter().map(|s| self.expand(st, s)).collect::<Result<Vec<_>>>()?,
            Args::Shell(_) => words(&text, self.escape)?,
        };
        if list.len() < 2 && ins.heredocs.is_empty() {
            return Err(Error::InvalidArgument(format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined")));
        }
        let dest_raw = list.pop().unwrap_or_default();
        let wd = &st.config.config.working_dir;
        let dest = if dest_raw.starts_with('/') { dest_raw.clone() } else { format!("{}/{dest_raw}", if wd.is_empty() { "" } else { wd.trim_end_matches('/') }) };
        let owner = match ins.flag("chown") {
            Some(c) => Some(resolve_owner(&self.image_tree(&st.image)?, &self.expand(st, c)?)?),
            None => None,
        };
        let image_tree = self.image_tree(&st.image)?;
        let from_tree;
        let (from, context) = match ins.flag("from") {
            Some(f) => {
                let f = self.expand(st, f)?;
                let id = match f.parse::<usize>().ok().and_then(|i| self.done.get(i)) {
                    Some((_, id)) => id.clone(),
                    None => match self.done.iter().rev().find(|(n, _)| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&f))) {
                        Some((_, id)) => id.clone(),
                        None => self.engine.image_config(self.ns, &f).map_err(|_| Error::InvalidArgument(format!("{kw} --from: no stage or image named {f}")))?.0,
                    },
                };
                from_tree = self.image_tree(&id)?;
                (&from_tree, false)
            }
            None => (&self.context, true),
        };
        let mut entries = Vec::new();
        // Heredoc sources: `COPY <<EOF /file` writes the heredoc's content.
        let heredoc_names: Vec<String> = ins.heredocs.iter().map(|h| format!("<<{}", h.name)).collect();
        let sources: Vec<String> = list.iter().filter(|s| !heredoc_names.iter().any(|h| s.starts_with(h.as_str()) || s.starts_with(&h.replace("<<", "<<-")))).cloned().collect();
        for h in &ins.heredocs {
            let content = if h.expand { self.expand(st, &h.content)? } else { h.content.clone() };
            let target = if dest.ends_with('/') { format!("{dest}{}", h.name) } else { dest.clone() };
            let (uid, gid) = owner.unwrap_or((0, 0));
            entries.push(copy::Entry { dest: copy::clean(&target).unwrap_or_default().to_string_lossy().into_owned(), kind: copy::Kind::Bytes(content.into_bytes()), mode: 0o644, uid, gid, mtime: 0 });
        }
        let from_context = ins.flag("from").is_none();
        if from_context && kw == "ADD" {
            // ADD looks into its sources (is it a tar?) before the cache is checked.
            self.kept.write_all()?;
        }
        if !sources.is_empty() {
            let req = CopyRequest { sources: &sources, dest: &dest, from, context, image: &image_tree, owner, unpack_archives: kw == "ADD", keyword: kw };
            entries.splice(0..0, copy::plan(&req)?);
        }
        if let Some(m) = ins.flag("chmod") {
            // BuildKit's `--chmod`: the mode of what is copied (files, and directories
            // below the destination), not of the parents made on the way.
            let mode = u32::from_str_radix(&self.expand(st, m)?, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid chmod parameter: '{m}'. it should be octal string and between 0 and 07777")))?;
            let under = copy::clean(&dest).unwrap_or_default();
            for e in entries.iter_mut() {
                let below = std::path::Path::new(&e.dest).strip_prefix(&under).is_ok_and(|r| !r.as_os_str().is_empty());
                if !matches!(e.kind, copy::Kind::Dir) || below {
                    e.mode = (e.mode & !0o7777) | mode;
                }
            }
        }
        let hash = copy::content_hash(&entries, &self.digests)?;
        let what = if entries.iter().filter(|e| !matches!(e.kind, copy::Kind::Dir)).count() == 1 { "file" } else { "dir" };
        let by = format!("/bin/sh -c #(nop) {kw} {what}:{} in {dest} ", &hash[7..]);
        let mut probe = Stage { name: None, image: st.image.clone(), config: st.config.clone(), args: BTreeMap::new() };
        if self.cached(&mut probe, &by, &hash) {
            st.image = probe.image;
            st.config = probe.config;
            return Ok(());
        }
        if from_context {
            self.kept.write_all()?;
        }
        let layer = self.engine.store_layer(|f| copy::write_layer(&entries, f).map(|_| ()))?;
        self.commit_layer(st, &by, &hash, layer)
    }

    fn run_step(&mut self, st: &mut Stage, ins: &Instruction) -> Result<()> {
        let argv = match &ins.args {
            Args::Json(v) => v.clone(),
            Args::Shell(s) => {
                let mut v = st.shell();
                // A heredoc RUN runs the heredoc's text as the script.
                let script = match ins.heredocs.first() {
                    Some(h) if s.trim() == format!("<<{}", h.name) || s.trim() == format!("<<-{}", h.name) => h.content.clone(),
                    _ => s.clone(),
                };
                v.push(script);
                v
            }
        };
        if argv.is_empty() {
            return Err(Error::InvalidArgument("RUN requires at least one argument".into()));
        }
        // Build args are in the RUN's environment and, as Docker does, in the history
        // text, so a changed value misses the cache.
        let args: Vec<String> = st.args.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
        let cmdline = argv.join(" ");
        let by = if args.is_empty() { cmdline.clone() } else { format!("|{} {} {cmdline}", args.len(), args.join(" ")) };
        let mut probe = Stage { name: None, image: st.image.clone(), config: st.config.clone(), args: BTreeMap::new() };
        if self.cached(&mut probe, &by, "") {
            st.image = probe.image;
            st.config = probe.config;
            return Ok(());
        }
        let engine = self.engine;
        let ns = self.ns;
        // The image must be in the namespace to create a container on it, and stays
        // there while the container runs, so an `rmi` meanwhile cannot collect it.
        let parent = st.image.clone();
        let held = engine.hold_image(ns, &parent)?;
        let result = self.run_held(st, argv, args, &by, &cmdline);
        if held {
            engine.release_image(ns, &parent)?;
        }
        result
    }

    fn run_held(&mut self, st: &mut Stage, argv: Vec<String>, env: Vec<String>, by: &str, cmdline: &str) -> Result<()> {
        let engine = self.engine;
        let ns = self.ns;
        let c = engine.create_container(ns, CreateRequest {
            name: None,
            config: ContainerConfig {
                image: st.image.clone(),
                cmd: argv,
                // The command replaces the image's entrypoint for a RUN.
                entrypoint: Some(vec![String::new()]),
                env,
                ..Default::default()
            },
            host_config: {
                let l = &self.opts.limits;
                crate::container::HostConfig {
                    extra_hosts: self.opts.extra_hosts.clone(),
                    network_mode: self.opts.network_mode.clone(),
                    memory: l.memory,
                    memory_swap: l.memory_swap,
                    cpu_shares: l.cpu_shares,
                    cpu_period: l.cpu_period,
                    cpu_quota: l.cpu_quota,
                    cpuset_cpus: l.cpuset_cpus.clone(),
                    cpuset_mems: l.cpuset_mems.clone(),
                    shm_size: l.shm_size,
                    ulimits: l.ulimits.clone(),
                    ..Default::default()
                }
            },
            ..Default::default()
        })?;
        self.say(&format!(" ---> Running in {}\n", &c.id[..12]));
        let outcome = self.run_container(&c.id);
        let code = match outcome {
            Ok(code) => code,
            Err(e) => {
                let _ = engine.remove_container(ns, &c.id, true, true);
                return Err(e);
            }
        };
        if code != 0 {
            if self.opts.force_rm {
                let _ = engine.remove_container(ns, &c.id, true, true);
            }
            return Err(Error::Runtime(format!("The command '{cmdline}' returned a non-zero code: {code}")));
        }
        let layer = engine.container_layer(&c);
        let result = layer.and_then(|layer| self.commit_layer(st, by, "", layer));
        if self.opts.rm || self.opts.force_rm {
            let _ = engine.remove_container(ns, &c.id, true, true);
            self.say(&format!("Removing intermediate container {}\n", &c.id[..12]));
        }
        result
    }

    /// Starts a RUN container, streams its output, and returns its exit code.
    fn run_container(&mut self, id: &str) -> Result<i32> {
        let engine = self.engine;
        let rx = engine.attach(self.ns, id, ShimRequest::Attach { stdin: false, stdout: true, stderr: true, detach_keys: vec![], stdin_once: false })?;
        let waiter = engine.wait(self.ns, id, WaitCondition::NextExit)?;
        engine.start(self.ns, id)?;
        if let Ok(mut s) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
            // Docker's multiplexed frames: 8-byte header (stream, 0, 0, 0, size BE).
            let mut header = [0u8; 8];
            while s.read_exact(&mut header).is_ok() {
                let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
                let mut buf = vec![0u8; len];
                if s.read_exact(&mut buf).is_err() {
                    break;
                }
                if !self.opts.quiet {
                    let text = String::from_utf8_lossy(&buf);
                    if header[0] == 2 {
                        // The step's stderr, in red, as dockerd's classic builder sends it.
                        self.say(&format!("\x1b[91m{text}\x1b[0m"));
                    } else {
                        self.say(&text);
                    }
                }
            }
        }
        Ok(waiter.wait())
    }
}

/// A tar stream completed with the padding and end-of-archive blocks it may lack:
/// the docker CLI sends a context whose last entry is unpadded when the Dockerfile
/// comes from outside the context (`-f ../Dockerfile`, `-f -`), and dockerd's reader
/// accepts that. Zeros after a complete tar are never read, so this is harmless.
struct Padded<R> {
    inner: R,
    read: u64,
    /// Zero bytes still to give once `inner` is exhausted.
    tail: Option<u64>,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.tail = Some((512 - self.read % 512) % 512 + 1024);
        }
        let left = self.tail.unwrap_or(0);
        let n = (left.min(buf.len() as u64)) as usize;
        buf[..n].fill(0);
        self.tail = Some(left - n as u64);
        Ok(n)
    }
}

/// The os and architecture `FROM scratch` records. Only two platforms run here: the
/// host's Linux one, and WebAssembly (`wasi/wasm`, `wasip1/wasm`), which any host runs.
fn scratch_platform(platform: Option<&str>) -> Result<(String, String)> {
    let host = || Ok(("linux".to_string(), host_arch()));
    let Some(p) = platform.filter(|p| !p.is_empty()) else { return host() };
    let want = Platform::parse(p)?;
    // `wasi`, `wasip1/wasm`, …: a WASI os with no architecture, or wasm's.
    if want.os.starts_with("wasi") && (want.architecture == "wasm" || !p.contains('/')) {
        return Ok((want.os, "wasm".into()));
    }
    if want.os == "linux" && want.architecture == host_arch() && want.variant.is_empty() {
        return host();
    }
    Err(Error::InvalidArgument(format!("\"{p}\": this Berth builds for linux/{} and wasi/wasm only", host_arch())))
}

/// (image, stage name) of a FROM: `[--platform=…] image [AS name]`.
fn from_parts(ins: &Instruction, escape: char) -> Result<(String, Option<String>)> {
    let w = words(&ins.text(), escape)?;
    match w.as_slice() {
        [image] => Ok((image.clone(), None)),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => Ok((image.clone(), Some(name.to_ascii_lowercase()))),
        _ => Err(Error::InvalidArgument(format!("Dockerfile parse error line {}: FROM requires either one or three arguments", ins.line))),
    }
}

/// `ARG a b=1` → [("a", None), ("b", Some("1"))].
fn arg_decls(ins: &Instruction, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, Option<String>)>> {
    let text = expand(&ins.text(), escape, lookup)?;
    let w = words(&text, escape)?;
    if w.is_empty() {
        return Err(Error::InvalidArgument("ARG requires at least one argument".into()));
    }
    Ok(w.into_iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a, None),
        })
        .collect())
}

/// `--chown=user:group` with names looked up in the image's /etc/passwd and /etc/group.
fn resolve_owner(tree: &Tree, spec: &str) -> Result<(u64, u64)> {
    let (u, g) = spec.split_once(':').map_or((spec, None), |(u, g)| (u, Some(g)));
    let find = |file: &str, name: &str| -> Option<(u64, u64)> {
        let path = tree.lookup(std::path::Path::new(file))?;
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| Some((f.get(2)?.parse().ok()?, f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0))))?
        })
    };
    let uid_gid = match u.parse::<u64>() {
        Ok(n) => (n, n),
        Err(_) => find("etc/passwd", u).ok_or_else(|| Error::InvalidArgument(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {u}")))?,
    };
    let gid = match g {
        None => uid_gid.1,
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => find("etc/group", g).map(|x| x.0).ok_or_else(|| Error::InvalidArgument(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}")))?,
        },
    };
    Ok((uid_gid.0, gid))
}

/// HEALTHCHECK [--interval=…] CMD … | NONE, as the config's Healthcheck object.
fn healthcheck(ins: &Instruction) -> Result<Value> {
    let text = ins.text();
    let (kind, rest) = text.trim().split_once(char::is_whitespace).unwrap_or((text.trim(), ""));
    let test: Vec<String> = match kind.to_ascii_uppercase().as_str() {
        "NONE" => vec!["NONE".into()],
        "CMD" => match serde_json::from_str::<Vec<String>>(rest.trim()) {
            Ok(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
            Err(_) => vec!["CMD-SHELL".into(), rest.trim().to_string()],
        },
        _ => return Err(Error::InvalidArgument("HEALTHCHECK requires CMD or NONE".into())),
    };
    let mut hc = json!({ "Test": test });
    for (k, field) in [("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"), ("start-interval", "StartInterval")] {
        if let Some(v) = ins.flag(k) {
            hc[field] = json!(parse_duration(v).ok_or_else(|| Error::InvalidArgument(format!("invalid duration for --{k}: {v}")))?);
        }
    }
    if let Some(r) = ins.flag("retries") {
        hc["Retries"] = json!(r.parse::<u64>().map_err(|_| Error::InvalidArgument(format!("invalid --retries: {r}")))?);
    }
    Ok(hc)
}

/// Go-style durations (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let num: f64 = rest[..n].parse().ok()?;
        let unit_end = rest[n..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |u| u + n);
        let mult = match &rest[n..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[unit_end..];
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineOptions;

    fn engine(dir: &std::path::Path) -> Arc<Engine> {
        let e = Engine::open(EngineOptions {
            root: dir.to_path_buf(),
            // No RUN here: no container is started.
            helper_exe: "/nonexistent/berth".into(),
            busybox: crate::seed::BUSYBOX_PATH.into(),
            insecure_registries: vec![],
            registry_mirrors: vec![],
        })
        .expect("open engine");
        e.seed_images("default").expect("seed (needs busybox-static)");
        e
    }

    /// A context tar: (path, content), or (path, "->target") for a symlink.
    fn context(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if let Some(target) = content.strip_prefix("->") {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            } else {
                h.set_size(content.len() as u64);
                b.append_data(&mut h, path, content.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn run(e: &Arc<Engine>, files: &[(&str, &str)], opts: &BuildOptions) -> (Result<String>, String) {
        let mut out = String::new();
        let r = build(e, "default", &context(files)[..], opts, &mut |t| out.push_str(t));
        (r, out)
    }

    #[test]
    fn copy_build_is_cached_and_tags_only_on_success() {
        let t = tempfile::tempdir().unwrap();
        let e = engine(t.path());
        let opts = BuildOptions { tags: vec!["app:1".into()], ..Default::default() };
        let files = [("Dockerfile", "FROM busybox\nCOPY a.txt /a.txt\nENV A=1\n"), ("a.txt", "one\n")];
        let (id, out) = run(&e, &files, &opts);
        let id = id.unwrap();
        assert_eq!(e.image_config("default", "app:1").unwrap().0, id);
        assert!(!out.contains("Using cache"), "{out}");
        let config = e.image_config("default", "app:1").unwrap().1;
        assert_eq!(config.rootfs.diff_ids.len(), 2);
        let last = config.history.last().unwrap();
        assert_eq!((last.created_by.as_deref(), last.empty_layer), (Some("/bin/sh -c #(nop)  ENV A=1"), true));
        let (again, out) = run(&e, &files, &opts);
        assert_eq!(again.unwrap(), id, "all steps from the cache: {out}");
        assert_eq!(out.matches("Using cache").count(), 2);

        // A symlinked Dockerfile pointing out of the context is refused, not read.
        let (r, _) = run(&e, &[("Dockerfile", "->/etc/passwd")], &opts);
        assert!(r.unwrap_err().to_string().contains("forbidden path outside the build context"));
        // A failure moves no tag.
        let (r, _) = run(&e, &[("Dockerfile", "FROM busybox\nCOPY nope /\n")], &opts);
        assert!(r.is_err());
        assert_eq!(e.image_config("default", "app:1").unwrap().0, id);
    }
}
