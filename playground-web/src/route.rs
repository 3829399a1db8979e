//! Which view the page shows, from `location.pathname`: the server answers the same
//! index.html at each of these paths. Moving between views is a full page load
//! (`go`): each view loads its own data, so there is no state to carry over.

/// A view of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the student's lessons and terminal.
    Student,
    /// `/join/{code}` (a rejoin link adds `#TOKEN`).
    Join { code: String },
    /// `/teach`: the instructor's login and classes.
    Teach,
    /// `/teach/classes/{id}`: a class's live dashboard.
    Dashboard { id: String },
}

impl Route {
    /// The view for `path` (anything unknown is the student's page).
    pub fn parse(path: &str) -> Route {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            ["join", code] => Route::Join {
                code: decode_component(code),
            },
            ["teach"] => Route::Teach,
            ["teach", "classes", id] => Route::Dashboard {
                id: decode_component(id),
            },
            _ => Route::Student,
        }
    }

    pub fn current() -> Route {
        let path = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default();
        Route::parse(&path)
    }
}

/// `/join/{code}`.
pub fn join_path(code: &str) -> String {
    format!("/join/{}", encode_component(code))
}

/// `/teach/classes/{id}`.
pub fn dashboard_path(id: &str) -> String {
    format!("/teach/classes/{}", encode_component(id))
}

/// Loads `path` (a full page load).
pub fn go(path: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(path);
    }
}

/// `https://host:port`, to make the links a student can type or open elsewhere.
pub fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// The URL's fragment without its `#` (the rejoin link's token), if any.
pub fn fragment() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    let token = decode_component(hash.trim_start_matches('#'));
    (!token.is_empty()).then_some(token)
}

/// Drops the fragment from the address bar (without a reload), so that a reload does
/// not post a used or refused token again.
pub fn clear_fragment() {
    let Some(w) = web_sys::window() else { return };
    let path = w.location().pathname().unwrap_or_default();
    if let Ok(h) = w.history() {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a path segment
/// then never splits or ends early, whatever a student types as a code).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (a bad escape stays as it is; invalid UTF-8 is replaced).
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_paths() {
        assert_eq!(Route::parse("/"), Route::Student);
        assert_eq!(Route::parse(""), Route::Student);
        assert_eq!(
            Route::parse("/join/ABCD-EFGH"),
            Route::Join {
                code: "ABCD-EFGH".into()
            }
        );
        assert_eq!(
            Route::parse("/join/ab%20cd/"),
            Route::Join {
                code: "ab cd".into()
            }
        );
        assert_eq!(Route::parse("/teach"), Route::Teach);
        assert_eq!(Route::parse("/teach/"), Route::Teach);
        assert_eq!(
            Route::parse("/teach/classes/c1"),
            Route::Dashboard { id: "c1".into() }
        );
        assert_eq!(Route::parse("/join"), Route::Student);
        assert_eq!(Route::parse("/teach/classes"), Route::Student);
        assert_eq!(Route::parse("/elsewhere/x"), Route::Student);
    }

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(encode_component("ABCD-EFGH"), "ABCD-EFGH");
        assert_eq!(encode_component("a b/c#d"), "a%20b%2Fc%23d");
        assert_eq!(encode_component("한"), "%ED%95%9C");
        assert_eq!(decode_component("%ED%95%9C"), "한");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component(&encode_component("x y?z")), "x y?z");
    }
}
