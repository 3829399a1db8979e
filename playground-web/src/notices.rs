//! What the student's page says of an instructor's hand on the lab itself: typing in
//! the terminal now, or the lab ended (the server then answers 410 for the session).

use yew::prelude::*;

use crate::i18n::{self, tr, T};
use crate::model::Lang;
use crate::route;

#[derive(Properties, PartialEq)]
pub struct TypingProps {
    pub lang: Lang,
    /// The instructor's name.
    pub name: AttrValue,
}

/// Above the terminal, so that keys that are not the student's never surprise them.
#[function_component(TypingNotice)]
pub fn typing_notice(props: &TypingProps) -> Html {
    html! {
        <div id="instructor-typing" class="typing-notice" role="status">
            <span class="typing-icon">{ "⌨" }</span>
            { i18n::instructor_typing(props.lang, &props.name) }
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct EndedProps {
    pub lang: Lang,
    /// The class's join code, if known: its join page offers "Continue as …".
    pub code: Option<AttrValue>,
}

/// Over the whole page: the lab is gone until the student comes back to the class.
#[function_component(LabEnded)]
pub fn lab_ended(props: &EndedProps) -> Html {
    let l = props.lang;
    html! {
        <div id="lab-ended" class="overlay" role="alertdialog" aria-labelledby="lab-ended-title">
            <section class="card dialog">
                <h2 id="lab-ended-title" class="card-title">{ tr(l, T::LabEndedTitle) }</h2>
                <p>{ tr(l, T::LabEndedText) }</p>
                if let Some(code) = &props.code {
                    <a id="lab-ended-rejoin" class="button primary" href={route::join_path(code)}>
                        { tr(l, T::BackToClass) }
                    </a>
                } else {
                    <a id="lab-ended-rejoin" class="button primary" href="/">{ tr(l, T::BackHome) }</a>
                }
            </section>
        </div>
    }
}
