//! An instructor's view of a student's terminal, docked at the bottom of the dashboard:
//! read-only, or writable after "Take over". Switching opens a new connection (with
//! `?control=1`); the server replays the scrollback on each, so nothing is lost.

use web_sys::HtmlElement;
use yew::prelude::*;

use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::term::{ws_url, ConnState, Role, TermSession};

/// Whose terminal, and whether the instructor types in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub control: bool,
}

#[derive(Properties, PartialEq)]
pub struct WatchProps {
    pub lang: Lang,
    pub class: AttrValue,
    pub target: Target,
    /// "Take over" (true) or "Stop typing" (false).
    pub on_control: Callback<bool>,
    pub on_close: Callback<()>,
}

#[function_component(WatchPanel)]
pub fn watch_panel(props: &WatchProps) -> Html {
    let l = props.lang;
    let node = use_node_ref();
    let conn = use_state_eq(|| ConnState::Connecting);
    {
        let node = node.clone();
        let set_conn = conn.setter();
        let key = (props.class.clone(), props.target.clone());
        use_effect_with(key, move |(class, target)| {
            let path = http::student_terminal_path(class, &target.name, target.control);
            let role = if target.control {
                Role::Controller
            } else {
                Role::Watcher
            };
            let started = node.cast::<HtmlElement>().map(|el| {
                let t = TermSession::start(&el, ws_url(&path), role, move |s| set_conn.set(s));
                if role == Role::Controller {
                    t.focus();
                }
                t
            });
            move || {
                if let Some(t) = started {
                    t.dispose();
                }
            }
        });
    }
    let control = props.target.control;
    let (mode, mode_text) = if control {
        ("control", tr(l, T::ModeControl))
    } else {
        ("watch", tr(l, T::ModeWatch))
    };
    let (state_key, state_text) = match *conn {
        ConnState::Connecting => ("connecting", tr(l, T::Connecting)),
        ConnState::Connected => ("connected", tr(l, T::Connected)),
        ConnState::Reconnecting => ("reconnecting", tr(l, T::Reconnecting)),
    };
    let toggle = props.on_control.reform(move |_: MouseEvent| !control);
    let close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <section id="watch-panel" class={classes!("watch-panel", mode)}
            data-name={props.target.name.clone()} data-mode={mode}>
            <div class="term-bar">
                <span id="watch-name" class="term-title">{ i18n::watching_who(l, &props.target.name) }</span>
                <span id="watch-mode" class={classes!("watch-mode", mode)} data-mode={mode}>{ mode_text }</span>
                <span id="watch-state" class={classes!("term-state", state_key)} data-state={state_key}>
                    { state_text }
                </span>
                <span class="spacer"></span>
                <button id="watch-toggle" type="button" class="term-button"
                    title={if control { None } else { Some(tr(l, T::TakeOverTitle)) }} onclick={toggle}>
                    { if control { tr(l, T::StopTyping) } else { tr(l, T::TakeOver) } }
                </button>
                <button id="watch-close" type="button" class="term-button" onclick={close}>
                    { tr(l, T::CloseWatch) }
                </button>
            </div>
            <div id="watch-terminal" class="terminal" ref={node}></div>
        </section>
    }
}
