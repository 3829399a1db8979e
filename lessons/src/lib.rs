//! Berth's lessons and the types the server and the playground exchange.
//!
//! This crate builds for the host and for wasm32 (the playground), so it depends on
//! neither the engine nor anything that needs an operating system.
//!
//! # A short tour
//!
//! A [`Lesson`] is a list of [`Step`]s. Each step tells the student what to do (the
//! [`Step::text`], Markdown rendered to HTML, in Korean and English), shows the solution
//! as terminal inputs ([`Step::commands`], each with [`Input::bytes`] to type it), and
//! carries a [`check::Check`]: a declarative predicate over what the engine saw since
//! the step became current.
//!
//! ```
//! # #[cfg(feature = "content")] {
//! use berth_lessons::{all, Lang};
//! let lessons = all().unwrap();
//! let first = &lessons[0];
//! println!("{}", first.title.get(Lang::En));
//! for step in &first.steps {
//!     for input in &step.commands {
//!         let _bytes: Vec<u8> = input.bytes(); // what "type it for me" sends
//!     }
//! }
//! # }
//! ```
//!
//! The server evaluates a step's check with [`check::Check::holds`] over an
//! [`check::Observation`] (the events since the step became current, oldest first, and
//! a snapshot of the session's containers, images, volumes and networks).
//!
//! Lesson files live in `lessons/content/<NN>-<slug>/lesson.toml`; `lessons/README.md`
//! describes their format for authors.

// api.rs is owned elsewhere; its route table aligns continuation lines.
#[allow(clippy::doc_overindented_list_items)]
pub mod api;
pub mod check;
#[cfg(feature = "content")]
mod content;
mod error;

#[cfg(feature = "content")]
pub use content::{all, parse_lesson, render_markdown, LESSON_FILES};
pub use error::LessonError;

use serde::{Deserialize, Serialize};
use std::fmt;

/// The two languages every lesson is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Ko,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Ko, Lang::En];

    /// `"ko"` or `"en"`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A text in both languages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub ko: String,
    pub en: String,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ko => &self.ko,
            Lang::En => &self.en,
        }
    }
}

/// A lesson, validated, with its Markdown already rendered to HTML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lesson {
    /// Unique among lessons (`lifecycle`, `volumes`...): `[a-z0-9-]+`.
    pub id: String,
    /// 1, 2, 3...: the order in the lesson list.
    pub order: u32,
    /// Plain text (set it with `textContent`, not `innerHTML`).
    pub title: Text,
    /// Plain text, one or two sentences.
    pub summary: Text,
    pub steps: Vec<Step>,
}

impl Lesson {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// One thing for the student to do, and how Berth knows it was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique in its lesson: `[a-z0-9-]+`.
    pub id: String,
    /// Plain text.
    pub title: Text,
    /// HTML (rendered from Markdown; raw HTML in the source is escaped).
    pub text: Text,
    /// HTML, shown when the student asks for a hint.
    pub hint: Text,
    /// The solution, typed in order: never empty.
    pub commands: Vec<Input>,
    /// When the step counts as done.
    pub check: check::Check,
}

/// One terminal input of a step's solution.
///
/// In TOML a command line is a plain string and keys are a table:
///
/// ```toml
/// commands = [
///   "docker run -it --name mybox busybox sh",
///   { keys = ["ctrl-p", "ctrl-q"] },
/// ]
/// ```
///
/// A command line may span several lines (a heredoc): each line is typed followed by
/// Enter. In JSON (the `/api/lessons` wire form) it is the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Typed, then Enter.
    Line(String),
    /// Pressed in order, with no Enter.
    Keys(Vec<Key>),
}

impl Input {
    /// The bytes a terminal sends for this input: a command line's text with every line
    /// ended by `\r` (what the Enter key sends), or the keys' control bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Input::Line(line) => {
                let mut out = Vec::with_capacity(line.len() + 1);
                for l in line.trim_end_matches('\n').split('\n') {
                    out.extend_from_slice(l.trim_end_matches('\r').as_bytes());
                    out.push(b'\r');
                }
                out
            }
            Input::Keys(keys) => keys.iter().flat_map(|k| k.bytes()).collect(),
        }
    }

    /// What the page shows: the command line, or keys as `Ctrl-P Ctrl-Q`.
    pub fn label(&self) -> String {
        match self {
            Input::Line(line) => line.clone(),
            Input::Keys(keys) => keys.iter().map(Key::label).collect::<Vec<_>>().join(" "),
        }
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Input::Line(line) => s.serialize_str(line),
            Input::Keys(keys) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("keys", keys)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Input;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a command line (a string) or { keys = ["ctrl-p", "ctrl-q"] }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Input, E> {
                if v.trim().is_empty() {
                    return Err(E::custom("empty command line"));
                }
                Ok(Input::Line(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Input, A::Error> {
                let mut keys: Option<Vec<Key>> = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "keys" {
                        return Err(serde::de::Error::unknown_field(&k, &["keys"]));
                    }
                    if keys.is_some() {
                        return Err(serde::de::Error::duplicate_field("keys"));
                    }
                    keys = Some(map.next_value()?);
                }
                match keys {
                    None => Err(serde::de::Error::missing_field("keys")),
                    Some(k) if k.is_empty() => Err(serde::de::Error::custom("empty `keys`")),
                    Some(k) => Ok(Input::Keys(k)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A key press: `ctrl-a` ... `ctrl-z`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `enter`, `tab`,
/// `esc`, `backspace`, `up`, `down`, `left`, `right`, or a single printable character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key named `name` (case-insensitive), if it is one.
    pub fn parse(name: &str) -> Option<Key> {
        let k = Key(name.to_ascii_lowercase());
        if k.try_bytes().is_some() {
            Some(if name.chars().count() == 1 {
                Key(name.to_owned())
            } else {
                k
            })
        } else {
            None
        }
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The bytes a terminal sends for this key.
    pub fn bytes(&self) -> Vec<u8> {
        self.try_bytes().expect("a Key is always valid")
    }

    /// `Ctrl-P`, `Enter`, ...
    pub fn label(&self) -> String {
        if let Some(c) = self.0.strip_prefix("ctrl-") {
            return format!("Ctrl-{}", c.to_ascii_uppercase());
        }
        let mut chars = self.0.chars();
        match chars.next() {
            Some(first) if self.0.chars().count() > 1 => {
                first.to_uppercase().chain(chars).collect()
            }
            _ => self.0.clone(),
        }
    }

    fn try_bytes(&self) -> Option<Vec<u8>> {
        let s = self.0.as_str();
        if let Some(c) = s.strip_prefix("ctrl-") {
            let mut it = c.bytes();
            let (Some(b), None) = (it.next(), it.next()) else {
                return None;
            };
            return match b {
                b'a'..=b'z' => Some(vec![b - b'a' + 1]),
                b'@' | b' ' => Some(vec![0]),
                b'[' => Some(vec![0x1b]),
                b'\\' => Some(vec![0x1c]),
                b']' => Some(vec![0x1d]),
                _ => None,
            };
        }
        Some(match s {
            "enter" => vec![b'\r'],
            "tab" => vec![b'\t'],
            "esc" | "escape" => vec![0x1b],
            "backspace" => vec![0x7f],
            "space" => vec![b' '],
            "up" => b"\x1b[A".to_vec(),
            "down" => b"\x1b[B".to_vec(),
            "right" => b"\x1b[C".to_vec(),
            "left" => b"\x1b[D".to_vec(),
            _ => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_control() => c.to_string().into_bytes(),
                    _ => return None,
                }
            }
        })
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Key::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown key `{name}` (ctrl-a..ctrl-z, enter, tab, esc, backspace, space, up, down, left, right, or one character)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_bytes() {
        let i = Input::Keys(vec![
            Key::parse("ctrl-p").unwrap(),
            Key::parse("Ctrl-Q").unwrap(),
        ]);
        assert_eq!(i.bytes(), vec![0x10, 0x11]);
        assert_eq!(i.label(), "Ctrl-P Ctrl-Q");
    }

    #[test]
    fn command_line_gets_cr() {
        assert_eq!(
            Input::Line("docker ps".into()).bytes(),
            b"docker ps\r".to_vec()
        );
        assert_eq!(
            Input::Line("cat > f <<EOF\nhi\nEOF\n".into()).bytes(),
            b"cat > f <<EOF\rhi\rEOF\r".to_vec()
        );
    }

    #[test]
    fn other_keys() {
        assert_eq!(Key::parse("ctrl-c").unwrap().bytes(), vec![3]);
        assert_eq!(Key::parse("enter").unwrap().bytes(), vec![b'\r']);
        assert_eq!(Key::parse("up").unwrap().bytes(), b"\x1b[A".to_vec());
        assert_eq!(Key::parse("q").unwrap().bytes(), b"q".to_vec());
        assert!(Key::parse("ctrl-1").is_none());
        assert!(Key::parse("hyper").is_none());
    }

    #[test]
    fn input_json_round_trip() {
        let inputs = vec![
            Input::Line("docker ps".into()),
            Input::Keys(vec![
                Key::parse("ctrl-p").unwrap(),
                Key::parse("ctrl-q").unwrap(),
            ]),
        ];
        let json = serde_json::to_string(&inputs).unwrap();
        assert_eq!(json, r#"["docker ps",{"keys":["ctrl-p","ctrl-q"]}]"#);
        let back: Vec<Input> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, inputs);
        assert!(serde_json::from_str::<Input>(r#"{"keys":["ctrl-p"],"x":1}"#).is_err());
        assert!(serde_json::from_str::<Input>(r#"{"keys":["nope"]}"#).is_err());
        assert!(serde_json::from_str::<Input>(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn text_get() {
        let t = Text {
            ko: "안녕".into(),
            en: "hi".into(),
        };
        assert_eq!(t.get(Lang::Ko), "안녕");
        assert_eq!(t.get(Lang::En), "hi");
    }
}
