//! Helpers for lab tests: a `berth serve --listen` with its web API, sessions, and a
//! WebSocket terminal driven like the playground's.

use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Message, WebSocket};

use crate::{require, Berth};

pub struct Lab {
    pub berth: Berth,
    /// Its web listener (`lab.addr`, `lab.http(…)` through `Deref`).
    pub web: Web,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Lab {
    pub fn start() -> Lab {
        Lab::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Lab {
        Lab::start_on(&format!("127.0.0.1:{}", free_port()), extra)
    }

    /// A lab server whose web listener is at `addr` (HOST:PORT).
    pub fn start_on(addr: &str, extra: &[&str]) -> Lab {
        require("curl", "apt-get install curl");
        let addr = addr.to_string();
        let mut args = vec!["--listen", addr.as_str()];
        args.extend_from_slice(extra);
        let berth = Berth::start_with(&args);
        let log = berth.root.with_file_name("server.log");
        let lab = Lab {
            berth,
            web: Web { addr, log },
        };
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&lab.addr).is_err() {
            assert!(
                Instant::now() < end,
                "the web listener did not open: {}",
                lab.berth.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lab
    }

    /// The session's Docker API socket: what its workstation's CLI talks to.
    pub fn session_socket(&self, id: &str) -> std::path::PathBuf {
        self.berth
            .root
            .join("lab")
            .join(id)
            .join("api")
            .join("docker.sock")
    }

    /// A session's envelope cgroup for `controller` (`pids`, `cpu`, `memory`): on
    /// cgroup v1 below that controller's root, on v2 the one directory.
    pub fn session_cgroup(&self, id: &str, controller: &str) -> std::path::PathBuf {
        let name = format!("berth/lab-{}", &id[..12]);
        let root = std::path::Path::new("/sys/fs/cgroup");
        if crate::cgroup_v2() {
            root.join(name)
        } else {
            root.join(controller).join(name)
        }
    }

    /// A file of a session's envelope cgroup, trimmed (empty when it is not there).
    pub fn session_cgroup_file(&self, id: &str, controller: &str, file: &str) -> String {
        std::fs::read_to_string(self.session_cgroup(id, controller).join(file))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The docker CLI on the host, pointed at a session's socket.
    pub fn session_docker(&self, id: &str, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.session_socket(id).display()),
            )
            .env("DOCKER_CONFIG", &self.berth.config_dir)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// [`Lab::session_docker`] that must succeed: its stdout, trimmed.
    pub fn session_docker_ok(&self, id: &str, args: &[&str]) -> String {
        let o = self.session_docker(id, args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl std::ops::Deref for Lab {
    type Target = Web;

    fn deref(&self) -> &Web {
        &self.web
    }
}

/// A web listener of Berth (a lab server's, a lab node's, a hub's) as a browser uses it.
pub struct Web {
    /// HOST:PORT.
    pub addr: String,
    /// The server's log, shown when a request fails.
    pub log: std::path::PathBuf,
}

impl Web {
    /// An instructor's login: the `Cookie:` header that carries it, or the refusal
    /// (status, body).
    pub fn login(&self, name: &str, password: &str) -> Result<String, (u16, String)> {
        let (code, body, headers) = self.http_with(
            "POST",
            "/api/teach/login",
            Some(&serde_json::json!({ "name": name, "password": password }).to_string()),
            &[],
        );
        if code != 204 {
            return Err((code, body));
        }
        let cookie = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .unwrap_or_else(|| panic!("no cookie in {headers}"));
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        Ok(format!("Cookie: {}", cookie.split(';').next().unwrap()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `curl` against the web listener: (status, body).
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
        ]);
        if let Some(b) = body {
            c.args(["--data-binary", b]);
        }
        let out = c
            .arg(format!("http://{}{path}", self.addr))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// [`Lab::http`] with request headers (`"Cookie: a=b"`), also giving the answer's
    /// headers: (status, body, headers).
    pub fn http_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[&str],
    ) -> (u16, String, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-D",
            "/dev/stderr",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
        ]);
        for h in headers {
            c.args(["-H", h]);
        }
        if let Some(b) = body {
            c.args(["--data-binary", b]);
        }
        let out = c
            .arg(format!("http://{}{path}", self.addr))
            .stdin(Stdio::null())
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            code.trim().parse().unwrap_or(0),
            body.to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    pub fn json(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (code, text) = self.http(method, path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {text}\nserver log: {}",
            self.log()
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn create_session(&self) -> String {
        let v = self.json("POST", "/api/sessions", None);
        v["id"].as_str().expect("session id").to_string()
    }

    pub fn status(&self, id: &str) -> Value {
        self.json("GET", &format!("/api/sessions/{id}"), None)
    }

    pub fn select(&self, id: &str, lesson: &str) {
        let (code, body) = self.http(
            "POST",
            &format!("/api/sessions/{id}/lesson"),
            Some(&format!("{{\"lesson\":\"{lesson}\"}}")),
        );
        assert_eq!(code, 204, "select lesson {lesson}: {body}");
    }

    /// Steps done in `lesson`, in order.
    pub fn done(&self, id: &str, lesson: &str) -> Vec<String> {
        let s = self.status(id);
        s["progress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["lesson"] == lesson)
            .flat_map(|p| p["done"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    pub fn terminal(&self, id: &str) -> Term {
        self.terminal_at(&format!("/api/sessions/{id}/terminal"), &[])
            .expect("websocket handshake")
    }

    /// A terminal WebSocket at `path` with request headers (`("Cookie", "a=b")`): an
    /// instructor's view of a student's terminal, say. Err: the refused handshake.
    pub fn terminal_at(&self, path: &str, headers: &[(&str, &str)]) -> Result<Term, String> {
        use tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                v.parse().expect("header value"),
            );
        }
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(req, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r)) => format!(
                "{} {}",
                r.status(),
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default())
            ),
            e => e.to_string(),
        })?;
        Ok(Term {
            ws,
            seen: Vec::new(),
            mark: 0,
        })
    }

    /// Polls until `f` holds, failing with the server's log.
    pub fn eventually(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        panic!(
            "timed out waiting for: {what}\nserver log tail:\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}

/// The playground's terminal, as a test drives it.
pub struct Term {
    ws: WebSocket<TcpStream>,
    /// Everything received, the scrollback replay first.
    pub seen: Vec<u8>,
    /// Where the next `expect` starts looking.
    mark: usize,
}

impl Term {
    pub fn send(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .expect("send keys");
    }

    /// Types a command line and Enter.
    pub fn line(&mut self, s: &str) {
        self.send(format!("{s}\r").as_bytes());
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.ws
            .send(Message::Text(
                format!("{{\"type\":\"resize\",\"cols\":{cols},\"rows\":{rows}}}").into(),
            ))
            .expect("send resize");
    }

    /// Reads until the terminal has been quiet for a moment (a command finished or
    /// waits for input), or `max` passed.
    pub fn settle(&mut self, max: Duration) {
        let end = Instant::now() + max;
        let mut last = (self.seen.len(), Instant::now());
        while Instant::now() < end {
            self.read_once();
            if self.seen.len() != last.0 {
                last = (self.seen.len(), Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(800) {
                return;
            }
        }
    }

    /// Reads what arrives for a while.
    pub fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.read_once();
        }
    }

    /// Whether the server closed the connection (reading what arrives until then).
    pub fn closed_within(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            match self.ws.read() {
                Ok(Message::Binary(b)) => self.seen.extend_from_slice(&b),
                Ok(Message::Close(_)) => return true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    fn read_once(&mut self) {
        match self.ws.read() {
            Ok(Message::Binary(b)) => self.seen.extend_from_slice(&b),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("terminal closed: {e}\nseen: {}", self.text()),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).to_string()
    }

    /// Forgets what was shown so far: the next `expect` looks only at new output.
    pub fn skip(&mut self) {
        self.mark = self.seen.len();
    }

    /// Waits until `needle` appears after the previous match; returns the text between.
    pub fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let hay = String::from_utf8_lossy(&self.seen[self.mark..]).to_string();
            if let Some(i) = hay.find(needle) {
                self.mark += hay[..i + needle.len()].len();
                return hay[..i].to_string();
            }
            assert!(
                Instant::now() < end,
                "terminal never showed {needle:?}; it showed:\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            self.read_once();
        }
    }
}
