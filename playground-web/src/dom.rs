//! Small DOM helpers shared by the forms.

use web_sys::HtmlInputElement;
use yew::prelude::*;

/// The value of the `<input>` an `input` event came from.
pub fn input_value(e: &InputEvent) -> String {
    e.target_unchecked_into::<HtmlInputElement>().value()
}

/// Whether the checkbox a `change` event came from is ticked now.
pub fn checked(e: &Event) -> bool {
    e.target_unchecked_into::<HtmlInputElement>().checked()
}

/// Puts `text` on the clipboard (best effort: some browsers refuse on plain http).
pub fn copy(text: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}
