//! What the page keeps in localStorage: the language, the session id (and its class's
//! code), the rejoin tokens of the classes joined from this browser, and the last
//! class message the student dismissed.

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

const SESSION_CLASS_KEY: &str = "berth.session.class";

/// The join code of the stored session's class: where an ended lab's page points to,
/// as the server then says nothing more of the session.
pub fn session_class() -> Option<String> {
    get(SESSION_CLASS_KEY)
}

pub fn store_session_class(code: Option<&str>) {
    put(SESSION_CLASS_KEY, code);
}

fn seen_key(session: &str) -> String {
    format!("berth.seen.{session}")
}

/// The id of the newest class message the student dismissed in `session` (none: every
/// message is news).
pub fn seen_message(session: &str) -> Option<i64> {
    get(&seen_key(session))?.parse().ok()
}

pub fn store_seen_message(session: &str, id: i64) {
    put(&seen_key(session), Some(&id.to_string()));
}

/// The key of a class's rejoin token; codes are compared as the server shows them
/// (`ABCD-EFGH`), so the key uses that form.
fn class_key(code: &str, what: &str) -> String {
    format!("berth.class.{}.{what}", code.trim().to_uppercase())
}

/// What this browser keeps of a class it joined: the rejoin link's token and the
/// name it belongs to (for the join page's "Continue as …").
pub fn store_class_token(code: &str, token: &str, name: &str) {
    put(&class_key(code, "token"), Some(token));
    put(&class_key(code, "name"), Some(name));
}

/// The token and name kept for the class `code`.
pub fn class_token(code: &str) -> Option<(String, String)> {
    let token = get(&class_key(code, "token"))?;
    Some((token, get(&class_key(code, "name")).unwrap_or_default()))
}

/// Forgets a token the server refused.
pub fn forget_class_token(code: &str) {
    put(&class_key(code, "token"), None);
    put(&class_key(code, "name"), None);
}
