//! A session's terminal: one attach to the workstation's shell, held by the server and
//! shared by every browser tab of the session. The output is kept as scrollback, so a
//! reload or a dropped network finds the same shell with what it showed.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::container::Status;
use berth_engine::spec::ShimRequest;
use berth_engine::{Engine, Error};
use bytes::Bytes;
use tokio::sync::broadcast;

/// Bytes of output a reconnecting page gets back.
const SCROLLBACK: usize = 256 * 1024;

/// Keystrokes kept while the shell is being attached (typed ahead, as a terminal's
/// line discipline keeps them until the shell reads).
const TYPEAHEAD: usize = 4096;

pub struct Terminal {
    engine: Arc<Engine>,
    namespace: String,
    container: String,
    inner: Mutex<Inner>,
    output: broadcast::Sender<Bytes>,
    closed: AtomicBool,
}

#[derive(Default)]
struct Inner {
    scrollback: VecDeque<u8>,
    /// Where keystrokes go: the current attach stream, if the shell is up.
    input: Option<UnixStream>,
    /// Keystrokes typed while there was none, given to the next shell.
    typed_ahead: Vec<u8>,
    /// The page's last size (cols, rows), given again to each new shell.
    size: Option<(u16, u16)>,
}

impl Terminal {
    /// Starts holding the shell of `container` (in `namespace`) and returns at once; the
    /// attach is made (and remade whenever the shell ends) on a thread of its own.
    pub fn open(engine: Arc<Engine>, namespace: &str, container: &str) -> Arc<Terminal> {
        let (output, _) = broadcast::channel(1024);
        let t = Arc::new(Terminal {
            engine,
            namespace: namespace.to_string(),
            container: container.to_string(),
            inner: Mutex::new(Inner::default()),
            output,
            closed: AtomicBool::new(false),
        });
        let held = t.clone();
        std::thread::Builder::new()
            .name("lab-terminal".into())
            .spawn(move || held.hold())
            .expect("spawn a terminal thread");
        t
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scrollback so far and a receiver of everything after it, taken together so
    /// nothing is lost or shown twice between the two.
    pub fn connect(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        let inner = self.lock();
        let replay = inner.scrollback.iter().copied().collect();
        (replay, self.output.subscribe())
    }

    /// Keystrokes from a page. While the shell is being attached (a page opened as the
    /// session starts, or after `exit`) they wait for it, up to [`TYPEAHEAD`] bytes.
    pub fn write(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        if let Some(s) = inner.input.as_mut() {
            if s.write_all(bytes).is_ok() {
                return;
            }
            inner.input = None;
        }
        let room = TYPEAHEAD.saturating_sub(inner.typed_ahead.len());
        inner.typed_ahead.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    pub fn resize(&self, cols: u16, rows: u16) -> Result<(), Error> {
        self.lock().size = Some((cols, rows));
        match self.engine.resize(&self.namespace, &self.container, rows, cols) {
            // Not started yet: the size is applied once it is.
            Err(Error::Conflict(_)) => Ok(()),
            r => r,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops holding the shell (the session is being removed).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(s) = self.lock().input.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let sb = &mut inner.scrollback;
        sb.extend(bytes);
        let excess = sb.len().saturating_sub(SCROLLBACK);
        sb.drain(..excess);
        let _ = self.output.send(Bytes::copy_from_slice(bytes));
    }

    /// Attaches to the shell, pumps its output, and when it ends (the student typed
    /// `exit`) starts a new one, until the terminal is closed.
    fn hold(self: Arc<Self>) {
        let mut failures = 0u32;
        while !self.closed.load(Ordering::SeqCst) {
            match self.attach_once() {
                Ok(()) => {
                    failures = 0;
                    if !self.closed.load(Ordering::SeqCst) {
                        self.push(b"\r\n[berth: the shell ended; here is a new one]\r\n");
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(container = %self.container, namespace = %self.namespace, "lab terminal: {e}");
                    if failures > 3 {
                        self.push(format!("\r\n[berth: the workstation does not start: {e}]\r\n").as_bytes());
                        std::thread::sleep(Duration::from_secs(10));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn attach_once(&self) -> Result<(), Error> {
        let c = self.engine.container(&self.namespace, &self.container)?;
        let request = ShimRequest::Attach { stdin: true, stdout: true, stderr: true, detach_keys: vec![], stdin_once: false };
        // Attach before a start, so the first prompt is not missed.
        let rx = self.engine.attach(&self.namespace, &self.container, request)?;
        let was_running = c.state.status == Status::Running;
        if !was_running {
            match self.engine.start(&self.namespace, &self.container) {
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut stream = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| Error::Runtime("the workstation did not attach".into()))?;
        let input = stream.try_clone().map_err(|e| Error::Runtime(format!("attach stream: {e}")))?;
        let size = {
            let mut inner = self.lock();
            let mut input = input;
            let typed = std::mem::take(&mut inner.typed_ahead);
            if !typed.is_empty() {
                let _ = input.write_all(&typed);
            }
            inner.input = Some(input);
            inner.size
        };
        if let Some((cols, rows)) = size {
            let _ = self.engine.resize(&self.namespace, &self.container, rows, cols);
        }
        if was_running {
            // Redraw the prompt for a page that reconnects to a shell started earlier.
            self.write(b"\x0c");
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.push(&buf[..n]),
            }
        }
        self.lock().input = None;
        Ok(())
    }
}
