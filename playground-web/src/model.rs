//! The lesson types, from `berth_lessons` (built without its `content` feature).

pub use berth_lessons::{Input, Lang, Lesson, Step};
