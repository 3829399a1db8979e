//! The bar at the top of every view: the name, what the view adds, the language switch.

use yew::prelude::*;

use crate::i18n::{tr, T};
use crate::model::Lang;
use crate::prefs;

/// What every view gets from the root: the language and the way to change it.
#[derive(Properties, PartialEq, Clone)]
pub struct PageProps {
    pub lang: Lang,
    pub on_lang: Callback<Lang>,
}

#[derive(Properties, PartialEq)]
pub struct TopBarProps {
    pub lang: Lang,
    pub on_lang: Callback<Lang>,
    /// The tagline's text (the student's page: "Docker classroom").
    #[prop_or(T::Tagline)]
    pub tagline: T,
    /// Where the name leads (the instructor's views: their class list).
    #[prop_or(AttrValue::Static("/"))]
    pub home: AttrValue,
    /// After the tagline.
    #[prop_or_default]
    pub children: Html,
    /// Right-aligned, before the language switch.
    #[prop_or_default]
    pub right: Html,
}

#[function_component(TopBar)]
pub fn top_bar(props: &TopBarProps) -> Html {
    let l = props.lang;
    let toggle = {
        let on_lang = props.on_lang.clone();
        Callback::from(move |_: MouseEvent| {
            on_lang.emit(match l {
                Lang::Ko => Lang::En,
                Lang::En => Lang::Ko,
            })
        })
    };
    html! {
        <header class="top">
            <a class="brand" href={props.home.clone()}>{ "Berth" }</a>
            <span class="tagline">{ tr(l, props.tagline) }</span>
            { props.children.clone() }
            <span class="spacer"></span>
            { props.right.clone() }
            <button id="lang-switch" class="lang-switch" data-lang={prefs::lang_code(l)}
                title={tr(l, T::SwitchTitle)} onclick={toggle}>
                <span class={classes!((l == Lang::Ko).then_some("active"))}>{ "한국어" }</span>
                <span class="sep">{ "/" }</span>
                <span class={classes!((l == Lang::En).then_some("active"))}>{ "English" }</span>
            </button>
        </header>
    }
}
