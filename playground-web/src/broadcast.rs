//! Messages from the dashboard: to the whole class (the box, with what was sent so far
//! under it), or to one student (a dialog opened from their row). Students see them at
//! their next poll, as a banner.

use berth_lessons::api::{ClassMessage, MessageKind};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::time;

/// The text of a `<textarea>` an `input` event came from.
fn area_value(e: &InputEvent) -> String {
    e.target_unchecked_into::<web_sys::HtmlTextAreaElement>()
        .value()
}

/// Sends `text` (to `to`, or the class); `done` on success, the error otherwise.
fn send(
    class: AttrValue,
    to: Option<String>,
    text: String,
    busy: UseStateSetter<bool>,
    done: Callback<()>,
    on_error: Callback<http::Error>,
) {
    busy.set(true);
    spawn_local(async move {
        let answer = http::send_message(&class, to.as_deref(), &text).await;
        busy.set(false);
        match answer {
            Ok(()) => done.emit(()),
            Err(e) => on_error.emit(e),
        }
    });
}

#[derive(Properties, PartialEq)]
pub struct BroadcastProps {
    pub lang: Lang,
    pub class: AttrValue,
    /// The class's messages, oldest first.
    pub messages: Vec<ClassMessage>,
    pub on_error: Callback<http::Error>,
}

#[function_component(BroadcastBox)]
pub fn broadcast_box(props: &BroadcastProps) -> Html {
    let l = props.lang;
    let text = use_state(String::new);
    let busy = use_state(|| false);
    let onsubmit = {
        let (text, busy) = (text.clone(), busy.setter());
        let (class, on_error) = (props.class.clone(), props.on_error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let words = text.trim().to_string();
            if words.is_empty() {
                return;
            }
            let clear = {
                let text = text.setter();
                Callback::from(move |_: ()| text.set(String::new()))
            };
            send(
                class.clone(),
                None,
                words,
                busy.clone(),
                clear,
                on_error.clone(),
            );
        })
    };
    let oninput = {
        let text = text.setter();
        Callback::from(move |e: InputEvent| text.set(area_value(&e)))
    };
    html! {
        <section id="broadcast" class="card broadcast">
            <h2 class="card-title">{ tr(l, T::Broadcast) }</h2>
            <form class="message-form" {onsubmit}>
                <textarea id="broadcast-text" rows="2" maxlength="2000"
                    placeholder={tr(l, T::BroadcastPlaceholder)} value={(*text).clone()} {oninput} />
                <button id="broadcast-send" type="submit" class="primary"
                    disabled={*busy || text.trim().is_empty()}>
                    { if *busy { tr(l, T::Sending) } else { tr(l, T::Send) } }
                </button>
            </form>
            <h3 class="sub-title">{ tr(l, T::SentMessages) }</h3>
            if props.messages.is_empty() {
                <p class="muted small">{ tr(l, T::NoSentMessages) }</p>
            }
            <ul id="sent-messages" class="sent-messages">
            { for props.messages.iter().rev().map(|m| {
                let words = match m.kind {
                    MessageKind::Text => m.text.clone(),
                    MessageKind::Reset => i18n::action_text(l, &m.from, "reset", m.to.as_deref()),
                    MessageKind::Ended => i18n::action_text(l, &m.from, "end", m.to.as_deref()),
                };
                html! {
                    <li key={m.id} class="sent" data-kind={i18n::message_kind_code(m.kind)}
                        data-to={m.to.clone().unwrap_or_default()}>
                        <span class="sent-meta">
                            <span class="message-time">{ time::clock_rfc3339(l, &m.at) }</span>
                            <span class="sent-to">{ m.to.clone().unwrap_or_else(|| tr(l, T::ToClass).to_string()) }</span>
                        </span>
                        <span class="sent-text">{ words }</span>
                    </li>
                }
            }) }
            </ul>
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct DialogProps {
    pub lang: Lang,
    pub class: AttrValue,
    /// The student's display name.
    pub name: AttrValue,
    /// Sent, or cancelled.
    pub on_close: Callback<()>,
    pub on_error: Callback<http::Error>,
}

#[function_component(MessageDialog)]
pub fn message_dialog(props: &DialogProps) -> Html {
    let l = props.lang;
    let text = use_state(String::new);
    let busy = use_state(|| false);
    let onsubmit = {
        let (text, busy) = (text.clone(), busy.setter());
        let (class, name) = (props.class.clone(), props.name.to_string());
        let (on_close, on_error) = (props.on_close.clone(), props.on_error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let words = text.trim().to_string();
            if !words.is_empty() {
                send(
                    class.clone(),
                    Some(name.clone()),
                    words,
                    busy.clone(),
                    on_close.clone(),
                    on_error.clone(),
                );
            }
        })
    };
    let oninput = {
        let text = text.setter();
        Callback::from(move |e: InputEvent| text.set(area_value(&e)))
    };
    // Ready to type in.
    let area = use_node_ref();
    {
        let area = area.clone();
        use_effect_with((), move |_| {
            if let Some(a) = area.cast::<web_sys::HtmlElement>() {
                let _ = a.focus();
            }
        });
    }
    let cancel = props.on_close.reform(|_: MouseEvent| ());
    let on_key = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_close.emit(());
            }
        })
    };
    html! {
        <div id="message-dialog" class="overlay" role="dialog" data-name={props.name.clone()} onkeydown={on_key}>
            <form class="card dialog message-form" {onsubmit}>
                <h2 class="card-title">{ i18n::message_to(l, &props.name) }</h2>
                <textarea id="message-text" rows="3" maxlength="2000" ref={area}
                    value={(*text).clone()} {oninput} />
                <div class="dialog-buttons">
                    <button id="message-cancel" type="button" onclick={cancel}>{ tr(l, T::Cancel) }</button>
                    <button id="message-send" type="submit" class="primary"
                        disabled={*busy || text.trim().is_empty()}>
                        { if *busy { tr(l, T::Sending) } else { tr(l, T::Send) } }
                    </button>
                </div>
            </form>
        </div>
    }
}
