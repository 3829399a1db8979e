//! The lesson list and the selected lesson's steps.

use std::rc::Rc;

use berth_lessons::api::LessonProgress;
use gloo_timers::callback::Timeout;
use yew::prelude::*;

use crate::app::TermHandle;
use crate::i18n::{tr, T};
use crate::model::{Input, Lang, Lesson, Step};

#[derive(Properties, PartialEq)]
pub struct ListProps {
    pub lang: Lang,
    pub lessons: Rc<Vec<Lesson>>,
    pub progress: Vec<LessonProgress>,
    pub selected: Option<String>,
    pub on_select: Callback<String>,
}

/// Steps of `lesson` whose check passed (only ids the lesson has).
fn done_count(lesson: &Lesson, progress: &[LessonProgress]) -> usize {
    progress
        .iter()
        .find(|p| p.lesson == lesson.id)
        .map(|p| {
            lesson
                .steps
                .iter()
                .filter(|s| p.done.contains(&s.id))
                .count()
        })
        .unwrap_or(0)
}

#[function_component(LessonList)]
pub fn lesson_list(props: &ListProps) -> Html {
    let l = props.lang;
    html! {
        <nav class="lesson-list" aria-label={tr(l, T::Lessons)}>
            <h2 class="section-title">{ tr(l, T::Lessons) }</h2>
            <ul>
            { for props.lessons.iter().map(|lesson| {
                let done = done_count(lesson, &props.progress);
                let total = lesson.steps.len();
                let pct = (done * 100).checked_div(total).unwrap_or(0);
                let selected = props.selected.as_deref() == Some(lesson.id.as_str());
                let onclick = {
                    let id = lesson.id.clone();
                    let cb = props.on_select.clone();
                    Callback::from(move |_: MouseEvent| cb.emit(id.clone()))
                };
                html! {
                    <li key={lesson.id.clone()}>
                        <button data-lesson={lesson.id.clone()}
                            class={classes!("lesson-item", selected.then_some("selected"),
                                (total > 0 && done == total).then_some("complete"))}
                            title={lesson.summary.get(l).to_string()} {onclick}>
                            <span class="lesson-order">{ lesson.order }</span>
                            <span class="lesson-title" title={lesson.title.get(l).to_string()}>
                                { lesson.title.get(l).to_string() }
                            </span>
                            <span class="lesson-progress" title={tr(l, T::StepsDone)}>
                                { format!("{done}/{total}") }
                            </span>
                            <span class="bar"><span class="fill" style={format!("width:{pct}%")}></span></span>
                        </button>
                    </li>
                }
            }) }
            </ul>
        </nav>
    }
}

#[derive(Properties, PartialEq)]
pub struct PaneProps {
    pub lang: Lang,
    pub lesson: Lesson,
    /// Ids of the steps whose check passed.
    pub done: Vec<String>,
    pub term: TermHandle,
    /// The header's "Lessons" button: back to the full list.
    pub on_browse: Callback<()>,
}

/// Scrolls the lesson pane's scroll box (its parent, `.left`) so that the current step
/// (or the closing note) is in view below the sticky header: at once when the lesson
/// opens, smoothly when a step completes. Nothing moves if it is in view already.
fn scroll_to_current(pane: &web_sys::Element, smooth: bool) {
    let Some(scroller) = pane.parent_element() else {
        return;
    };
    let target = pane
        .query_selector(".step.current")
        .ok()
        .flatten()
        .or_else(|| pane.query_selector(".lesson-complete").ok().flatten());
    let Some(target) = target else { return };
    let bar = pane
        .query_selector(".lesson-bar")
        .ok()
        .flatten()
        .map(|b| b.get_bounding_client_rect().height())
        .unwrap_or(0.0);
    let sr = scroller.get_bounding_client_rect();
    let tr = target.get_bounding_client_rect();
    let top = sr.top() + bar;
    if tr.top() >= top && tr.bottom() <= sr.bottom() {
        return;
    }
    // Its top just under the header, with a glimpse of the step before it.
    let y = f64::from(scroller.scroll_top()) + (tr.top() - top) - 12.0;
    let opts = web_sys::ScrollToOptions::new();
    opts.set_top(y.max(0.0));
    opts.set_behavior(if smooth {
        web_sys::ScrollBehavior::Smooth
    } else {
        web_sys::ScrollBehavior::Instant
    });
    scroller.scroll_to_with_scroll_to_options(&opts);
}

#[function_component(LessonPane)]
pub fn lesson_pane(props: &PaneProps) -> Html {
    let l = props.lang;
    let lesson = &props.lesson;
    let current = lesson
        .steps
        .iter()
        .position(|s| !props.done.contains(&s.id));
    let node = use_node_ref();
    // The step shown last: None until the first scroll (on opening the lesson).
    let shown = use_mut_ref(|| None::<Option<usize>>);
    {
        let node = node.clone();
        use_effect_with(current, move |current| {
            if let Some(pane) = node.cast::<web_sys::Element>() {
                let first = shown.borrow().is_none();
                if first {
                    if let Some(scroller) = pane.parent_element() {
                        scroller.set_scroll_top(0);
                    }
                }
                if first || *shown.borrow() != Some(*current) {
                    scroll_to_current(&pane, !first);
                }
                *shown.borrow_mut() = Some(*current);
            }
        });
    }
    let total = lesson.steps.len();
    let done_n = lesson
        .steps
        .iter()
        .filter(|s| props.done.contains(&s.id))
        .count();
    let pct = (done_n * 100).checked_div(total).unwrap_or(0);
    let title = lesson.title.get(l).to_string();
    let browse = props.on_browse.reform(|_: MouseEvent| ());
    html! {
        <section class="lesson-pane" data-current-lesson={lesson.id.clone()} ref={node}>
            <div class="lesson-bar">
                <button class="lessons-button" title={tr(l, T::LessonListTitle)} onclick={browse}>
                    { "☰ " }{ tr(l, T::LessonListButton) }
                </button>
                <span class="lesson-bar-order">{ lesson.order }</span>
                <h2 class="lesson-heading" title={title.clone()}>{ title }</h2>
                <span class={classes!("lesson-progress", (total > 0 && done_n == total).then_some("complete"))}
                    title={tr(l, T::StepsDone)}>
                    { format!("{done_n}/{total}") }
                </span>
                <span class="bar"><span class="fill" style={format!("width:{pct}%")}></span></span>
            </div>
            <p class="lesson-summary">{ lesson.summary.get(l).to_string() }</p>
            <ol class="steps">
            { for lesson.steps.iter().enumerate().map(|(i, step)| html! {
                <StepView key={step.id.clone()} lang={l} step={step.clone()} number={i + 1}
                    done={props.done.contains(&step.id)} current={current == Some(i)}
                    term={props.term.clone()} />
            }) }
            </ol>
            if current.is_none() && !lesson.steps.is_empty() {
                <p class="lesson-complete">{ "🎉 " }{ tr(l, T::LessonDone) }</p>
            }
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct StepProps {
    lang: Lang,
    step: Step,
    number: usize,
    done: bool,
    current: bool,
    term: TermHandle,
}

/// What Copy puts on the clipboard (raw keys are not copied).
fn input_copy_text(input: &Input) -> Option<String> {
    match input {
        Input::Line(line) => Some(line.clone()),
        Input::Keys(_) => None,
    }
}

#[function_component(StepView)]
fn step_view(props: &StepProps) -> Html {
    let l = props.lang;
    let step = &props.step;
    let hint_open = use_state(|| false);
    let copied = use_state(|| None::<usize>);
    let toggle_hint = {
        let hint_open = hint_open.clone();
        Callback::from(move |_: MouseEvent| hint_open.set(!*hint_open))
    };
    let commands = step.commands.iter().enumerate().map(|(i, input)| {
        let copy = input_copy_text(input).map(|text| {
            let copied = copied.clone();
            Callback::from(move |_: MouseEvent| {
                if let Some(w) = web_sys::window() {
                    let _ = w.navigator().clipboard().write_text(&text);
                }
                copied.set(Some(i));
                let copied = copied.clone();
                Timeout::new(1200, move || copied.set(None)).forget();
            })
        });
        let type_it = {
            let term = props.term.clone();
            let bytes = input.bytes();
            Callback::from(move |_: MouseEvent| term.type_bytes(&bytes))
        };
        let is_keys = input_copy_text(input).is_none();
        html! {
            <li class={classes!("command", is_keys.then_some("keys"))}>
                <code>{ input.label() }</code>
                if let Some(onclick) = copy {
                    <button class="copy-button" {onclick}>
                        { if *copied == Some(i) { tr(l, T::Copied) } else { tr(l, T::Copy) } }
                    </button>
                }
                <button class="type-button" title={tr(l, T::TypeItTitle)} onclick={type_it}>
                    { tr(l, T::TypeIt) }
                </button>
            </li>
        }
    });
    html! {
        <li data-step={step.id.clone()}
            class={classes!("step", props.done.then_some("done"), props.current.then_some("current"))}>
            <div class="step-head">
                <span class="step-mark">
                    { if props.done { "✓".to_string() } else { props.number.to_string() } }
                </span>
                <h3>{ step.title.get(l).to_string() }</h3>
            </div>
            <div class="step-text">{ Html::from_html_unchecked(AttrValue::from(step.text.get(l).to_string())) }</div>
            if !step.commands.is_empty() {
                <ul class="commands">{ for commands }</ul>
            }
            if !step.hint.get(l).trim().is_empty() {
                <button class="hint-toggle" onclick={toggle_hint}>
                    { if *hint_open { tr(l, T::HideHint) } else { tr(l, T::Hint) } }
                </button>
                if *hint_open {
                    <div class="hint">{ Html::from_html_unchecked(AttrValue::from(step.hint.get(l).to_string())) }</div>
                }
            }
        </li>
    }
}
