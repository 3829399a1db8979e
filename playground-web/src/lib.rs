//! The playground (built for wasm32-unknown-unknown by scripts/build-playground).
//!
//! One screen: the lessons on the left, the student's terminal on the right, the
//! session's containers, ports and images in a strip at the bottom. It talks to the
//! lab server with the routes and types of `berth_lessons::api`.

mod app;
mod http;
mod i18n;
mod lessons;
mod model;
mod prefs;
mod status;
mod term;

use wasm_bindgen::prelude::*;

/// Entry point: wasm-bindgen runs it when `init()` resolves.
#[wasm_bindgen(start)]
pub fn main() {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id("app"))
    {
        yew::Renderer::<app::App>::with_root(root).render();
    } else {
        yew::Renderer::<app::App>::new().render();
    }
}
