//! The shipped lessons, their parser and the Markdown renderer.

use crate::check::Check;
use crate::{Input, Lang, Lesson, LessonError, Step, Text};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde::Deserialize;

/// Every lesson folder under `lessons/content/`, with its `lesson.toml`. A test checks
/// that no folder is missing from this list.
pub const LESSON_FILES: &[(&str, &str)] = &[
    (
        "01-lifecycle",
        include_str!("../content/01-lifecycle/lesson.toml"),
    ),
    (
        "02-step-by-step",
        include_str!("../content/02-step-by-step/lesson.toml"),
    ),
    (
        "03-images-containers",
        include_str!("../content/03-images-containers/lesson.toml"),
    ),
    (
        "04-debugging",
        include_str!("../content/04-debugging/lesson.toml"),
    ),
    (
        "05-volumes",
        include_str!("../content/05-volumes/lesson.toml"),
    ),
    (
        "06-dockerfile",
        include_str!("../content/06-dockerfile/lesson.toml"),
    ),
    (
        "07-registry",
        include_str!("../content/07-registry/lesson.toml"),
    ),
    (
        "08-two-containers",
        include_str!("../content/08-two-containers/lesson.toml"),
    ),
    (
        "09-beyond-linux",
        include_str!("../content/09-beyond-linux/lesson.toml"),
    ),
    (
        "10-compose",
        include_str!("../content/10-compose/lesson.toml"),
    ),
];

/// Every shipped lesson, parsed, validated and rendered, in order.
pub fn all() -> Result<Vec<Lesson>, LessonError> {
    let mut lessons: Vec<(String, Lesson)> = Vec::new();
    for (dir, source) in LESSON_FILES {
        let file = format!("lessons/content/{dir}/lesson.toml");
        let lesson = parse_lesson(&file, source)?;
        if let Some((other, _)) = lessons.iter().find(|(_, l)| l.id == lesson.id) {
            return Err(LessonError::DuplicateLesson {
                file,
                id: lesson.id,
                other: other.clone(),
            });
        }
        if let Some((other, _)) = lessons.iter().find(|(_, l)| l.order == lesson.order) {
            return Err(LessonError::DuplicateOrder {
                file,
                order: lesson.order,
                other: other.clone(),
            });
        }
        lessons.push((file, lesson));
    }
    let mut lessons: Vec<Lesson> = lessons.into_iter().map(|(_, l)| l).collect();
    lessons.sort_by_key(|l| l.order);
    Ok(lessons)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLesson {
    id: String,
    order: u32,
    #[serde(default)]
    title: RawText,
    #[serde(default)]
    summary: RawText,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawText {
    ko: Option<String>,
    en: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    #[serde(default)]
    title: RawText,
    #[serde(default)]
    text: RawText,
    #[serde(default)]
    hint: RawText,
    #[serde(default)]
    commands: Vec<toml::Value>,
    check: Option<toml::Value>,
}

/// Parses and validates one `lesson.toml`, rendering its Markdown. `file` is only used
/// in error messages.
pub fn parse_lesson(file: &str, source: &str) -> Result<Lesson, LessonError> {
    let raw: RawLesson = toml::from_str(source).map_err(|e| LessonError::Parse {
        file: file.into(),
        message: e.to_string().trim_end().into(),
    })?;
    check_id(file, &raw.id)?;
    let title = text(file, None, "title", raw.title, false)?;
    let summary = text(file, None, "summary", raw.summary, false)?;
    if raw.steps.is_empty() {
        return Err(LessonError::NoSteps { file: file.into() });
    }
    let mut steps: Vec<Step> = Vec::with_capacity(raw.steps.len());
    for s in raw.steps {
        check_id(file, &s.id)?;
        if steps.iter().any(|p| p.id == s.id) {
            return Err(LessonError::DuplicateStep {
                file: file.into(),
                step: s.id,
            });
        }
        let at = Some(s.id.as_str());
        let title = text(file, at, "title", s.title, false)?;
        let body = text(file, at, "text", s.text, true)?;
        let hint = text(file, at, "hint", s.hint, true)?;
        if s.commands.is_empty() {
            return Err(LessonError::NoCommands {
                file: file.into(),
                step: s.id,
            });
        }
        let commands = s
            .commands
            .into_iter()
            .map(Input::deserialize)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LessonError::BadCommand {
                file: file.into(),
                step: s.id.clone(),
                message: e.to_string().trim_end().into(),
            })?;
        let Some(check) = s.check else {
            return Err(LessonError::MissingCheck {
                file: file.into(),
                step: s.id,
            });
        };
        let check = Check::deserialize(check).map_err(|e| LessonError::BadCheck {
            file: file.into(),
            step: s.id.clone(),
            message: e.to_string().trim_end().into(),
        })?;
        check
            .validate()
            .map_err(|reason| LessonError::ImpossibleCheck {
                file: file.into(),
                step: s.id.clone(),
                reason,
            })?;
        steps.push(Step {
            id: s.id,
            title,
            text: body,
            hint,
            commands,
            check,
        });
    }
    Ok(Lesson {
        id: raw.id,
        order: raw.order,
        title,
        summary,
        steps,
    })
}

fn check_id(file: &str, id: &str) -> Result<(), LessonError> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LessonError::BadId {
            file: file.into(),
            id: id.into(),
        })
    }
}

fn text(
    file: &str,
    step: Option<&str>,
    field: &str,
    raw: RawText,
    markdown: bool,
) -> Result<Text, LessonError> {
    let get = |v: Option<String>, lang: Lang| match v {
        Some(s) if !s.trim().is_empty() => Ok(if markdown {
            render_markdown(&s)
        } else {
            s.trim().to_owned()
        }),
        _ => Err(LessonError::MissingText {
            file: file.into(),
            step: step.map(str::to_owned),
            field: field.into(),
            lang,
        }),
    };
    Ok(Text {
        ko: get(raw.ko, Lang::Ko)?,
        en: get(raw.en, Lang::En)?,
    })
}

/// Markdown to HTML, safe for `innerHTML`: raw HTML in the source is shown as text,
/// and links and images may only point to http(s), mailto or relative addresses.
pub fn render_markdown(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        e => e,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests;
