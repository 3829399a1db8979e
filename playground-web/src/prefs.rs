//! What the page keeps in localStorage: the language and the session id.

use crate::model::Lang;

const LANG_KEY: &str = "berth.lang";
const SESSION_KEY: &str = "berth.session";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?.filter(|v| !v.is_empty())
}

fn put(key: &str, value: Option<&str>) {
    if let Some(s) = storage() {
        let _ = match value {
            Some(v) => s.set_item(key, v),
            None => s.remove_item(key),
        };
    }
}

/// The stored choice, else the browser's language (Korean if it starts with "ko").
pub fn initial_lang() -> Lang {
    match get(LANG_KEY).as_deref() {
        Some("ko") => return Lang::Ko,
        Some("en") => return Lang::En,
        _ => {}
    }
    let nav = web_sys::window()
        .and_then(|w| w.navigator().language())
        .unwrap_or_default();
    if nav.to_ascii_lowercase().starts_with("ko") {
        Lang::Ko
    } else {
        Lang::En
    }
}

pub fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ko => "ko",
        Lang::En => "en",
    }
}

pub fn store_lang(lang: Lang) {
    put(LANG_KEY, Some(lang_code(lang)));
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = el.set_attribute("lang", lang_code(lang));
    }
}

pub fn session_id() -> Option<String> {
    get(SESSION_KEY)
}

pub fn store_session_id(id: Option<&str>) {
    put(SESSION_KEY, id);
}
