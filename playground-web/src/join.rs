//! Joining a class: the code box of the student's page, and the join page
//! `/join/{code}` (a rejoin link, `/join/{code}#TOKEN`, joins at once).
//!
//! A first join ends on a screen with the student's PIN and rejoin link (shown once:
//! the server keeps only their hashes); coming back goes straight to the lab.

use std::cell::Cell;
use std::rc::Rc;

use berth_lessons::api::{ClassInfo, ClassState, ErrorKind, JoinRequest, Joined};
use gloo_timers::callback::Timeout;
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::dom;
use crate::header::TopBar;
use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::prefs;
use crate::route;
use crate::time;

#[derive(Properties, PartialEq)]
pub struct CodeBoxProps {
    pub lang: Lang,
}

/// A code input and a button: goes to the code's join page.
#[function_component(JoinCodeBox)]
pub fn join_code_box(props: &CodeBoxProps) -> Html {
    let l = props.lang;
    let code = use_state(String::new);
    let oninput = {
        let code = code.setter();
        Callback::from(move |e: InputEvent| code.set(dom::input_value(&e)))
    };
    let onsubmit = {
        let code = code.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let c = code.trim().to_uppercase();
            if !c.is_empty() {
                route::go(&route::join_path(&c));
            }
        })
    };
    html! {
        <form class="join-box" {onsubmit}>
            <input id="join-code-input" type="text" value={(*code).clone()} {oninput}
                placeholder={tr(l, T::JoinCodePlaceholder)} title={tr(l, T::JoinCodeTitle)}
                autocomplete="off" autocapitalize="characters" spellcheck="false" />
            <button id="join-code-button" type="submit">{ tr(l, T::JoinClass) }</button>
        </form>
    }
}

#[derive(Properties, PartialEq)]
pub struct JoinProps {
    pub lang: Lang,
    pub on_lang: Callback<Lang>,
    /// As it is in the path (any case, with or without the dash).
    pub code: String,
}

#[derive(Clone, PartialEq)]
enum Info {
    Loading,
    Ready(ClassInfo),
    Failed(http::Error),
}

#[derive(Clone, PartialEq)]
enum Phase {
    Form,
    /// A join is on its way (the rejoin link's, at once).
    Sending,
    /// A first join: the PIN and link screen.
    Done(Rc<Joined>),
}

/// The token of a rejoin path (`/join/CODE#TOKEN`).
fn token_of(rejoin_path: &str) -> Option<String> {
    let (_, t) = rejoin_path.split_once('#')?;
    (!t.is_empty()).then(|| route::decode_component(t))
}

/// Keeps what a successful join gives this browser: the session (the lab page finds it
/// there) and the rejoin token (for "Continue as …" here later). True when the PIN
/// screen must be shown: a first join.
fn keep(joined: &Joined, used_token: Option<String>) -> bool {
    prefs::store_session_id(Some(&joined.session.id));
    let token = joined
        .rejoin_path
        .as_deref()
        .and_then(token_of)
        .or(used_token);
    if let Some(t) = token {
        prefs::store_class_token(&joined.class.code, &t, &joined.name);
    }
    joined.pin.is_some()
}

/// A join to send, and the token it carries (kept again after a success).
type Send = (JoinRequest, Option<String>);

#[function_component(JoinPage)]
pub fn join_page(props: &JoinProps) -> Html {
    let l = props.lang;
    let info = use_state_eq(|| Info::Loading);
    // The rejoin link's token, read once.
    let link_token = use_memo((), |_| route::fragment());
    let phase = use_state(|| {
        if link_token.is_some() {
            Phase::Sending
        } else {
            Phase::Form
        }
    });
    let error = use_state(|| None::<http::Error>);
    // Until the rejoin link's join is answered: "taking you back" instead of the form.
    let link_pending = use_state(|| link_token.is_some());
    let name = use_state(String::new);
    let pin = use_state(String::new);
    let returning = use_state(|| false);
    let copied = use_state(|| false);

    // The class; again every 15 s while it has not opened (the notice goes when it
    // opens) or while the server cannot be reached.
    {
        let set_info = info.setter();
        use_effect_with(props.code.clone(), move |code| {
            let alive = Rc::new(Cell::new(true));
            let code = code.clone();
            let live = alive.clone();
            spawn_local(async move {
                loop {
                    let answer = http::class_info(&code).await;
                    if !live.get() {
                        return;
                    }
                    let again = match &answer {
                        Ok(c) => c.state == ClassState::Upcoming,
                        Err(e) => e.status == 0 || e.status >= 500,
                    };
                    set_info.set(match answer {
                        Ok(c) => Info::Ready(c),
                        Err(e) => Info::Failed(e),
                    });
                    if !again {
                        return;
                    }
                    TimeoutFuture::new(15_000).await;
                    if !live.get() {
                        return;
                    }
                }
            });
            move || alive.set(false)
        });
    }

    let send = {
        let phase = phase.setter();
        let error = error.setter();
        let link_pending = link_pending.setter();
        Callback::from(move |(req, used_token): Send| {
            phase.set(Phase::Sending);
            error.set(None);
            let phase = phase.clone();
            let error = error.clone();
            let link_pending = link_pending.clone();
            spawn_local(async move {
                match http::join(&req).await {
                    Ok(joined) => {
                        if keep(&joined, used_token) {
                            phase.set(Phase::Done(Rc::new(joined)));
                        } else {
                            route::go("/");
                        }
                    }
                    Err(e) => {
                        if e.kind() == Some(ErrorKind::BadToken) {
                            // Neither this browser's copy nor the address bar's may be
                            // tried again.
                            prefs::forget_class_token(&req.code);
                            route::clear_fragment();
                        }
                        link_pending.set(false);
                        phase.set(Phase::Form);
                        error.set(Some(e));
                    }
                }
            });
        })
    };

    // The rejoin link: no questions.
    {
        let send = send.clone();
        let code = props.code.clone();
        let token = (*link_token).clone();
        use_effect_with((), move |_| {
            if let Some(token) = token {
                send.emit((
                    JoinRequest {
                        code,
                        name: String::new(),
                        pin: None,
                        token: Some(token.clone()),
                    },
                    Some(token),
                ));
            }
        });
    }

    // A closed class takes only its students back: start with the PIN shown.
    {
        let returning = returning.setter();
        let closed = matches!(&*info, Info::Ready(c) if c.state == ClassState::Closed);
        use_effect_with(closed, move |closed| {
            if *closed {
                returning.set(true);
            }
        });
    }

    let error_view = |e: &http::Error| {
        html! {
            <p id="join-error" class="error form-error" data-kind={http::kind_code(e.kind())}>
                { i18n::error_text(l, e) }
            </p>
        }
    };

    let class_card_head = |c: &ClassInfo| {
        let opens = c.opens.as_deref().map(|t| time::local_rfc3339(l, t));
        let closes = c.closes.as_deref().map(|t| time::local_rfc3339(l, t));
        html! {
            <div class="card-head">
                <h1 id="class-name" class="class-title">{ c.name.clone() }</h1>
                <div class="class-meta">
                    <span id="class-state" class={classes!("state-badge", i18n::class_state_code(c.state))}
                        data-state={i18n::class_state_code(c.state)}>
                        { i18n::class_state(l, c.state) }
                    </span>
                    <code class="code-chip">{ c.code.clone() }</code>
                    if let Some(o) = opens {
                        <span class="muted">{ i18n::opens_at(l, &o) }</span>
                    }
                    if let Some(cl) = closes {
                        <span class="muted">{ i18n::closes_at(l, &cl) }</span>
                    }
                </div>
            </div>
        }
    };

    let body = match (&*phase, &*info) {
        (Phase::Done(j), _) => {
            let link = j
                .rejoin_path
                .as_ref()
                .map(|p| format!("{}{p}", route::origin()));
            let copy = link.clone().map(|link| {
                let copied = copied.clone();
                Callback::from(move |_: MouseEvent| {
                    dom::copy(&link);
                    copied.set(true);
                    let copied = copied.clone();
                    Timeout::new(1500, move || copied.set(false)).forget();
                })
            });
            html! {
                <section class="card join-card joined" id="joined">
                    { class_card_head(&j.class) }
                    <h2 class="joined-title">{ i18n::joined_as(l, &j.class.name, &j.name) }</h2>
                    <div class="pin-box">
                        <span class="pin-label">{ tr(l, T::YourPinIs) }</span>
                        <span id="joined-pin" class="pin">{ j.pin.clone().unwrap_or_default() }</span>
                    </div>
                    <p class="pin-explain">{ tr(l, T::PinExplain) }</p>
                    if let (Some(link), Some(onclick)) = (link, copy) {
                        <div class="rejoin">
                            <div class="field-label">{ tr(l, T::RejoinLink) }</div>
                            <div class="copy-row">
                                <a id="joined-link" class="rejoin-link" href={link.clone()}>{ link.clone() }</a>
                                <button id="joined-copy" type="button" {onclick}>
                                    { if *copied { tr(l, T::Copied) } else { tr(l, T::Copy) } }
                                </button>
                            </div>
                            <p class="small muted">{ tr(l, T::RejoinLinkExplain) }</p>
                        </div>
                    }
                    <button id="joined-go" class="primary big" type="button"
                        onclick={Callback::from(|_: MouseEvent| route::go("/"))}>
                        { tr(l, T::GoToLab) }
                    </button>
                </section>
            }
        }
        // The rejoin link is on its way: nothing to ask.
        (Phase::Sending, _) if *link_pending => html! {
            <section class="card join-card">
                if let Info::Ready(c) = &*info { { class_card_head(c) } }
                <p id="join-rejoining" class="muted">{ tr(l, T::Rejoining) }</p>
            </section>
        },
        (_, Info::Loading) => html! {
            <section class="card join-card">
                <p class="muted">{ tr(l, T::LoadingClass) }</p>
                if let Some(e) = &*error { { error_view(e) } }
            </section>
        },
        (_, Info::Failed(e)) => html! {
            <section class="card join-card">
                <h1 class="class-title">{ tr(l, T::JoinTitle) }</h1>
                { error_view(e) }
                <p><a href="/">{ tr(l, T::BackHome) }</a></p>
            </section>
        },
        (phase, Info::Ready(c)) => {
            let sending = matches!(phase, Phase::Sending);
            // This browser joined the class before: one click back (not automatic, as
            // a lab computer may be shared by several students).
            let resume = prefs::class_token(&c.code).filter(|_| link_token.is_none());
            let onsubmit = {
                let send = send.clone();
                let code = c.code.clone();
                let name = name.clone();
                let pin = pin.clone();
                let returning = returning.clone();
                Callback::from(move |e: SubmitEvent| {
                    e.prevent_default();
                    send.emit((
                        JoinRequest {
                            code: code.clone(),
                            name: name.trim().to_string(),
                            pin: (*returning).then(|| pin.trim().to_string()),
                            token: None,
                        },
                        None,
                    ));
                })
            };
            let on_name = {
                let name = name.setter();
                Callback::from(move |e: InputEvent| name.set(dom::input_value(&e)))
            };
            let on_pin = {
                let pin = pin.setter();
                Callback::from(move |e: InputEvent| pin.set(dom::input_value(&e)))
            };
            let on_toggle = {
                let returning = returning.setter();
                Callback::from(move |e: Event| returning.set(dom::checked(&e)))
            };
            html! {
                <section class="card join-card">
                    { class_card_head(c) }
                    if c.state == ClassState::Upcoming {
                        <p id="join-note" class="note">{ tr(l, T::JoinUpcomingNote) }</p>
                    }
                    if c.state == ClassState::Closed {
                        <p id="join-note" class="note">{ tr(l, T::JoinClosedNote) }</p>
                    }
                    if let Some((token, who)) = resume {
                        <div class="resume">
                            <button id="join-resume" class="primary" type="button" disabled={sending}
                                onclick={
                                    let send = send.clone();
                                    let code = c.code.clone();
                                    Callback::from(move |_: MouseEvent| send.emit((
                                        JoinRequest {
                                            code: code.clone(),
                                            name: String::new(),
                                            pin: None,
                                            token: Some(token.clone()),
                                        },
                                        Some(token.clone()),
                                    )))
                                }>
                                { i18n::resume_as(l, &who) }
                            </button>
                            <p class="small muted">{ tr(l, T::JoinAsSomeoneElse) }</p>
                        </div>
                    }
                    <form class="join-form" {onsubmit}>
                        <label class="field">
                            <span class="field-label">{ tr(l, T::DisplayName) }</span>
                            <input id="join-name" type="text" value={(*name).clone()} oninput={on_name}
                                autocomplete="off" maxlength="64" />
                            <span class="small muted">{ tr(l, T::DisplayNameHelp) }</span>
                        </label>
                        <label class="check">
                            <input id="join-pin-toggle" type="checkbox" checked={*returning} onchange={on_toggle} />
                            { tr(l, T::BeenHereBefore) }
                        </label>
                        if *returning {
                            <label class="field">
                                <span class="field-label">{ tr(l, T::Pin) }</span>
                                <input id="join-pin" type="text" inputmode="numeric" autocomplete="off"
                                    class="pin-input" value={(*pin).clone()} oninput={on_pin} />
                                <span class="small muted">{ tr(l, T::PinHelp) }</span>
                            </label>
                        }
                        if let Some(e) = &*error { { error_view(e) } }
                        <button id="join-button" class="primary big" type="submit" disabled={sending}>
                            { if sending { tr(l, T::Joining) } else { tr(l, T::JoinButton) } }
                        </button>
                    </form>
                </section>
            }
        }
    };

    html! {
        <div class="doc-page join-page">
            <TopBar lang={l} on_lang={props.on_lang.clone()} />
            <main class="doc">{ body }</main>
        </div>
    }
}
