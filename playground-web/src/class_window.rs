//! Closing a class now, and opening it again, from the dashboard (`PUT .../window`).
//! A closed class freezes its labs: containers stop, nothing new starts, nobody new
//! joins; its students may still come back to read their progress.

use berth_lessons::api::{ClassInfo, ClassState, ClassWindow};
use yew::prelude::*;

use crate::http;
use crate::i18n::{tr, T};
use crate::model::Lang;
use crate::time;

/// Closes `class` now, keeping when it opened (if that is past: a later one would come
/// after the close, which the server refuses).
pub fn close_now(class: &str, info: &ClassInfo, on_error: Callback<http::Error>) {
    let now = time::now_ms();
    let opens = info
        .opens
        .clone()
        .filter(|o| time::parse_rfc3339(o).is_some_and(|t| t <= now));
    let window = ClassWindow {
        opens,
        closes: Some(time::now_rfc3339()),
    };
    let class = class.to_string();
    http::run(
        async move { http::set_window(&class, &window).await.map(|_| ()) },
        on_error,
    );
}

#[derive(Properties, PartialEq)]
pub struct WindowProps {
    pub lang: Lang,
    pub class: AttrValue,
    pub state: ClassState,
    /// "Close now" was clicked: the dashboard asks for a confirmation first.
    pub on_close: Callback<()>,
    pub on_error: Callback<http::Error>,
}

#[function_component(WindowControls)]
pub fn window_controls(props: &WindowProps) -> Html {
    let l = props.lang;
    let reopen = {
        let (class, on_error) = (props.class.clone(), props.on_error.clone());
        Callback::from(move |_: MouseEvent| {
            let class = class.clone();
            // No times at all: open now, and until the instructor closes it again.
            let window = ClassWindow {
                opens: None,
                closes: None,
            };
            http::run(
                async move { http::set_window(&class, &window).await.map(|_| ()) },
                on_error.clone(),
            );
        })
    };
    match props.state {
        ClassState::Open => html! {
            <button id="close-class" type="button" class="danger-outline" title={tr(l, T::CloseNowTitle)}
                onclick={props.on_close.reform(|_: MouseEvent| ())}>
                { tr(l, T::CloseNow) }
            </button>
        },
        ClassState::Closed | ClassState::Upcoming => {
            let label = if props.state == ClassState::Closed {
                T::Reopen
            } else {
                T::OpenNow
            };
            html! {
                <button id="reopen-class" type="button" title={tr(l, T::ReopenTitle)} onclick={reopen}>
                    { tr(l, label) }
                </button>
            }
        }
    }
}
