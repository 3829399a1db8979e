//! Lesson progress: which step of the chosen lesson is current, and the events seen
//! since it became current. A step is done when its check holds over those events and
//! the session's state; the next step then starts from no events.

use std::collections::BTreeMap;

use berth_lessons::check::{Event, Observation, State};
use berth_lessons::Lesson;
use chrono::{DateTime, Utc};

#[derive(Debug)]
pub struct Tracker {
    pub lesson: Option<String>,
    /// Done steps by lesson, in the order they were done.
    pub done: BTreeMap<String, Vec<String>>,
    /// Since when the current step is the current one.
    pub since: DateTime<Utc>,
    events: Vec<Event>,
    /// When each of `events` happened.
    times: Vec<DateTime<Utc>>,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker { lesson: None, done: BTreeMap::new(), since: Utc::now(), events: Vec::new(), times: Vec::new() }
    }
}

/// A step whose check just passed, with what passed it (the hand-in's evidence).
#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    pub lesson: String,
    pub step: String,
    /// Commands run on the step (see [`Tracker::attempts`]).
    pub attempts: u32,
    /// The events seen on the step, with their times.
    pub events: Vec<(DateTime<Utc>, Event)>,
}

/// A session keeps at most this many events for its current step.
const MAX_EVENTS: usize = 4096;

impl Tracker {
    pub fn new(lesson: Option<String>, done: Vec<(String, String)>, since: DateTime<Utc>) -> Tracker {
        let mut t = Tracker { lesson, since, ..Default::default() };
        for (l, s) in done {
            t.done.entry(l).or_default().push(s);
        }
        t
    }

    /// Switches lessons: the current step starts afresh.
    pub fn select(&mut self, lesson: &str) {
        self.lesson = Some(lesson.to_string());
        self.events.clear();
        self.times.clear();
        self.since = Utc::now();
    }

    /// Commands the student ran on the current step (none of which passed its
    /// check, or it would not be current): the engine events a command leads with,
    /// so `docker run` counts once, not as create + attach + start + die.
    pub fn attempts(&self) -> u32 {
        self.events.iter().filter(|e| is_command(e)).count() as u32
    }

    pub fn record(&mut self, e: Event, at: DateTime<Utc>) {
        if self.events.len() == MAX_EVENTS {
            self.events.remove(0);
            self.times.remove(0);
        }
        self.events.push(e);
        self.times.push(at);
    }

    /// Marks every step that is now done, in order, and returns them.
    pub fn advance(&mut self, lessons: &[Lesson], state: &State) -> Vec<Passed> {
        let mut newly = Vec::new();
        let Some(lesson) = self.lesson.as_ref().and_then(|id| lessons.iter().find(|l| &l.id == id)) else { return newly };
        loop {
            let done = self.done.entry(lesson.id.clone()).or_default();
            let Some(step) = lesson.steps.iter().find(|s| !done.contains(&s.id)) else { break };
            if !step.check.holds(&Observation { events: &self.events, state }) {
                break;
            }
            done.push(step.id.clone());
            let attempts = self.attempts();
            let events = self.times.drain(..).zip(self.events.drain(..)).collect();
            newly.push(Passed { lesson: lesson.id.clone(), step: step.id.clone(), attempts, events });
            self.since = Utc::now();
        }
        newly
    }
}

/// Whether an event is the first one of a docker command (see [`Tracker::attempts`]).
pub fn is_command(e: &Event) -> bool {
    match e.kind.as_str() {
        // ps, logs, inspect, search, port-open...: commands that change nothing.
        "request" => true,
        "container" => matches!(e.action.as_str(), "create" | "exec_create" | "stop" | "kill" | "restart" | "pause" | "unpause" | "destroy" | "commit" | "rename"),
        "image" => matches!(e.action.as_str(), "pull" | "push" | "build" | "tag" | "load" | "import" | "save" | "delete" | "prune"),
        "volume" | "network" => matches!(e.action.as_str(), "create" | "destroy" | "prune"),
        _ => false,
    }
}

/// A line for the dashboard: what the student last did (`container create web (nginx)`).
pub fn describe(e: &berth_engine::events::Event) -> String {
    let mut s = format!("{} {}", e.kind, e.action);
    let attr = |k: &str| e.attributes.get(k).filter(|v| !v.is_empty());
    if let Some(name) = attr("name") {
        s.push(' ');
        s.push_str(name);
    }
    if let Some(image) = attr("image").filter(|i| Some(*i) != attr("name")) {
        s.push_str(&format!(" ({image})"));
    }
    s
}

/// The lesson-check form of an engine event.
pub fn event(e: &berth_engine::events::Event) -> Event {
    Event { kind: e.kind.clone(), action: e.action.clone(), id: e.id.clone(), attributes: e.attributes.clone() }
}
