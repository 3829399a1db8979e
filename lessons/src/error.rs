use crate::Lang;

/// Why a lesson file was refused. Every message names the file, and the step when
/// there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LessonError {
    /// Not TOML, or not the shape of a lesson (unknown field, wrong type...).
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: bad id `{id}` (use lowercase letters, digits and '-')")]
    BadId { file: String, id: String },
    #[error("{file}{}: `{field}` has no {lang} text", at_step(.step))]
    MissingText {
        file: String,
        step: Option<String>,
        field: String,
        lang: Lang,
    },
    #[error("{file}: the lesson has no steps")]
    NoSteps { file: String },
    #[error("{file}, step `{step}`: the step has no check")]
    MissingCheck { file: String, step: String },
    #[error("{file}, step `{step}`: the step has no commands")]
    NoCommands { file: String, step: String },
    #[error("{file}, step `{step}`: bad command: {message}")]
    BadCommand {
        file: String,
        step: String,
        message: String,
    },
    /// The check does not deserialize: an unknown kind or field, a wrong type.
    #[error("{file}, step `{step}`: bad check: {message}")]
    BadCheck {
        file: String,
        step: String,
        message: String,
    },
    /// The check deserializes but could never hold (see `check::Check::validate`).
    #[error("{file}, step `{step}`: the check can never hold: {reason}")]
    ImpossibleCheck {
        file: String,
        step: String,
        reason: String,
    },
    #[error("{file}, step `{step}`: a step with this id comes earlier in the lesson")]
    DuplicateStep { file: String, step: String },
    #[error("{file}: lesson id `{id}` is already used by {other}")]
    DuplicateLesson {
        file: String,
        id: String,
        other: String,
    },
    #[error("{file}: lesson order {order} is already used by {other}")]
    DuplicateOrder {
        file: String,
        order: u32,
        other: String,
    },
}

fn at_step(step: &Option<String>) -> String {
    match step {
        Some(s) => format!(", step `{s}`"),
        None => String::new(),
    }
}
