//! The student's page: header, lessons, terminal, status strip; the session and the
//! polling. In a class, the header names the class and the student, the lesson list is
//! the class's, and a banner says when the class is not open; above the terminal, the
//! instructors' messages and the student's hand, and a notice while an instructor
//! types in it. A lab the instructor ended covers the page with the way back.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use berth_lessons::api::{ClassState, ErrorKind, Membership};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::class_messages::{MessageBanner, MessageList};
use crate::header::{PageProps, TopBar};
use crate::http;
use crate::i18n::{self, tr, T};
use crate::join::JoinCodeBox;
use crate::lessons::{LessonList, LessonPane};
use crate::model::{Lang, Lesson};
use crate::notices::{LabEnded, TypingNotice};
use crate::prefs;
use crate::raise_hand::HandBox;
use crate::route;
use crate::status::{StatusStrip, Strip, StripAction};
use crate::term::{terminal_url, ConnState, Role, TermSession};

/// The terminal, shared with the lesson pane's "Type it" buttons.
#[derive(Clone, Default)]
pub struct TermHandle(Rc<RefCell<Option<Rc<TermSession>>>>);

impl PartialEq for TermHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl TermHandle {
    /// Sends bytes to the terminal (as if typed) and focuses it.
    pub fn type_bytes(&self, bytes: &[u8]) {
        if let Some(t) = self.0.borrow().as_ref() {
            t.send_bytes(bytes);
            t.focus();
        }
    }
}

/// The session id, with a generation bumped each time the session is lost (404).
#[derive(Clone, Debug, PartialEq)]
struct SessionSlot {
    generation: u32,
    id: Option<String>,
}

#[derive(Clone, PartialEq)]
pub enum Loaded<T> {
    Loading,
    Failed,
    Ready(T),
}

/// The class's lessons, in the class's order and numbered in it (ids the server does
/// not have are skipped). Outside a class, or a class with no list (a new class's
/// empty list means every lesson): every lesson.
fn class_lessons(all: &Rc<Vec<Lesson>>, class: Option<&Membership>) -> Rc<Vec<Lesson>> {
    let Some(m) = class.filter(|m| !m.class.lessons.is_empty()) else {
        return all.clone();
    };
    Rc::new(
        m.class
            .lessons
            .iter()
            .filter_map(|id| all.iter().find(|l| &l.id == id))
            .zip(1..)
            .map(|(l, n)| Lesson {
                order: n,
                ..l.clone()
            })
            .collect(),
    )
}

/// An instructor ended the lab (410): the page says so, and leads back to the class.
fn lab_ended(e: &http::Error) -> bool {
    e.kind() == Some(ErrorKind::LabEnded)
}

/// How long a class member's lab may answer 404 before the page takes it for gone:
/// while an instructor resets it, the server takes the lab down and makes it afresh
/// under the same id, and answers 404 meanwhile.
const RESET_GRACE_MS: f64 = 60_000.0;

/// The ended lab's class (its join code), if this browser knows it.
#[derive(Clone, Debug, PartialEq)]
struct Ended {
    code: Option<String>,
}

/// Polls the session once now (after the student changed something, such as their
/// hand), rather than at the next second.
fn refresh(id: String, strip: UseReducerDispatcher<Strip>) {
    spawn_local(async move {
        if let Ok(status) = http::session(&id).await {
            strip.dispatch(StripAction::Polled(Box::new(status), js_sys::Date::now()));
        }
    });
}

#[function_component(App)]
pub fn app(props: &PageProps) -> Html {
    let session = use_state(|| SessionSlot {
        generation: 0,
        id: None,
    });
    let lessons = use_state(|| Loaded::<Rc<Vec<Lesson>>>::Loading);
    let strip = use_reducer(Strip::default);
    let selected = use_state(|| None::<String>);
    // The full lesson list instead of the open lesson (its "Lessons" button).
    let browsing = use_state(|| false);
    let term = use_memo((), |_| TermHandle::default());
    // The server has no open playground and this browser is in no class: no session
    // until the student joins one (with a code).
    let class_only = use_state(|| false);
    // The class of the session, as the last poll said: a class session that is gone
    // leads back to its join page (where this browser's rejoin token is offered), not
    // to an open-playground session outside the class.
    let last_class = use_mut_ref(|| None::<String>);
    let ended = use_state(|| None::<Ended>);

    // The lessons, once (retrying until the server answers).
    {
        let lessons = lessons.setter();
        use_effect_with((), move |_| {
            spawn_local(async move {
                let mut delay = 1000;
                loop {
                    match http::lessons().await {
                        Ok(mut list) => {
                            list.sort_by_key(|l| l.order);
                            lessons.set(Loaded::Ready(Rc::new(list)));
                            break;
                        }
                        Err(_) => {
                            lessons.set(Loaded::Failed);
                            TimeoutFuture::new(delay).await;
                            delay = (delay * 2).min(10_000);
                        }
                    }
                }
            });
        });
    }

    // The session: the stored one if the server still has it, else a new one.
    {
        let slot = (*session).clone();
        let set_session = session.setter();
        let strip = strip.dispatcher();
        let set_class_only = class_only.setter();
        let set_ended = ended.setter();
        use_effect_with(slot.generation, move |_| {
            if slot.id.is_none() {
                spawn_local(async move {
                    let mut delay = 1000;
                    loop {
                        if let Some(id) = prefs::session_id() {
                            match http::session(&id).await {
                                Ok(status) => {
                                    strip.dispatch(StripAction::Polled(
                                        Box::new(status),
                                        js_sys::Date::now(),
                                    ));
                                    set_session.set(SessionSlot {
                                        generation: slot.generation,
                                        id: Some(id),
                                    });
                                    return;
                                }
                                // Kept: coming back to the class gives this id again.
                                Err(e) if lab_ended(&e) => {
                                    set_ended.set(Some(Ended {
                                        code: prefs::session_class(),
                                    }));
                                    return;
                                }
                                Err(e) if e.is_not_found() => prefs::store_session_id(None),
                                Err(_) => {
                                    TimeoutFuture::new(delay).await;
                                    delay = (delay * 2).min(10_000);
                                    continue;
                                }
                            }
                        }
                        match http::create_session().await {
                            Ok(info) => {
                                prefs::store_session_id(Some(&info.id));
                                strip.dispatch(StripAction::Reset);
                                set_session.set(SessionSlot {
                                    generation: slot.generation,
                                    id: Some(info.id),
                                });
                                return;
                            }
                            Err(e) if e.kind() == Some(ErrorKind::ClassOnly) => {
                                set_class_only.set(true);
                                return;
                            }
                            Err(_) => {
                                TimeoutFuture::new(delay).await;
                                delay = (delay * 2).min(10_000);
                            }
                        }
                    }
                });
            }
        });
    }

    // Poll the session every second while it lives.
    {
        let slot = (*session).clone();
        let set_session = session.setter();
        let strip = strip.dispatcher();
        let last_class = last_class.clone();
        let set_ended = ended.setter();
        use_effect_with(slot.id.clone(), move |_| {
            let alive = Rc::new(Cell::new(true));
            if let Some(id) = slot.id.clone() {
                let alive = alive.clone();
                spawn_local(async move {
                    // Since when a class member's lab answers 404 (see RESET_GRACE_MS).
                    let mut missing_since: Option<f64> = None;
                    while alive.get() {
                        TimeoutFuture::new(1000).await;
                        if !alive.get() {
                            break;
                        }
                        match http::session(&id).await {
                            Ok(status) if alive.get() => {
                                missing_since = None;
                                strip.dispatch(StripAction::Polled(
                                    Box::new(status),
                                    js_sys::Date::now(),
                                ))
                            }
                            Ok(_) => break,
                            Err(e) if lab_ended(&e) && alive.get() => {
                                let code =
                                    last_class.borrow().clone().or_else(prefs::session_class);
                                set_ended.set(Some(Ended { code }));
                                break;
                            }
                            Err(e) if e.is_not_found() && alive.get() => {
                                let class = last_class.borrow().clone();
                                let now = js_sys::Date::now();
                                let since = *missing_since.get_or_insert(now);
                                if class.is_some() && now - since < RESET_GRACE_MS {
                                    continue;
                                }
                                prefs::store_session_id(None);
                                if let Some(code) = class {
                                    route::go(&route::join_path(&code));
                                    break;
                                }
                                set_session.set(SessionSlot {
                                    generation: slot.generation + 1,
                                    id: None,
                                });
                                break;
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
            move || alive.set(false)
        });
    }

    // A new session (the old one expired) learns the lesson the student had picked.
    {
        let picked = (*selected).clone();
        use_effect_with(session.id.clone(), move |id| {
            if let (Some(sid), Some(lesson)) = (id.clone(), picked) {
                spawn_local(async move {
                    let _ = http::select_lesson(&sid, &lesson).await;
                });
            }
        });
    }

    let status = strip.status.clone();
    let lesson_id: Option<String> = (*selected)
        .clone()
        .or_else(|| status.as_ref().and_then(|s| s.lesson.clone()));

    let on_select = {
        let selected = selected.clone();
        let session = session.clone();
        let browsing = browsing.clone();
        Callback::from(move |id: String| {
            browsing.set(false);
            selected.set(Some(id.clone()));
            if let Some(sid) = session.id.clone() {
                spawn_local(async move {
                    let _ = http::select_lesson(&sid, &id).await;
                });
            }
        })
    };

    let on_browse = {
        let browsing = browsing.clone();
        Callback::from(move |_: ()| browsing.set(true))
    };

    let l = props.lang;
    let class = status.as_ref().and_then(|s| s.class.clone());
    *last_class.borrow_mut() = class.as_ref().map(|m| m.class.code.clone());
    // Where an ended lab leads, even after a reload (the server then says nothing of
    // the session): kept with the session id.
    {
        let code = status
            .as_ref()
            .map(|s| s.class.as_ref().map(|m| m.class.code.clone()));
        use_effect_with(code, |code| {
            if let Some(code) = code {
                prefs::store_session_class(code.as_deref());
            }
        });
    }
    let progress = status
        .as_ref()
        .map(|s| s.progress.clone())
        .unwrap_or_default();
    let left = match &*lessons {
        Loaded::Loading => html! { <p class="muted pad">{ tr(l, T::LoadingLessons) }</p> },
        Loaded::Failed => html! { <p class="error pad">{ tr(l, T::LessonsFailed) }</p> },
        Loaded::Ready(all) => {
            let list = class_lessons(all, class.as_ref());
            let current = lesson_id
                .as_ref()
                .and_then(|id| list.iter().find(|x| &x.id == id))
                .cloned();
            let done: Vec<String> = current
                .as_ref()
                .and_then(|c| progress.iter().find(|p| p.lesson == c.id))
                .map(|p| p.done.clone())
                .unwrap_or_default();
            match current {
                // An open lesson: a compact header (title, progress, the way back to the
                // list) over its steps.
                Some(lesson) if !*browsing => html! {
                    <LessonPane key={lesson.id.clone()} lang={l} lesson={lesson.clone()} done={done}
                        term={(*term).clone()} on_browse={on_browse} />
                },
                _ => html! {
                    <>
                        <LessonList lang={l} lessons={list} progress={progress.clone()}
                            selected={lesson_id.clone()} on_select={on_select} />
                        if lesson_id.is_none() {
                            <p class="muted pad">{ tr(l, T::PickLesson) }</p>
                        }
                    </>
                },
            }
        }
    };

    // What the header says of the class, and the banner when it is not open.
    let class_head = class.as_ref().map(|m| {
        html! {
            <span class="class-head" data-state={i18n::class_state_code(m.class.state)}>
                <span id="class-name" class="class-name">{ m.class.name.clone() }</span>
                <span id="student-name" class="student-name" title={tr(l, T::StudentNameTitle)}>
                    { m.name.clone() }
                </span>
            </span>
        }
    });
    let banner = class.as_ref().and_then(|m| match m.class.state {
        ClassState::Open => None,
        ClassState::Closed => Some(html! {
            <div id="class-banner" class="banner closed" data-state="closed">
                { tr(l, T::ClassClosedBanner) }
            </div>
        }),
        ClassState::Upcoming => {
            let when = m
                .class
                .opens
                .as_deref()
                .map(|t| crate::time::local_rfc3339(l, t));
            Some(html! {
                <div id="class-banner" class="banner upcoming" data-state="upcoming">
                    { i18n::class_upcoming_banner(l, when.as_deref()) }
                </div>
            })
        }
    });
    let has_banner = banner.is_some();

    // The class's side of the lab: what the instructors say, the hand, their typing.
    let messages = status
        .as_ref()
        .map(|s| s.messages.clone())
        .unwrap_or_default();
    let typing = status.as_ref().and_then(|s| s.instructor_typing.clone());
    let class_bar = match (&class, session.id.clone()) {
        (Some(_), Some(id)) => {
            let on_changed = {
                let strip = strip.dispatcher();
                let id = id.clone();
                Callback::from(move |_: ()| refresh(id.clone(), strip.clone()))
            };
            let hand = status.as_ref().and_then(|s| s.hand.clone());
            html! {
                <>
                    <div class="class-bar">
                        <MessageList lang={l} messages={messages.clone()} />
                        <HandBox lang={l} session={AttrValue::from(id.clone())} {hand} {on_changed} />
                    </div>
                    <MessageBanner lang={l} session={AttrValue::from(id)} messages={messages} />
                </>
            }
        }
        _ => Html::default(),
    };
    let ended_view = (*ended).clone().map(|e| {
        html! { <LabEnded lang={l} code={e.code.map(AttrValue::from)} /> }
    });

    html! {
        <div class={classes!("page", has_banner.then_some("with-banner"))}>
            <TopBar lang={l} on_lang={props.on_lang.clone()}
                right={html! { <JoinCodeBox lang={l} /> }}>
                { class_head.unwrap_or_default() }
            </TopBar>
            { banner.unwrap_or_default() }
            <main class="work">
                <aside class="left">{ left }</aside>
                <section class="right">
                    if let Some(name) = typing {
                        <TypingNotice lang={l} name={name} />
                    }
                    { class_bar }
                    {
                        match session.id.clone().filter(|_| ended.is_none()) {
                            Some(id) => html! {
                                <TerminalView lang={l} session={AttrValue::from(id)} handle={(*term).clone()} />
                            },
                            None => html! {
                                <div class="term-wrap">
                                    <div class="term-bar"><span class="term-title">{ tr(l, T::Terminal) }</span></div>
                                    if *class_only {
                                        <div id="class-only" class="term-placeholder class-only">
                                            { tr(l, T::ClassOnlyNotice) }
                                        </div>
                                    } else {
                                        <div class="term-placeholder muted">{ tr(l, T::NoSession) }</div>
                                    }
                                </div>
                            },
                        }
                    }
                </section>
            </main>
            <StatusStrip lang={l} strip={strip.clone()} />
            { ended_view.unwrap_or_default() }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct TerminalProps {
    lang: Lang,
    session: AttrValue,
    handle: TermHandle,
}

#[function_component(TerminalView)]
fn terminal_view(props: &TerminalProps) -> Html {
    let node = use_node_ref();
    let conn = use_state(|| ConnState::Connecting);
    {
        let node = node.clone();
        let handle = props.handle.clone();
        let set_conn = conn.setter();
        use_effect_with(props.session.clone(), move |session| {
            let started = node.cast::<web_sys::HtmlElement>().map(|el| {
                let t = TermSession::start(&el, terminal_url(session), Role::Owner, move |s| {
                    set_conn.set(s)
                });
                *handle.0.borrow_mut() = Some(t.clone());
                t
            });
            move || {
                if let Some(t) = started {
                    handle.0.borrow_mut().take();
                    t.dispose();
                }
            }
        });
    }
    let l = props.lang;
    let (state_key, state_text) = match *conn {
        ConnState::Connecting => ("connecting", tr(l, T::Connecting)),
        ConnState::Connected => ("connected", tr(l, T::Connected)),
        ConnState::Reconnecting => ("reconnecting", tr(l, T::Reconnecting)),
    };
    let detach = {
        let handle = props.handle.clone();
        Callback::from(move |_: MouseEvent| handle.type_bytes(&[0x10, 0x11]))
    };
    html! {
        <div class="term-wrap">
            <div class="term-bar">
                <span class="term-title">{ tr(l, T::Terminal) }</span>
                <span id="term-state" class={classes!("term-state", state_key)} data-state={state_key}>
                    { state_text }
                </span>
                <span class="spacer"></span>
                <button id="detach-button" title={tr(l, T::DetachTitle)} onclick={detach}>
                    { tr(l, T::Detach) }
                </button>
            </div>
            <div id="terminal" class="terminal" ref={node}></div>
        </div>
    }
}
