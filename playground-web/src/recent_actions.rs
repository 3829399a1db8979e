//! What the class's instructors did to students' labs, newest first (the server's
//! record: it is also what a transcript's reader may ask about).

use berth_lessons::api::AuditRow;
use yew::prelude::*;

use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::time;

#[derive(Properties, PartialEq)]
pub struct ActionsProps {
    pub lang: Lang,
    /// Newest first.
    pub actions: Vec<AuditRow>,
}

#[function_component(RecentActions)]
pub fn recent_actions(props: &ActionsProps) -> Html {
    let l = props.lang;
    html! {
        <section class="card recent-actions">
            <h2 class="card-title">{ tr(l, T::RecentActions) }</h2>
            if props.actions.is_empty() {
                <p class="muted small">{ tr(l, T::NoActions) }</p>
            }
            <ol id="actions" class="action-items">
            { for props.actions.iter().map(|a| html! {
                <li class="action" data-action={a.action.clone()}
                    data-student={a.student.clone().unwrap_or_default()}>
                    <span class="message-time">{ time::clock_rfc3339(l, &a.at) }</span>
                    <span class="action-text">
                        { i18n::action_text(l, &a.instructor, &a.action, a.student.as_deref()) }
                    </span>
                </li>
            }) }
            </ol>
        </section>
    }
}
