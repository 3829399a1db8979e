//! The playground (built for wasm32-unknown-unknown by scripts/build-playground).
//!
//! The student's screen: the lessons on the left, the student's terminal on the right,
//! the session's containers, ports and images in a strip at the bottom. Around it, the
//! classroom: the join page (`/join/{code}`), the instructor's login and classes
//! (`/teach`) and a class's live dashboard (`/teach/classes/{id}`). The server answers
//! the same index.html at each of those paths; the app picks the view from the path.
//! It talks to the lab server with the routes and types of `berth_lessons::api`.

mod app;
mod broadcast;
mod class_messages;
mod class_window;
mod confirm;
mod dashboard;
mod dom;
mod hands_queue;
mod header;
mod http;
mod i18n;
mod join;
mod lessons;
mod model;
mod notices;
mod prefs;
mod raise_hand;
mod recent_actions;
mod route;
mod status;
mod student_row;
mod teach;
mod term;
mod time;
mod watch;

use wasm_bindgen::prelude::*;
use yew::prelude::*;

use crate::route::Route;

/// The language (shared by every view, kept in localStorage) and the view of the path.
#[function_component(Root)]
fn root() -> Html {
    let lang = use_state(prefs::initial_lang);
    let route = use_memo((), |_| Route::current());
    {
        let lang = *lang;
        use_effect_with(lang, move |_| prefs::store_lang(lang));
    }
    let on_lang = {
        let lang = lang.setter();
        Callback::from(move |l| lang.set(l))
    };
    let l = *lang;
    match (*route).clone() {
        Route::Student => html! { <app::App lang={l} {on_lang} /> },
        Route::Join { code } => html! { <join::JoinPage lang={l} {on_lang} {code} /> },
        Route::Teach => html! { <teach::TeachPage lang={l} {on_lang} /> },
        Route::Dashboard { id } => html! { <dashboard::DashboardPage lang={l} {on_lang} {id} /> },
    }
}

/// Entry point: wasm-bindgen runs it when `init()` resolves.
#[wasm_bindgen(start)]
pub fn main() {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app"))
    {
        yew::Renderer::<Root>::with_root(root).render();
    } else {
        yew::Renderer::<Root>::new().render();
    }
}
