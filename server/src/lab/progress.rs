//! Lesson progress: which step of the chosen lesson is current, and the events seen
//! since it became current. A step is done when its check holds over those events and
//! the session's state; the next step then starts from no events.

use std::collections::BTreeMap;

use berth_lessons::check::{Event, Observation, State};
use berth_lessons::Lesson;

#[derive(Debug, Default)]
pub struct Tracker {
    pub lesson: Option<String>,
    /// Done steps by lesson, in the order they were done.
    pub done: BTreeMap<String, Vec<String>>,
    events: Vec<Event>,
}

/// A session keeps at most this many events for its current step.
const MAX_EVENTS: usize = 4096;

impl Tracker {
    pub fn new(lesson: Option<String>, done: Vec<(String, String)>) -> Tracker {
        let mut t = Tracker { lesson, ..Default::default() };
        for (l, s) in done {
            t.done.entry(l).or_default().push(s);
        }
        t
    }

    /// Switches lessons: the current step starts afresh.
    pub fn select(&mut self, lesson: &str) {
        self.lesson = Some(lesson.to_string());
        self.events.clear();
    }

    pub fn record(&mut self, e: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(e);
    }

    /// Marks every step that is now done, in order, and returns them as (lesson, step).
    pub fn advance(&mut self, lessons: &[Lesson], state: &State) -> Vec<(String, String)> {
        let mut newly = Vec::new();
        let Some(lesson) = self.lesson.as_ref().and_then(|id| lessons.iter().find(|l| &l.id == id)) else { return newly };
        loop {
            let done = self.done.entry(lesson.id.clone()).or_default();
            let Some(step) = lesson.steps.iter().find(|s| !done.contains(&s.id)) else { break };
            if !step.check.holds(&Observation { events: &self.events, state }) {
                break;
            }
            done.push(step.id.clone());
            newly.push((lesson.id.clone(), step.id.clone()));
            self.events.clear();
        }
        newly
    }
}

/// The lesson-check form of an engine event.
pub fn event(e: &berth_engine::events::Event) -> Event {
    Event { kind: e.kind.clone(), action: e.action.clone(), id: e.id.clone(), attributes: e.attributes.clone() }
}
