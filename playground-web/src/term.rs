//! The terminal: xterm.js (UMD globals `Terminal` and `FitAddon.FitAddon`, loaded by
//! index.html before the app) on a terminal WebSocket, reconnecting with backoff: the
//! student's own (their session's), or an instructor's view of a student's.
//!
//! Frames: binary both ways are terminal bytes; the page's text frames are
//! `TerminalControl` JSON (`{"type":"resize","cols":..,"rows":..}`).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use berth_lessons::api::TerminalControl;
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, HtmlElement, KeyboardEvent, MessageEvent, ResizeObserver, WebSocket};

#[wasm_bindgen]
extern "C" {
    /// xterm.js's `Terminal`.
    #[wasm_bindgen(js_name = Terminal)]
    pub type XTerm;
    #[wasm_bindgen(constructor, js_class = "Terminal")]
    fn new(options: &JsValue) -> XTerm;
    #[wasm_bindgen(method, js_class = "Terminal")]
    fn open(this: &XTerm, parent: &HtmlElement);
    #[wasm_bindgen(method, js_class = "Terminal", js_name = loadAddon)]
    fn load_addon(this: &XTerm, addon: &Fit);
    #[wasm_bindgen(method, js_class = "Terminal")]
    fn write(this: &XTerm, data: &Uint8Array);
    #[wasm_bindgen(method, js_class = "Terminal")]
    fn reset(this: &XTerm);
    #[wasm_bindgen(method, js_class = "Terminal")]
    fn focus(this: &XTerm);
    #[wasm_bindgen(method, js_class = "Terminal")]
    fn dispose(this: &XTerm);
    #[wasm_bindgen(method, getter, js_class = "Terminal")]
    fn cols(this: &XTerm) -> u16;
    #[wasm_bindgen(method, getter, js_class = "Terminal")]
    fn rows(this: &XTerm) -> u16;
    /// `onData(listener: (data: string) => void)`: typed input.
    #[wasm_bindgen(method, js_class = "Terminal", js_name = onData)]
    fn on_data(this: &XTerm, listener: &Closure<dyn FnMut(String)>);
    /// `onBinary(listener: (data: string) => void)`: one char per byte (mouse reports).
    #[wasm_bindgen(method, js_class = "Terminal", js_name = onBinary)]
    fn on_binary(this: &XTerm, listener: &Closure<dyn FnMut(String)>);
    /// `onResize(listener: ({cols, rows}) => void)`.
    #[wasm_bindgen(method, js_class = "Terminal", js_name = onResize)]
    fn on_resize(this: &XTerm, listener: &Closure<dyn FnMut(JsValue)>);
    #[wasm_bindgen(method, js_class = "Terminal", js_name = attachCustomKeyEventHandler)]
    fn attach_custom_key_event_handler(
        this: &XTerm,
        handler: &Closure<dyn FnMut(KeyboardEvent) -> bool>,
    );

    /// `@xterm/addon-fit`'s UMD global: `window.FitAddon.FitAddon`.
    #[wasm_bindgen(js_namespace = FitAddon, js_name = FitAddon)]
    pub type Fit;
    #[wasm_bindgen(constructor, js_namespace = FitAddon, js_class = "FitAddon")]
    fn new() -> Fit;
    #[wasm_bindgen(method, js_class = "FitAddon")]
    fn fit(this: &Fit);
}

/// Who is at the terminal, and so what the page sends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The student at their own terminal: keystrokes, and the size of their screen.
    Owner,
    /// An instructor watching: nothing goes back (the server would drop it anyway).
    Watcher,
    /// An instructor who took over: keystrokes only, as the student's screen keeps
    /// its size (the server ignores an instructor's resize frames).
    Controller,
}

impl Role {
    fn types(self) -> bool {
        self != Role::Watcher
    }

    fn sizes(self) -> bool {
        self == Role::Owner
    }
}

/// The connection's state, shown above the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Reconnecting,
}

/// A DOM event handler kept alive from Rust.
type JsHandler = Closure<dyn FnMut(JsValue)>;

const BACKOFF_MIN_MS: u32 = 500;
const BACKOFF_MAX_MS: u32 = 10_000;

/// The terminal and its socket. Dropping the last `TermSession` does not stop it:
/// call `dispose`.
pub struct TermSession {
    term: XTerm,
    fit: Fit,
    url: String,
    role: Role,
    ws: RefCell<Option<WebSocket>>,
    backoff_ms: Cell<u32>,
    disposed: Cell<bool>,
    on_state: Box<dyn Fn(ConnState)>,
    /// The current socket's handlers (replaced on reconnect).
    ws_closures: RefCell<Vec<JsHandler>>,
    /// The terminal's and the window's handlers, kept alive until `dispose`.
    keep: RefCell<Vec<Box<dyn std::any::Any>>>,
    observer: RefCell<Option<ResizeObserver>>,
    reconnect_timer: RefCell<Option<gloo_timers::callback::Timeout>>,
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

/// A WebSocket URL for `path` on the page's own host (so the instructor's cookie goes
/// with it).
pub fn ws_url(path: &str) -> String {
    let loc = web_sys::window().expect("window").location();
    let scheme = if loc.protocol().unwrap_or_default() == "https:" {
        "wss"
    } else {
        "ws"
    };
    let host = loc.host().unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

/// The terminal WebSocket's URL for `session`, on the page's own host.
pub fn terminal_url(session: &str) -> String {
    ws_url(&format!("/api/sessions/{session}/terminal"))
}

impl TermSession {
    /// Opens a terminal in `parent` and connects it to `url`; `role` says what the page
    /// may send.
    pub fn start(
        parent: &HtmlElement,
        url: String,
        role: Role,
        on_state: impl Fn(ConnState) + 'static,
    ) -> Rc<TermSession> {
        let opts = Object::new();
        set(&opts, "cursorBlink", role.types());
        // A watcher's keys would go nowhere: no cursor of its own to type at.
        set(&opts, "disableStdin", !role.types());
        set(&opts, "fontSize", 14);
        set(
            &opts,
            "fontFamily",
            "'DejaVu Sans Mono', 'Noto Sans Mono CJK KR', 'D2Coding', Menlo, Consolas, monospace",
        );
        set(&opts, "scrollback", 5000);
        let theme = Object::new();
        set(&theme, "background", "#14161a");
        set(&theme, "foreground", "#e6e6e6");
        set(&opts, "theme", theme);
        let term = XTerm::new(&opts);
        let fit = Fit::new();
        term.load_addon(&fit);
        term.open(parent);
        fit.fit();

        let s = Rc::new(TermSession {
            term,
            fit,
            url,
            role,
            ws: RefCell::new(None),
            backoff_ms: Cell::new(BACKOFF_MIN_MS),
            disposed: Cell::new(false),
            on_state: Box::new(on_state),
            ws_closures: RefCell::new(Vec::new()),
            keep: RefCell::new(Vec::new()),
            observer: RefCell::new(None),
            reconnect_timer: RefCell::new(None),
        });

        // Keystrokes: binary frames (UTF-8).
        let weak = Rc::downgrade(&s);
        let on_data = Closure::<dyn FnMut(String)>::new(move |data: String| {
            if let Some(s) = weak.upgrade() {
                s.send_bytes(data.as_bytes());
            }
        });
        s.term.on_data(&on_data);
        let weak = Rc::downgrade(&s);
        let on_binary = Closure::<dyn FnMut(String)>::new(move |data: String| {
            if let Some(s) = weak.upgrade() {
                let bytes: Vec<u8> = data.chars().map(|c| c as u32 as u8).collect();
                s.send_bytes(&bytes);
            }
        });
        s.term.on_binary(&on_binary);
        // A new size: tell the server.
        let weak = Rc::downgrade(&s);
        let on_resize = Closure::<dyn FnMut(JsValue)>::new(move |_dims: JsValue| {
            if let Some(s) = weak.upgrade() {
                s.send_size();
            }
        });
        s.term.on_resize(&on_resize);
        // ctrl-P belongs to the terminal (docker's detach keys), not the print dialog.
        let on_key = Closure::<dyn FnMut(KeyboardEvent) -> bool>::new(|ev: KeyboardEvent| {
            if ev.type_() == "keydown"
                && ev.ctrl_key()
                && !ev.alt_key()
                && !ev.meta_key()
                && ev.key().eq_ignore_ascii_case("p")
            {
                ev.prevent_default();
            }
            true
        });
        s.term.attach_custom_key_event_handler(&on_key);
        // Refit to the box: on window resize and whenever the box itself changes.
        let weak = Rc::downgrade(&s);
        let refit = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            if let Some(s) = weak.upgrade() {
                if !s.disposed.get() {
                    s.fit.fit();
                }
            }
        });
        let window = web_sys::window().expect("window");
        let _ = window.add_event_listener_with_callback("resize", refit.as_ref().unchecked_ref());
        if let Ok(obs) = ResizeObserver::new(refit.as_ref().unchecked_ref()) {
            obs.observe(parent);
            *s.observer.borrow_mut() = Some(obs);
        }
        {
            let mut keep = s.keep.borrow_mut();
            keep.push(Box::new(on_data));
            keep.push(Box::new(on_binary));
            keep.push(Box::new(on_resize));
            keep.push(Box::new(on_key));
            keep.push(Box::new(refit));
        }
        s.connect();
        s
    }

    fn connect(self: &Rc<Self>) {
        if self.disposed.get() {
            return;
        }
        (self.on_state)(ConnState::Connecting);
        let ws = match WebSocket::new(&self.url) {
            Ok(ws) => ws,
            Err(_) => {
                self.schedule_reconnect();
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);

        let weak = Rc::downgrade(self);
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            if let Some(s) = weak.upgrade() {
                s.backoff_ms.set(BACKOFF_MIN_MS);
                // The server replays the scrollback next: start from a clean screen.
                s.term.reset();
                s.fit.fit();
                s.send_size();
                (s.on_state)(ConnState::Connected);
            }
        });
        let weak = Rc::downgrade(self);
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let Some(s) = weak.upgrade() else { return };
            let Ok(ev) = ev.dyn_into::<MessageEvent>() else {
                return;
            };
            let data = ev.data();
            if data.is_instance_of::<js_sys::ArrayBuffer>() {
                s.term.write(&Uint8Array::new(&data));
            }
        });
        let weak: Weak<TermSession> = Rc::downgrade(self);
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            if let Some(s) = weak.upgrade() {
                if !s.disposed.get() {
                    (s.on_state)(ConnState::Reconnecting);
                    s.schedule_reconnect();
                }
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        *self.ws.borrow_mut() = Some(ws);
        *self.ws_closures.borrow_mut() = vec![on_open, on_message, on_close];
    }

    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = self.backoff_ms.get();
        self.backoff_ms.set((delay * 2).min(BACKOFF_MAX_MS));
        let weak = Rc::downgrade(self);
        let timer = gloo_timers::callback::Timeout::new(delay, move || {
            if let Some(s) = weak.upgrade() {
                s.connect();
            }
        });
        *self.reconnect_timer.borrow_mut() = Some(timer);
    }

    fn open_socket(&self) -> Option<WebSocket> {
        self.ws
            .borrow()
            .as_ref()
            .filter(|ws| ws.ready_state() == WebSocket::OPEN)
            .cloned()
    }

    /// Sends terminal bytes (a binary frame), if connected and allowed to type.
    pub fn send_bytes(&self, bytes: &[u8]) {
        if !self.role.types() {
            return;
        }
        if let Some(ws) = self.open_socket() {
            let _ = ws.send_with_u8_array(bytes);
        }
    }

    fn send_size(&self) {
        let (cols, rows) = (self.term.cols(), self.term.rows());
        if !self.role.sizes() || cols == 0 || rows == 0 {
            return;
        }
        if let Some(ws) = self.open_socket() {
            if let Ok(json) = serde_json::to_string(&TerminalControl::Resize { cols, rows }) {
                let _ = ws.send_with_str(&json);
            }
        }
    }

    pub fn focus(&self) {
        self.term.focus();
    }

    /// Closes the socket and the terminal; no reconnect after this.
    pub fn dispose(&self) {
        if self.disposed.replace(true) {
            return;
        }
        self.reconnect_timer.borrow_mut().take();
        if let Some(ws) = self.ws.borrow_mut().take() {
            ws.set_onclose(None);
            ws.set_onmessage(None);
            ws.set_onopen(None);
            let _ = ws.close();
        }
        if let Some(obs) = self.observer.borrow_mut().take() {
            obs.disconnect();
        }
        if let Some(window) = web_sys::window() {
            for k in self.keep.borrow().iter() {
                if let Some(c) = k.downcast_ref::<Closure<dyn FnMut(JsValue)>>() {
                    let _ = window
                        .remove_event_listener_with_callback("resize", c.as_ref().unchecked_ref());
                }
            }
        }
        self.term.dispose();
        self.ws_closures.borrow_mut().clear();
        self.keep.borrow_mut().clear();
    }
}
