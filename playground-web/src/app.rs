//! The page: header, lessons, terminal, status strip; the session and the polling.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::http;
use crate::i18n::{tr, T};
use crate::lessons::{LessonList, LessonPane};
use crate::model::{Lang, Lesson};
use crate::prefs;
use crate::status::{StatusStrip, Strip, StripAction};
use crate::term::{terminal_url, ConnState, TermSession};

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

#[function_component(App)]
pub fn app() -> Html {
    let lang = use_state(prefs::initial_lang);
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

    {
        let lang = *lang;
        use_effect_with(lang, move |_| prefs::store_lang(lang));
    }

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
        use_effect_with(slot.generation, move |_| {
            if slot.id.is_none() {
                spawn_local(async move {
                    let mut delay = 1000;
                    loop {
                        if let Some(id) = prefs::session_id() {
                            match http::session(&id).await {
                                Ok(status) => {
                                    strip
                                        .dispatch(StripAction::Polled(status, js_sys::Date::now()));
                                    set_session.set(SessionSlot {
                                        generation: slot.generation,
                                        id: Some(id),
                                    });
                                    return;
                                }
                                Err(http::Error::NotFound) => prefs::store_session_id(None),
                                Err(http::Error::Other(_)) => {
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
        use_effect_with(slot.id.clone(), move |_| {
            let alive = Rc::new(Cell::new(true));
            if let Some(id) = slot.id.clone() {
                let alive = alive.clone();
                spawn_local(async move {
                    while alive.get() {
                        TimeoutFuture::new(1000).await;
                        if !alive.get() {
                            break;
                        }
                        match http::session(&id).await {
                            Ok(status) if alive.get() => {
                                strip.dispatch(StripAction::Polled(status, js_sys::Date::now()))
                            }
                            Ok(_) => break,
                            Err(http::Error::NotFound) if alive.get() => {
                                prefs::store_session_id(None);
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

    let toggle_lang = {
        let lang = lang.clone();
        Callback::from(move |_: MouseEvent| {
            lang.set(match *lang {
                Lang::Ko => Lang::En,
                Lang::En => Lang::Ko,
            })
        })
    };

    let l = *lang;
    let progress = status
        .as_ref()
        .map(|s| s.progress.clone())
        .unwrap_or_default();
    let left = match &*lessons {
        Loaded::Loading => html! { <p class="muted pad">{ tr(l, T::LoadingLessons) }</p> },
        Loaded::Failed => html! { <p class="error pad">{ tr(l, T::LessonsFailed) }</p> },
        Loaded::Ready(list) => {
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
                        <LessonList lang={l} lessons={list.clone()} progress={progress.clone()}
                            selected={lesson_id.clone()} on_select={on_select} />
                        if lesson_id.is_none() {
                            <p class="muted pad">{ tr(l, T::PickLesson) }</p>
                        }
                    </>
                },
            }
        }
    };

    html! {
        <div class="page">
            <header class="top">
                <span class="brand">{ "Berth" }</span>
                <span class="tagline">{ tr(l, T::Tagline) }</span>
                <span class="spacer"></span>
                <button id="lang-switch" class="lang-switch" data-lang={prefs::lang_code(l)}
                    title={tr(l, T::SwitchTitle)} onclick={toggle_lang}>
                    <span class={classes!((l == Lang::Ko).then_some("active"))}>{ "한국어" }</span>
                    <span class="sep">{ "/" }</span>
                    <span class={classes!((l == Lang::En).then_some("active"))}>{ "English" }</span>
                </button>
            </header>
            <main class="work">
                <aside class="left">{ left }</aside>
                <section class="right">
                    {
                        match session.id.clone() {
                            Some(id) => html! {
                                <TerminalView lang={l} session={AttrValue::from(id)} handle={(*term).clone()} />
                            },
                            None => html! {
                                <div class="term-wrap">
                                    <div class="term-bar"><span class="term-title">{ tr(l, T::Terminal) }</span></div>
                                    <div class="term-placeholder muted">{ tr(l, T::NoSession) }</div>
                                </div>
                            },
                        }
                    }
                </section>
            </main>
            <StatusStrip lang={l} strip={strip.clone()} />
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
                let t = TermSession::start(&el, terminal_url(session), move |s| set_conn.set(s));
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
