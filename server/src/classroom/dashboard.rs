//! The teacher's view of a class, made from what the lab knows of each student's
//! session (a [`StudentSnapshot`]): where each student is, who is stuck, and how far
//! the class has got, step by step.

use std::collections::BTreeMap;

use berth_lessons::api::{AuditRow, ClassMessage, Dashboard, HandRow, StepSummary, Stuck, StudentRow, Watching};
use berth_lessons::Lesson;
use chrono::{DateTime, Duration, Utc};

use super::class_info;
use crate::lab::db::ClassRow;

/// One student's lab as the dashboard needs it (a lab node sends it to its hub).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StudentSnapshot {
    pub name: String,
    pub joined: DateTime<Utc>,
    /// The lesson the student has open.
    pub lesson: Option<String>,
    /// Done steps by lesson.
    pub done: BTreeMap<String, Vec<String>>,
    pub step_since: DateTime<Utc>,
    pub last_activity: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub last_action: Option<String>,
    pub containers_running: u32,
    pub online: bool,
    /// Its lab node is away (see `StudentRow::reconnecting`).
    #[serde(default)]
    pub reconnecting: bool,
}

/// When a student counts as stuck (`berth serve --class-stuck-after`, `--class-stuck-attempts`).
#[derive(Debug, Clone, Copy)]
pub struct StuckRule {
    pub after: Duration,
    pub attempts: u32,
}

/// What the dashboard shows besides the students' rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassActivity {
    pub hands: Vec<HandRow>,
    pub messages: Vec<ClassMessage>,
    pub actions: Vec<AuditRow>,
    pub watching: Vec<Watching>,
}

pub fn build(class: &ClassRow, catalog: &[Lesson], students: &[StudentSnapshot], activity: ClassActivity, rule: StuckRule, now: DateTime<Utc>) -> Dashboard {
    let lessons: Vec<&Lesson> = class.lessons.iter().filter_map(|id| catalog.iter().find(|l| &l.id == id)).collect();
    let total: usize = lessons.iter().map(|l| l.steps.len()).sum();
    let rows = students
        .iter()
        .map(|s| StudentRow { hand: activity.hands.iter().any(|h| h.name == s.name), ..row(s, &lessons, total, rule, now) })
        .collect();
    let steps = lessons
        .iter()
        .flat_map(|l| {
            l.steps.iter().map(move |step| StepSummary {
                lesson: l.id.clone(),
                step: step.id.clone(),
                finished: students.iter().filter(|s| s.done.get(&l.id).is_some_and(|d| d.contains(&step.id))).count() as u32,
            })
        })
        .collect();
    Dashboard {
        class: class_info(class, now, true),
        hands: activity.hands,
        messages: activity.messages,
        actions: activity.actions,
        watching: activity.watching,
        now: now.to_rfc3339(),
        stuck_after_secs: rule.after.num_seconds().max(0) as u64,
        students: rows,
        steps,
    }
}

fn row(s: &StudentSnapshot, lessons: &[&Lesson], total: usize, rule: StuckRule, now: DateTime<Utc>) -> StudentRow {
    // A lesson outside the class (picked in the full list) still shows; a student who
    // picked none is on the class's first.
    let lesson = s.lesson.clone().or_else(|| lessons.first().map(|l| l.id.clone()));
    let current = lesson.as_ref().and_then(|id| lessons.iter().find(|l| &l.id == id));
    let step = current.and_then(|l| {
        let done = s.done.get(&l.id);
        l.steps.iter().find(|st| !done.is_some_and(|d| d.contains(&st.id))).map(|st| st.id.clone())
    });
    let done = lessons.iter().map(|l| s.done.get(&l.id).map_or(0, |d| d.iter().filter(|id| l.step(id).is_some()).count())).sum::<usize>();
    let stuck = step.as_ref().and_then(|_| {
        if rule.attempts > 0 && s.attempts >= rule.attempts {
            Some(Stuck::Failing { attempts: s.attempts })
        } else if now - s.step_since >= rule.after {
            Some(Stuck::NoProgress { minutes: (now - s.step_since).num_minutes().max(0) as u64 })
        } else {
            None
        }
    });
    StudentRow {
        name: s.name.clone(),
        hand: false,
        joined: s.joined.to_rfc3339(),
        lesson,
        step,
        done: done as u32,
        total: total as u32,
        step_since: s.step_since.to_rfc3339(),
        last_activity: s.last_activity.map(|t| t.to_rfc3339()),
        attempts: s.attempts,
        last_action: s.last_action.clone(),
        containers_running: s.containers_running,
        online: s.online,
        reconnecting: s.reconnecting,
        stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_say_where_each_student_is_and_who_is_stuck() {
        let catalog = berth_lessons::all().unwrap();
        let first = &catalog[0];
        let now = Utc::now();
        let class = ClassRow { id: "c1".into(), name: "c".into(), code: "ABCDEFGH".into(), lessons: vec![first.id.clone()], opens: None, closes: None, created: now, limits: Default::default() };
        let s = |name: &str, done: usize, since_min: i64, attempts: u32| StudentSnapshot {
            name: name.into(),
            joined: now,
            lesson: None,
            done: BTreeMap::from([(first.id.clone(), first.steps[..done].iter().map(|s| s.id.clone()).collect())]),
            step_since: now - Duration::minutes(since_min),
            last_activity: None,
            attempts,
            last_action: None,
            containers_running: 0,
            online: true,
            reconnecting: false,
        };
        let n = first.steps.len();
        let students = [s("fresh", 0, 1, 0), s("slow", 1, 20, 0), s("trying", 1, 2, 9), s("done", n, 60, 0)];
        let d = build(&class, &catalog, &students, ClassActivity::default(), StuckRule { after: Duration::minutes(10), attempts: 5 }, now);
        assert_eq!(d.class.id.as_deref(), Some("c1"));
        let r: BTreeMap<&str, &StudentRow> = d.students.iter().map(|r| (r.name.as_str(), r)).collect();
        assert_eq!(r["fresh"].step.as_ref(), Some(&first.steps[0].id));
        assert_eq!((r["fresh"].done, r["fresh"].total), (0, n as u32));
        assert_eq!(r["fresh"].stuck, None);
        assert_eq!(r["slow"].stuck, Some(Stuck::NoProgress { minutes: 20 }));
        assert_eq!(r["trying"].stuck, Some(Stuck::Failing { attempts: 9 }));
        assert_eq!(r["done"].step, None);
        assert_eq!(r["done"].stuck, None, "a finished student is not stuck");
        assert_eq!(d.steps.len(), n);
        assert_eq!(d.steps[0].finished, 3);
        assert_eq!(d.steps[1].finished, 1);
    }
}
