//! A small confirmation in the page, for what cannot be undone (resetting or ending a
//! lab, closing the class). Not `window.confirm`: that one stops the page, and the
//! dashboard behind it must keep updating.

use yew::prelude::*;

use crate::i18n::{tr, T};
use crate::model::Lang;

#[derive(Properties, PartialEq)]
pub struct ConfirmProps {
    pub lang: Lang,
    pub text: AttrValue,
    /// The confirming button's label (the action's name, not a bare "OK").
    pub yes: AttrValue,
    pub on_yes: Callback<()>,
    pub on_no: Callback<()>,
}

#[function_component(ConfirmDialog)]
pub fn confirm_dialog(props: &ConfirmProps) -> Html {
    // The keyboard goes to the dialog at once (Enter confirms, Escape cancels).
    let yes_button = use_node_ref();
    {
        let yes_button = yes_button.clone();
        use_effect_with((), move |_| {
            if let Some(b) = yes_button.cast::<web_sys::HtmlElement>() {
                let _ = b.focus();
            }
        });
    }
    let yes = props.on_yes.reform(|_: MouseEvent| ());
    let no = props.on_no.reform(|_: MouseEvent| ());
    let on_key = {
        let on_no = props.on_no.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_no.emit(());
            }
        })
    };
    html! {
        <div id="confirm" class="overlay" role="alertdialog" aria-labelledby="confirm-text" onkeydown={on_key}>
            <section class="card dialog">
                <p id="confirm-text">{ props.text.clone() }</p>
                <div class="dialog-buttons">
                    <button id="confirm-no" type="button" onclick={no}>{ tr(props.lang, T::Cancel) }</button>
                    <button id="confirm-yes" type="button" class="primary danger" onclick={yes} ref={yes_button}>
                        { props.yes.clone() }
                    </button>
                </div>
            </section>
        </div>
    }
}
