//! A class's live dashboard `/teach/classes/{id}`: the join panel (code, address, QR
//! code, big enough for a projector), the progress of each step, the raised hands,
//! messages and recent actions, and the students, each with what the instructor can do
//! to their lab (watch or take over its terminal, message, reset, end, download the
//! transcript).
//!
//! The first picture comes from `GET /api/teach/classes/{id}`; then the server pushes
//! a whole `Dashboard` as a `dashboard` event of `/live` (server-sent events) whenever
//! it changes. Ages ("3 min") are counted against the server's `now` plus the time
//! since the picture arrived, and move every second.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::rc::Rc;

use berth_lessons::api::{Dashboard, StudentRow};
use gloo_timers::callback::{Interval, Timeout};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{EventSource, MessageEvent};
use yew::prelude::*;

use crate::app::Loaded;
use crate::broadcast::{BroadcastBox, MessageDialog};
use crate::class_window::{self, WindowControls};
use crate::confirm::ConfirmDialog;
use crate::dom;
use crate::hands_queue::HandsQueue;
use crate::header::TopBar;
use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::{Lang, Lesson};
use crate::recent_actions::RecentActions;
use crate::route;
use crate::student_row::{student_row, Pending, RowTools};
use crate::time;
use crate::watch::{Target, WatchPanel};

#[derive(Properties, PartialEq)]
pub struct DashProps {
    pub lang: Lang,
    pub on_lang: Callback<Lang>,
    pub id: String,
}

/// The last picture and when it arrived (the browser's clock, ms).
#[derive(Clone, PartialEq)]
struct Picture {
    dash: Rc<Dashboard>,
    received: f64,
}

#[derive(Clone, PartialEq)]
enum Trouble {
    /// 401: the login expired (or there was none).
    LoggedOut,
    NotFound,
    /// Anything else (the server is away?): retried.
    Failed(http::Error),
}

/// The live feed's state, shown by the class's name.
#[derive(Clone, Copy, PartialEq)]
enum Conn {
    Connecting,
    Live,
    Reconnecting,
}

/// How long a failed load or a closed feed waits before trying again.
const RETRY_MS: u32 = 3000;

/// The open feed: closing it (drop) detaches the handlers first, so that no event
/// reaches a dropped closure.
struct Feed {
    source: EventSource,
    on_dashboard: Closure<dyn FnMut(MessageEvent)>,
    // Kept alive for the source's handlers.
    _on_open: Closure<dyn FnMut(JsValue)>,
    _on_error: Closure<dyn FnMut(JsValue)>,
}

impl Feed {
    fn open(
        url: &str,
        picture: UseStateSetter<Option<Picture>>,
        conn: UseStateSetter<Conn>,
        closed: impl Fn() + 'static,
    ) -> Option<Feed> {
        let source = EventSource::new(url).ok()?;
        let on_dashboard = {
            let conn = conn.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(text) = ev.data().as_string() else {
                    return;
                };
                if let Ok(dash) = serde_json::from_str::<Dashboard>(&text) {
                    picture.set(Some(Picture {
                        dash: Rc::new(dash),
                        received: time::now_ms(),
                    }));
                    conn.set(Conn::Live);
                }
            })
        };
        let on_open = {
            let conn = conn.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| conn.set(Conn::Live))
        };
        let on_error = {
            let source = source.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
                conn.set(Conn::Reconnecting);
                // CONNECTING: the browser retries by itself. CLOSED: it gave up (an
                // answer that was not a stream: a 401 after the login expired, a
                // restart's 502): start over, which tells a 401 from the rest.
                if source.ready_state() == EventSource::CLOSED {
                    closed();
                }
            })
        };
        let _ = source
            .add_event_listener_with_callback("dashboard", on_dashboard.as_ref().unchecked_ref());
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Some(Feed {
            source,
            on_dashboard,
            _on_open: on_open,
            _on_error: on_error,
        })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let _ = self.source.remove_event_listener_with_callback(
            "dashboard",
            self.on_dashboard.as_ref().unchecked_ref(),
        );
        self.source.set_onopen(None);
        self.source.set_onerror(None);
        self.source.close();
    }
}

/// The columns the table sorts by (a click on the header; again: the other way).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SortKey {
    /// As they joined (the server's order).
    Joined,
    Name,
    /// Least done first (who may need a hand).
    Progress,
    /// Longest idle first.
    Activity,
    /// Stuck first.
    Stuck,
}

impl SortKey {
    fn code(self) -> &'static str {
        match self {
            SortKey::Joined => "joined",
            SortKey::Name => "name",
            SortKey::Progress => "progress",
            SortKey::Activity => "activity",
            SortKey::Stuck => "stuck",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Sort {
    key: SortKey,
    reversed: bool,
}

fn ms_of(t: &str) -> Option<f64> {
    time::parse_rfc3339(t)
}

/// Seconds from `t` to `now` (0 if `t` is later or unreadable).
pub(crate) fn age_secs(now: f64, t: &str) -> u64 {
    ms_of(t)
        .map(|ms| ((now - ms) / 1000.0).max(0.0) as u64)
        .unwrap_or(0)
}

fn compare(key: SortKey, a: &StudentRow, b: &StudentRow) -> Ordering {
    match key {
        SortKey::Joined => Ordering::Equal,
        SortKey::Name => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        SortKey::Progress => {
            let frac = |r: &StudentRow| f64::from(r.done) / f64::from(r.total.max(1));
            frac(a)
                .partial_cmp(&frac(b))
                .unwrap_or(Ordering::Equal)
                .then(a.done.cmp(&b.done))
        }
        SortKey::Activity => {
            // Never active counts as the longest idle; then the oldest activity first.
            let t = |r: &StudentRow| r.last_activity.as_deref().and_then(ms_of);
            match (t(a), t(b)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            }
        }
        SortKey::Stuck => a.stuck.is_none().cmp(&b.stuck.is_none()),
    }
}

/// The rows to show: filtered by name and stuck-ness, sorted (stably: equal rows keep
/// the join order).
fn visible<'a>(
    students: &'a [StudentRow],
    filter: &str,
    stuck_only: bool,
    sort: Sort,
) -> Vec<&'a StudentRow> {
    let needle = filter.trim().to_lowercase();
    let mut rows: Vec<&StudentRow> = students
        .iter()
        .filter(|r| needle.is_empty() || r.name.to_lowercase().contains(&needle))
        .filter(|r| !stuck_only || r.stuck.is_some())
        .collect();
    rows.sort_by(|a, b| {
        let o = compare(sort.key, a, b);
        if sort.reversed {
            o.reverse()
        } else {
            o
        }
    });
    rows
}

#[function_component(DashboardPage)]
pub fn dashboard_page(props: &DashProps) -> Html {
    let l = props.lang;
    let picture = use_state_eq(|| None::<Picture>);
    let trouble = use_state_eq(|| None::<Trouble>);
    let conn = use_state_eq(|| Conn::Connecting);
    // Bumped to load and subscribe again (after a failure or a closed feed).
    let generation = use_state(|| 0u32);
    let lessons = use_state(|| Loaded::<Rc<Vec<Lesson>>>::Loading);
    let sort = use_state(|| Sort {
        key: SortKey::Joined,
        reversed: false,
    });
    let filter = use_state(String::new);
    let stuck_only = use_state(|| false);
    let projector = use_state(|| false);

    // Lesson and step titles, in both languages.
    {
        let lessons = lessons.setter();
        use_effect_with((), move |_| {
            spawn_local(async move {
                let mut delay = 1000;
                loop {
                    match http::lessons_sorted().await {
                        Ok(list) => return lessons.set(Loaded::Ready(Rc::new(list))),
                        Err(_) => {
                            lessons.set(Loaded::Failed);
                            gloo_timers::future::TimeoutFuture::new(delay).await;
                            delay = (delay * 2).min(10_000);
                        }
                    }
                }
            });
        });
    }

    // The picture, then the feed.
    {
        let picture = picture.setter();
        let trouble = trouble.setter();
        let conn = conn.setter();
        let next = {
            let current = *generation;
            let generation = generation.setter();
            move || generation.set(current + 1)
        };
        use_effect_with((props.id.clone(), *generation), move |(id, _)| {
            let alive = Rc::new(Cell::new(true));
            let feed: Rc<RefCell<Option<Feed>>> = Rc::default();
            // Starts over once, after RETRY_MS, unless the view went away.
            let retry = {
                let alive = alive.clone();
                let fired = Rc::new(Cell::new(false));
                Rc::new(move || {
                    if alive.get() && !fired.replace(true) {
                        let alive = alive.clone();
                        let next = next.clone();
                        Timeout::new(RETRY_MS, move || {
                            if alive.get() {
                                next();
                            }
                        })
                        .forget();
                    }
                })
            };
            {
                let (alive, feed, id) = (alive.clone(), feed.clone(), id.clone());
                spawn_local(async move {
                    let answer = http::dashboard(&id).await;
                    if !alive.get() {
                        return;
                    }
                    match answer {
                        Ok(dash) => {
                            trouble.set(None);
                            picture.set(Some(Picture {
                                dash: Rc::new(dash),
                                received: time::now_ms(),
                            }));
                            let url = format!("{}/live", http::dashboard_path(&id));
                            let retry = retry.clone();
                            *feed.borrow_mut() =
                                Feed::open(&url, picture, conn.clone(), move || retry());
                            if feed.borrow().is_none() {
                                conn.set(Conn::Reconnecting);
                            }
                        }
                        Err(e) if e.is_unauthorized() => trouble.set(Some(Trouble::LoggedOut)),
                        Err(e) if e.is_not_found() => trouble.set(Some(Trouble::NotFound)),
                        Err(e) => {
                            conn.set(Conn::Reconnecting);
                            trouble.set(Some(Trouble::Failed(e)));
                            retry();
                        }
                    }
                });
            }
            move || {
                alive.set(false);
                feed.borrow_mut().take();
            }
        });
    }

    let top = |right: Html| {
        html! {
            <TopBar lang={l} on_lang={props.on_lang.clone()} tagline={T::Instructor}
                home={AttrValue::Static("/teach")} {right} />
        }
    };

    let body = match (&*trouble, &*picture) {
        (Some(Trouble::LoggedOut), _) => html! {
            <section class="card narrow">
                <p id="login-expired">{ tr(l, T::LoginExpired) }</p>
                <a id="teach-login-link" class="button primary" href="/teach">{ tr(l, T::LoginAgain) }</a>
            </section>
        },
        (Some(Trouble::NotFound), _) => html! {
            <section class="card narrow">
                <p id="class-not-found" class="error">{ tr(l, T::ClassNotFound) }</p>
                <a href="/teach">{ tr(l, T::BackToClasses) }</a>
            </section>
        },
        (_, Some(p)) => {
            let lessons = match &*lessons {
                Loaded::Ready(list) => list.clone(),
                _ => Rc::default(),
            };
            html! {
                <DashView lang={l} id={props.id.clone()} picture={p.clone()} lessons={lessons}
                    conn={*conn} sort={sort.clone()} filter={filter.clone()}
                    stuck_only={stuck_only.clone()} projector={projector.clone()} />
            }
        }
        (Some(Trouble::Failed(e)), None) => html! {
            <section class="card narrow"><p class="error">{ i18n::error_text(l, e) }</p></section>
        },
        (None, None) => html! { <p class="muted">{ tr(l, T::Loading) }</p> },
    };
    html! {
        <div class="doc-page dashboard-page">
            { top(html! { <a id="back-to-classes" class="on-dark" href="/teach">{ tr(l, T::BackToClasses) }</a> }) }
            <main class="doc wide">{ body }</main>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ViewProps {
    lang: Lang,
    id: String,
    picture: Picture,
    lessons: Rc<Vec<Lesson>>,
    conn: Conn,
    sort: UseStateHandle<Sort>,
    filter: UseStateHandle<String>,
    stuck_only: UseStateHandle<bool>,
    projector: UseStateHandle<bool>,
}

#[function_component(DashView)]
fn dash_view(props: &ViewProps) -> Html {
    // Ages move every second (here: a child with unchanged props is not rendered
    // again when its parent is).
    {
        let update = use_force_update();
        use_effect_with((), move |_| {
            let tick = Interval::new(1000, move || update.force_update());
            move || drop(tick)
        });
    }
    // The terminal being watched, what waits for a confirmation, the message being
    // written, the last failed request.
    let watch = use_state(|| None::<Target>);
    let pending = use_state(|| None::<Pending>);
    let message_to = use_state(|| None::<String>);
    let error = use_state(|| None::<http::Error>);
    let on_error = {
        let error = error.setter();
        Callback::from(move |e: http::Error| error.set(Some(e)))
    };
    let l = props.lang;
    let d = &props.picture.dash;
    let c = &d.class;
    // The server's clock now: its `now` plus what passed here since.
    let now = ms_of(&d.now).unwrap_or(props.picture.received)
        + (time::now_ms() - props.picture.received).max(0.0);
    let lesson_of = |id: &str| props.lessons.iter().find(|x| x.id == id);
    let lesson_title = |id: &str| {
        lesson_of(id)
            .map(|x| x.title.get(l).to_string())
            .unwrap_or_else(|| id.to_string())
    };
    let step_title = |lesson: &str, step: &str| {
        lesson_of(lesson)
            .and_then(|x| x.step(step))
            .map(|s| s.title.get(l).to_string())
            .unwrap_or_else(|| step.to_string())
    };

    // The live feed's state.
    let (conn_code, conn_text) = match props.conn {
        Conn::Connecting => ("connecting", tr(l, T::Loading)),
        Conn::Live => ("live", tr(l, T::Live)),
        Conn::Reconnecting => ("reconnecting", tr(l, T::LiveReconnecting)),
    };
    let state = i18n::class_state_code(c.state);
    let head = html! {
        <section class="dash-head">
            <h1 id="class-name" class="class-title">{ c.name.clone() }</h1>
            <span id="class-state" class={classes!("state-badge", state)} data-state={state}>
                { i18n::class_state(l, c.state) }
            </span>
            if let Some(o) = &c.opens {
                <span class="muted">{ i18n::opens_at(l, &time::local_rfc3339(l, o)) }</span>
            }
            if let Some(cl) = &c.closes {
                <span class="muted">{ i18n::closes_at(l, &time::local_rfc3339(l, cl)) }</span>
            }
            <span class="spacer"></span>
            <WindowControls lang={l} class={props.id.clone()} state={c.state}
                on_close={
                    let pending = pending.setter();
                    Callback::from(move |_: ()| pending.set(Some(Pending::CloseClass)))
                }
                on_error={on_error.clone()} />
            <a id="export-csv" class="button" href={http::progress_csv_path(&props.id)} download=""
                title={tr(l, T::ExportCsvTitle)}>
                { tr(l, T::ExportCsv) }
            </a>
            <span id="live-state" class={classes!("live-state", conn_code)} data-state={conn_code}>
                { conn_text }
            </span>
        </section>
    };
    let error_line = (*error).as_ref().map(|e| {
        let close = {
            let error = error.setter();
            Callback::from(move |_: MouseEvent| error.set(None))
        };
        html! {
            <p id="dash-error" class="error form-error dash-error" data-kind={http::kind_code(e.kind())}>
                { i18n::error_text(l, e) }
                <button type="button" class="small-button" onclick={close}>{ tr(l, T::Dismiss) }</button>
            </p>
        }
    });

    // What the instructor can open from a row or the queue.
    let on_watch = {
        let watch = watch.setter();
        Callback::from(move |(name, control): (String, bool)| {
            watch.set(Some(Target { name, control }))
        })
    };
    let on_message = {
        let message_to = message_to.setter();
        Callback::from(move |name: String| message_to.set(Some(name)))
    };
    let on_confirm = {
        let pending = pending.setter();
        Callback::from(move |p: Pending| pending.set(Some(p)))
    };
    let middle = html! {
        <div class="dash-mid">
            <HandsQueue lang={l} class={props.id.clone()} hands={d.hands.clone()} now={now}
                on_watch={on_watch.reform(|name: String| (name, false))} on_error={on_error.clone()} />
            <BroadcastBox lang={l} class={props.id.clone()} messages={d.messages.clone()}
                on_error={on_error.clone()} />
            <RecentActions lang={l} actions={d.actions.clone()} />
        </div>
    };

    // On top of the page: a confirmation, a message to one student, the terminal.
    let confirm = (*pending).clone().map(|p| {
        let (text, yes) = match &p {
            Pending::Reset(name) => (i18n::confirm_reset(l, name), tr(l, T::Reset)),
            Pending::End(name) => (i18n::confirm_end(l, name), tr(l, T::End)),
            Pending::CloseClass => (tr(l, T::ConfirmClose).to_string(), tr(l, T::CloseNow)),
        };
        let on_yes = {
            let (pending, on_error) = (pending.setter(), on_error.clone());
            let (class, info) = (props.id.clone(), c.clone());
            Callback::from(move |_: ()| {
                pending.set(None);
                let class = class.clone();
                match p.clone() {
                    Pending::Reset(name) => http::run(
                        async move { http::reset_lab(&class, &name).await },
                        on_error.clone(),
                    ),
                    Pending::End(name) => http::run(
                        async move { http::end_lab(&class, &name).await },
                        on_error.clone(),
                    ),
                    Pending::CloseClass => class_window::close_now(&class, &info, on_error.clone()),
                }
            })
        };
        let on_no = {
            let pending = pending.setter();
            Callback::from(move |_: ()| pending.set(None))
        };
        html! { <ConfirmDialog lang={l} text={text} yes={yes} {on_yes} {on_no} /> }
    });
    let dialog = (*message_to).clone().map(|name| {
        let on_close = {
            let message_to = message_to.setter();
            Callback::from(move |_: ()| message_to.set(None))
        };
        html! {
            <MessageDialog lang={l} class={props.id.clone()} name={name} {on_close} on_error={on_error.clone()} />
        }
    });
    let panel = (*watch).clone().map(|target| {
        let on_control = {
            let (watch, name) = (watch.setter(), target.name.clone());
            Callback::from(move |control: bool| {
                watch.set(Some(Target {
                    name: name.clone(),
                    control,
                }))
            })
        };
        let on_close = {
            let watch = watch.setter();
            Callback::from(move |_: ()| watch.set(None))
        };
        html! {
            <>
                // Room under the table for the docked panel.
                <div class="watch-spacer"></div>
                <WatchPanel lang={l} class={props.id.clone()} {target} {on_control} {on_close} />
            </>
        }
    });
    let tools = RowTools {
        class: &props.id,
        watching: &d.watching,
        on_watch,
        on_message,
        on_confirm,
    };

    // The join panel: what the students type, large (larger still on the projector).
    let join_url = format!("{}{}", route::origin(), c.join_path);
    let big = *props.projector;
    let toggle = {
        let projector = props.projector.clone();
        Callback::from(move |_: MouseEvent| projector.set(!*projector))
    };
    let join_panel = html! {
        <section id="join-panel" class={classes!("card", "join-panel", big.then_some("projector"))}>
            <div class="join-text">
                <div class="field-label">{ tr(l, T::JoinAt) }</div>
                <div id="join-url" class="join-url">{ join_url.clone() }</div>
                <div class="field-label">{ tr(l, T::JoinCode) }</div>
                <div id="class-code" class="class-code">{ c.code.clone() }</div>
            </div>
            <img id="join-qr" class="join-qr" alt={join_url}
                src={format!("{}/qr.svg", http::dashboard_path(&props.id))} />
            <button id="join-panel-toggle" type="button" class="join-panel-toggle" onclick={toggle}>
                { if big { tr(l, T::CloseLarge) } else { tr(l, T::ShowLarge) } }
            </button>
        </section>
    };

    // How many finished each step, grouped by lesson.
    let students = d.students.len();
    let mut groups: Vec<(String, Vec<Html>)> = Vec::new();
    for s in &d.steps {
        let pct = (f64::from(s.finished) * 100.0 / students.max(1) as f64).min(100.0);
        let row = html! {
            <div class="step-sum" data-lesson={s.lesson.clone()} data-step={s.step.clone()}
                data-finished={s.finished.to_string()}>
                <span class="step-sum-title" title={step_title(&s.lesson, &s.step)}>
                    { step_title(&s.lesson, &s.step) }
                </span>
                <span class="bar"><span class="fill" style={format!("width:{pct:.1}%")}></span></span>
                <span class="step-sum-count">{ i18n::finished_of(l, s.finished, students) }</span>
            </div>
        };
        match groups.last_mut() {
            Some((lesson, rows)) if *lesson == s.lesson => rows.push(row),
            _ => groups.push((s.lesson.clone(), vec![row])),
        }
    }
    let summary = html! {
        <section class="card">
            <h2 class="card-title">{ tr(l, T::ProgressByStep) }</h2>
            <div id="step-summary" class="step-summary">
            { for groups.into_iter().map(|(lesson, rows)| html! {
                <div class="step-sum-lesson" data-lesson={lesson.clone()}>
                    <h3 class="step-sum-lesson-title">{ lesson_title(&lesson) }</h3>
                    { for rows }
                </div>
            }) }
            </div>
        </section>
    };

    // The students.
    let sort = *props.sort;
    let header = |key: SortKey, text: &'static str, title: Option<&'static str>| {
        let active = sort.key == key;
        let onclick = {
            let handle = props.sort.clone();
            Callback::from(move |_: MouseEvent| {
                let s = *handle;
                handle.set(Sort {
                    key,
                    reversed: s.key == key && !s.reversed,
                })
            })
        };
        let dir = match (active, sort.reversed) {
            (false, _) => "none",
            (true, false) => "default",
            (true, true) => "reversed",
        };
        html! {
            <th class={classes!("sortable", active.then_some("sorted"))} data-sort={key.code()}
                data-dir={dir} title={title} {onclick}>
                { text }
                <span class="sort-mark">{ match dir { "default" => " ▾", "reversed" => " ▴", _ => "" } }</span>
            </th>
        }
    };
    let rows = visible(&d.students, &props.filter, *props.stuck_only, sort);
    let on_filter = {
        let filter = props.filter.setter();
        Callback::from(move |e: InputEvent| filter.set(dom::input_value(&e)))
    };
    let on_stuck_only = {
        let stuck_only = props.stuck_only.setter();
        Callback::from(move |e: Event| stuck_only.set(dom::checked(&e)))
    };
    let table = html! {
        <section class="card">
            <div class="table-tools">
                <h2 class="card-title">{ tr(l, T::Students) }</h2>
                <span id="student-count" class="muted">{ i18n::student_count(l, students) }</span>
                <span class="spacer"></span>
                <input id="student-filter" type="search" placeholder={tr(l, T::FilterPlaceholder)}
                    value={(*props.filter).clone()} oninput={on_filter} />
                <label class="check">
                    <input id="stuck-only" type="checkbox" checked={*props.stuck_only} onchange={on_stuck_only} />
                    { tr(l, T::StuckOnly) }
                </label>
            </div>
            <div class="table-scroll">
            <table id="students" class="table students">
                <thead>
                    <tr>
                        { header(SortKey::Name, tr(l, T::ColName), None) }
                        <th>{ format!("{} / {}", tr(l, T::ColStep), tr(l, T::ColLesson)) }</th>
                        { header(SortKey::Progress, tr(l, T::ColProgress), None) }
                        <th>{ tr(l, T::ColOnStep) }</th>
                        { header(SortKey::Activity, tr(l, T::ColLastActivity), None) }
                        <th class="num">{ tr(l, T::ColContainers) }</th>
                        <th class="num">{ tr(l, T::ColAttempts) }</th>
                        <th>{ tr(l, T::ColLastAction) }</th>
                        { header(SortKey::Stuck, tr(l, T::ColStuck), Some(tr(l, T::SortStuckTitle))) }
                        <th>{ tr(l, T::ColTools) }</th>
                    </tr>
                </thead>
                <tbody>
                { for rows.into_iter().map(|r| student_row(l, now, r, &lesson_title, &step_title, &tools)) }
                </tbody>
            </table>
            </div>
            if d.students.is_empty() {
                <p id="no-students" class="muted">{ tr(l, T::NoStudents) }</p>
            }
        </section>
    };

    html! {
        <>
            { head }
            { error_line.unwrap_or_default() }
            <div class="dash-top">
                { join_panel }
                { summary }
            </div>
            { middle }
            { table }
            { panel.unwrap_or_default() }
            { confirm.unwrap_or_default() }
            { dialog.unwrap_or_default() }
        </>
    }
}

#[cfg(test)]
mod tests {
    use berth_lessons::api::Stuck;

    use super::*;

    /// From JSON, as the server sends it (fields the wire type gains later default).
    fn row(name: &str, done: u32, activity: Option<&str>, stuck: bool) -> StudentRow {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "joined": "2024-05-01T09:00:00Z",
            "lesson": null,
            "step": null,
            "done": done,
            "total": 10,
            "step_since": "2024-05-01T09:00:00Z",
            "last_activity": activity,
            "attempts": 0,
            "last_action": null,
            "containers_running": 0,
            "online": true,
            "stuck": stuck.then_some(Stuck::NoProgress { minutes: 12 }),
        }))
        .unwrap()
    }

    fn names(rows: &[&StudentRow]) -> Vec<String> {
        rows.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn sorts_and_filters() {
        let students = vec![
            row("dana", 5, Some("2024-05-01T09:10:00Z"), false),
            row("Ari", 2, None, true),
            row("cho", 9, Some("2024-05-01T09:05:00Z"), true),
            row("Bo", 2, Some("2024-05-01T09:20:00Z"), false),
        ];
        let sort = |key, reversed| Sort { key, reversed };
        let all = |s| names(&visible(&students, "", false, s));
        assert_eq!(
            all(sort(SortKey::Joined, false)),
            ["dana", "Ari", "cho", "Bo"]
        );
        assert_eq!(
            all(sort(SortKey::Name, false)),
            ["Ari", "Bo", "cho", "dana"]
        );
        assert_eq!(all(sort(SortKey::Name, true)), ["dana", "cho", "Bo", "Ari"]);
        assert_eq!(
            all(sort(SortKey::Progress, false)),
            ["Ari", "Bo", "dana", "cho"]
        );
        assert_eq!(
            all(sort(SortKey::Activity, false)),
            ["Ari", "cho", "dana", "Bo"]
        );
        assert_eq!(
            all(sort(SortKey::Stuck, false)),
            ["Ari", "cho", "dana", "Bo"]
        );
        assert_eq!(
            names(&visible(&students, "", true, sort(SortKey::Joined, false))),
            ["Ari", "cho"]
        );
        assert_eq!(
            names(&visible(
                &students,
                " A",
                false,
                sort(SortKey::Joined, false)
            )),
            ["dana", "Ari"]
        );
    }

    #[test]
    fn ages() {
        let now = ms_of("2024-05-01T09:03:30Z").unwrap();
        assert_eq!(age_secs(now, "2024-05-01T09:00:00Z"), 210);
        assert_eq!(age_secs(now, "2024-05-01T09:05:00Z"), 0);
        assert_eq!(age_secs(now, "junk"), 0);
    }
}
