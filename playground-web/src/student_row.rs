//! A student's row on the dashboard: where they are in the class's lessons, how long
//! on the step, their last activity and action, the stuck flag, who watches their
//! terminal, and the instructor's tools for their lab (watch, take over, message,
//! reset, end, the transcript).

use berth_lessons::api::{Stuck, StudentRow, Watching};
use yew::prelude::*;

use crate::dashboard::age_secs;
use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::Lang;

/// What waits for the instructor's "yes".
#[derive(Clone, Debug, PartialEq)]
pub enum Pending {
    Reset(String),
    End(String),
    CloseClass,
}

/// What a student's row can do, from the view.
pub struct RowTools<'a> {
    pub class: &'a str,
    pub watching: &'a [Watching],
    /// (name, take over)
    pub on_watch: Callback<(String, bool)>,
    pub on_message: Callback<String>,
    pub on_confirm: Callback<Pending>,
}

fn stuck_code(s: &Stuck) -> &'static str {
    match s {
        Stuck::NoProgress { .. } => "no_progress",
        Stuck::Failing { .. } => "failing",
    }
}

pub fn student_row(
    l: Lang,
    now: f64,
    r: &StudentRow,
    lesson_title: &dyn Fn(&str) -> String,
    step_title: &dyn Fn(&str, &str) -> String,
    tools: &RowTools,
) -> Html {
    let pct = (f64::from(r.done) * 100.0 / f64::from(r.total.max(1))).min(100.0);
    let (lesson, step) = match (&r.lesson, &r.step) {
        (None, _) => (tr(l, T::NoLessonYet).to_string(), String::new()),
        (Some(lesson), None) => (lesson_title(lesson), tr(l, T::LessonFinished).to_string()),
        (Some(lesson), Some(step)) => (lesson_title(lesson), step_title(lesson, step)),
    };
    let activity = r
        .last_activity
        .as_deref()
        .map(|t| i18n::ago(l, age_secs(now, t)))
        .unwrap_or_else(|| tr(l, T::Never).to_string());
    let (online_code, online_text) = if r.reconnecting {
        ("reconnecting", tr(l, T::LabReconnecting))
    } else if r.online {
        ("online", tr(l, T::Online))
    } else {
        ("offline", tr(l, T::Offline))
    };
    let name = r.name.clone();
    let button = |class: &'static str, text: T, title: Option<T>, onclick: Callback<MouseEvent>| {
        html! {
            <button type="button" class={classes!("small-button", class)}
                title={title.map(|t| tr(l, t))} {onclick}>{ tr(l, text) }</button>
        }
    };
    let watch = {
        let (cb, name) = (tools.on_watch.clone(), name.clone());
        Callback::from(move |_: MouseEvent| cb.emit((name.clone(), false)))
    };
    let take_over = {
        let (cb, name) = (tools.on_watch.clone(), name.clone());
        Callback::from(move |_: MouseEvent| cb.emit((name.clone(), true)))
    };
    let message = {
        let (cb, name) = (tools.on_message.clone(), name.clone());
        Callback::from(move |_: MouseEvent| cb.emit(name.clone()))
    };
    let reset = {
        let (cb, name) = (tools.on_confirm.clone(), name.clone());
        Callback::from(move |_: MouseEvent| cb.emit(Pending::Reset(name.clone())))
    };
    let end = {
        let (cb, name) = (tools.on_confirm.clone(), name.clone());
        Callback::from(move |_: MouseEvent| cb.emit(Pending::End(name.clone())))
    };
    let watchers = tools.watching.iter().filter(|w| w.student == r.name);
    html! {
        <tr key={r.name.clone()} class={classes!("student", r.stuck.is_some().then_some("stuck"), r.hand.then_some("hand-raised"))}
            data-name={r.name.clone()} data-online={r.online.to_string()} data-hand={r.hand.to_string()}
            data-done={r.done.to_string()} data-total={r.total.to_string()}
            data-stuck={r.stuck.as_ref().map(stuck_code).unwrap_or("")}>
            <td class="student-name">
                <span class={classes!("dot", online_code)} title={online_text}></span>
                { r.name.clone() }
                if r.hand {
                    <span class="hand-up">{ tr(l, T::HandUp) }</span>
                }
                { for watchers.map(|w| html! {
                    <span class={classes!("watching", w.control.then_some("control"))}
                        data-instructor={w.instructor.clone()} data-control={w.control.to_string()}>
                        { i18n::watcher_badge(l, &w.instructor, w.control) }
                    </span>
                }) }
            </td>
            <td class="student-where">
                <div class="student-step" title={step.clone()}>{ step }</div>
                <div class="student-lesson small muted" title={lesson.clone()}>{ lesson }</div>
            </td>
            <td class="student-progress">
                <span class="progress-text">{ format!("{}/{}", r.done, r.total) }</span>
                <span class="bar"><span class="fill" style={format!("width:{pct:.1}%")}></span></span>
            </td>
            <td class="student-on-step">{ i18n::duration(l, age_secs(now, &r.step_since)) }</td>
            <td class="student-activity">{ activity }</td>
            <td class="num student-containers">{ r.containers_running }</td>
            <td class="num student-attempts">{ r.attempts }</td>
            <td class="student-action">
                if let Some(a) = &r.last_action { <code title={a.clone()}>{ a.clone() }</code> }
            </td>
            <td class="student-stuck">
                if let Some(s) = &r.stuck {
                    <span class="stuck-badge" data-reason={stuck_code(s)}>{ i18n::stuck_text(l, s) }</span>
                }
            </td>
            <td class="student-tools">
                <div class="tools">
                    { button("watch", T::Watch, Some(T::WatchTitle), watch) }
                    { button("take-over", T::TakeOver, Some(T::TakeOverTitle), take_over) }
                    { button("message-student", T::MessageStudent, None, message) }
                    { button("reset", T::Reset, Some(T::ResetTitle), reset) }
                    { button("end", T::End, Some(T::EndTitle), end) }
                    <a class="transcript small-button" href={http::transcript_path(tools.class, &r.name)}
                        download="" title={tr(l, T::TranscriptTitle)}>{ tr(l, T::Transcript) }</a>
                </div>
            </td>
        </tr>
    }
}
