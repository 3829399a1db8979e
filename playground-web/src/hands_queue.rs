//! The dashboard's queue of raised hands, oldest first: who, for how long, their note;
//! "Watch" opens their terminal, "Answer" lowers the hand.

use berth_lessons::api::HandRow;
use yew::prelude::*;

use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::time;

#[derive(Properties, PartialEq)]
pub struct HandsProps {
    pub lang: Lang,
    pub class: AttrValue,
    /// Oldest first.
    pub hands: Vec<HandRow>,
    /// The server's clock now (ms), for the ages.
    pub now: f64,
    pub on_watch: Callback<String>,
    pub on_error: Callback<http::Error>,
}

#[function_component(HandsQueue)]
pub fn hands_queue(props: &HandsProps) -> Html {
    let l = props.lang;
    html! {
        <section id="hands" class={classes!("card", "hands", (!props.hands.is_empty()).then_some("active"))}
            data-count={props.hands.len().to_string()}>
            <h2 class="card-title">
                { tr(l, T::Hands) }
                if !props.hands.is_empty() {
                    <span class="count-badge">{ props.hands.len() }</span>
                }
            </h2>
            if props.hands.is_empty() {
                <p id="no-hands" class="muted">{ tr(l, T::NoHands) }</p>
            }
            <ol class="hand-items">
            { for props.hands.iter().map(|h| {
                let age = time::parse_rfc3339(&h.raised_at)
                    .map(|t| i18n::ago(l, ((props.now - t) / 1000.0).max(0.0) as u64))
                    .unwrap_or_default();
                let watch = {
                    let (cb, name) = (props.on_watch.clone(), h.name.clone());
                    Callback::from(move |_: MouseEvent| cb.emit(name.clone()))
                };
                let answer = {
                    let (class, name, on_error) = (props.class.clone(), h.name.clone(), props.on_error.clone());
                    Callback::from(move |_: MouseEvent| {
                        let (class, name) = (class.clone(), name.clone());
                        http::run(async move { http::answer_hand(&class, &name).await }, on_error.clone());
                    })
                };
                html! {
                    <li key={h.name.clone()} class="hand" data-name={h.name.clone()}>
                        <div class="hand-line">
                            <span class="hand-name">{ h.name.clone() }</span>
                            <span class="hand-age muted">{ age }</span>
                            <span class="spacer"></span>
                            <button type="button" class="hand-watch small-button" title={tr(l, T::WatchTitle)} onclick={watch}>
                                { tr(l, T::Watch) }
                            </button>
                            <button type="button" class="hand-answer small-button primary" title={tr(l, T::AnswerTitle)} onclick={answer}>
                                { tr(l, T::Answer) }
                            </button>
                        </div>
                        if !h.note.is_empty() {
                            <div class="hand-note">{ h.note.clone() }</div>
                        }
                    </li>
                }
            }) }
            </ol>
        </section>
    }
}
