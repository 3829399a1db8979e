//! The student's raised hand: an optional note and a button; once raised, what the
//! instructor's queue shows, until they answer it or the student lowers it.

use berth_lessons::api::Hand;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::dom;
use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;

#[derive(Properties, PartialEq)]
pub struct HandProps {
    pub lang: Lang,
    pub session: AttrValue,
    /// As the last poll said.
    pub hand: Option<Hand>,
    /// The hand went up or down: poll now rather than at the next second.
    pub on_changed: Callback<()>,
}

#[function_component(HandBox)]
pub fn hand_box(props: &HandProps) -> Html {
    let l = props.lang;
    let note = use_state(String::new);
    let busy = use_state(|| false);
    let error = use_state(|| None::<http::Error>);

    let raise = {
        let (note, busy, error) = (note.clone(), busy.setter(), error.setter());
        let session = props.session.clone();
        let on_changed = props.on_changed.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (text, note) = (note.trim().to_string(), note.setter());
            let (busy, error, on_changed) = (busy.clone(), error.clone(), on_changed.clone());
            let session = session.clone();
            busy.set(true);
            error.set(None);
            spawn_local(async move {
                match http::raise_hand(&session, &text).await {
                    Ok(()) => {
                        note.set(String::new());
                        on_changed.emit(());
                    }
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        })
    };
    let lower = {
        let (busy, error) = (busy.setter(), error.setter());
        let session = props.session.clone();
        let on_changed = props.on_changed.clone();
        Callback::from(move |_: MouseEvent| {
            let (busy, error, on_changed) = (busy.clone(), error.clone(), on_changed.clone());
            let session = session.clone();
            busy.set(true);
            error.set(None);
            spawn_local(async move {
                match http::lower_hand(&session).await {
                    Ok(()) => on_changed.emit(()),
                    Err(e) => error.set(Some(e)),
                }
                busy.set(false);
            });
        })
    };
    let on_note = {
        let note = note.setter();
        Callback::from(move |e: InputEvent| note.set(dom::input_value(&e)))
    };
    let error_view = (*error).as_ref().map(|e| {
        html! { <span id="hand-error" class="error small">{ i18n::error_text(l, e) }</span> }
    });
    match &props.hand {
        Some(h) => html! {
            <div id="hand" class="hand-box raised" data-raised="true">
                <span id="hand-state" class="hand-state">{ tr(l, T::HandRaised) }</span>
                if !h.note.is_empty() {
                    <span class="hand-note-text" title={h.note.clone()}>{ format!("“{}”", h.note) }</span>
                }
                <button id="hand-lower" type="button" disabled={*busy} onclick={lower}>
                    { tr(l, T::LowerHand) }
                </button>
                { error_view.unwrap_or_default() }
            </div>
        },
        None => html! {
            <form id="hand" class="hand-box" data-raised="false" onsubmit={raise}>
                <input id="hand-note" type="text" maxlength="500" autocomplete="off"
                    placeholder={tr(l, T::HandNotePlaceholder)} value={(*note).clone()} oninput={on_note} />
                <button id="hand-button" type="submit" title={tr(l, T::RaiseHandTitle)} disabled={*busy}>
                    { tr(l, T::RaiseHand) }
                </button>
                { error_view.unwrap_or_default() }
            </form>
        },
    }
}
