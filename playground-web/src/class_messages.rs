//! The instructors' messages on the student's page: a short list, newest first, and a
//! banner for what the student has not seen yet, until they dismiss it (the newest id
//! dismissed is kept per session, so a reload does not pop old news again).

use berth_lessons::api::ClassMessage;
use yew::prelude::*;

use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::prefs;
use crate::time;

#[derive(Properties, PartialEq)]
pub struct MessagesProps {
    pub lang: Lang,
    /// Oldest first, as the server sends them.
    pub messages: Vec<ClassMessage>,
}

/// Who sent it and when: "kim · 14:05", and whether only this student got it.
fn byline(l: Lang, m: &ClassMessage) -> Html {
    html! {
        <span class="message-by">
            <span class="message-from">{ m.from.clone() }</span>
            <span class="message-time">{ time::clock_rfc3339(l, &m.at) }</span>
            if m.to.is_some() {
                <span class="message-to">{ tr(l, T::ToYou) }</span>
            }
        </span>
    }
}

#[function_component(MessageList)]
pub fn message_list(props: &MessagesProps) -> Html {
    let l = props.lang;
    html! {
        <section id="messages" class="messages" aria-label={tr(l, T::Messages)}>
            <h2 class="section-title">{ tr(l, T::Messages) }</h2>
            if props.messages.is_empty() {
                <p class="muted small no-messages">{ tr(l, T::NoMessages) }</p>
            }
            <ul class="message-items">
            { for props.messages.iter().rev().map(|m| html! {
                <li key={m.id} class="message" data-kind={i18n::message_kind_code(m.kind)}
                    data-id={m.id.to_string()}>
                    { byline(l, m) }
                    <span class="message-text">{ i18n::message_text(l, m) }</span>
                </li>
            }) }
            </ul>
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct BannerProps {
    pub lang: Lang,
    pub session: AttrValue,
    pub messages: Vec<ClassMessage>,
}

/// Messages newer than `seen` (all of them when nothing was dismissed yet).
fn unseen(messages: &[ClassMessage], seen: Option<i64>) -> Vec<&ClassMessage> {
    messages
        .iter()
        .filter(|m| seen.is_none_or(|s| m.id > s))
        .collect()
}

#[function_component(MessageBanner)]
pub fn message_banner(props: &BannerProps) -> Html {
    let l = props.lang;
    let seen = use_state_eq(|| prefs::seen_message(&props.session));
    {
        let seen = seen.setter();
        use_effect_with(props.session.clone(), move |s| {
            seen.set(prefs::seen_message(s));
        });
    }
    let fresh = unseen(&props.messages, *seen);
    let Some(newest) = fresh.last() else {
        return Html::default();
    };
    let dismiss = {
        let seen = seen.setter();
        let session = props.session.clone();
        let last = props.messages.iter().map(|m| m.id).max();
        Callback::from(move |_: MouseEvent| {
            if let Some(id) = last {
                prefs::store_seen_message(&session, id);
                seen.set(Some(id));
            }
        })
    };
    html! {
        <div id="message-banner" class="message-banner" role="alert"
            data-kind={i18n::message_kind_code(newest.kind)} data-id={newest.id.to_string()}>
            <div class="message-banner-head">
                <span class="message-banner-title">{ tr(l, T::Messages) }</span>
                { byline(l, newest) }
            </div>
            <div class="message-banner-text">{ i18n::message_text(l, newest) }</div>
            if fresh.len() > 1 {
                <div class="small muted">{ i18n::more_messages(l, fresh.len() - 1) }</div>
            }
            <button id="message-dismiss" type="button" class="primary" onclick={dismiss}>
                { tr(l, T::Dismiss) }
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64) -> ClassMessage {
        serde_json::from_value(serde_json::json!({
            "id": id, "at": "2024-05-01T09:00:00Z", "from": "kim", "to": null,
            "kind": "text", "text": format!("m{id}"),
        }))
        .unwrap()
    }

    #[test]
    fn news_is_what_came_after_the_last_dismissal() {
        let all = vec![msg(3), msg(7), msg(9)];
        let ids = |seen| unseen(&all, seen).iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(None), [3, 7, 9]);
        assert_eq!(ids(Some(7)), [9]);
        assert_eq!(ids(Some(9)), Vec::<i64>::new());
    }
}
