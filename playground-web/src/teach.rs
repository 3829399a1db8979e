//! The instructor's page `/teach`: the login, then their classes and a form for a new
//! one. The login is a cookie (`berth_teach`) the browser sends with each request.

use std::rc::Rc;

use berth_lessons::api::{ClassInfo, ClassLimits, Instructor, Login, NewClassRequest};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::app::Loaded;
use crate::dom;
use crate::header::{PageProps, TopBar};
use crate::http;
use crate::i18n::{self, tr, T};
use crate::model::{Lang, Lesson};
use crate::route;
use crate::time;

#[derive(Clone, PartialEq)]
enum Me {
    Loading,
    LoggedOut,
    In(Instructor),
    Failed(http::Error),
}

#[function_component(TeachPage)]
pub fn teach_page(props: &PageProps) -> Html {
    let l = props.lang;
    let me = use_state(|| Me::Loading);
    // Bumped to ask `/api/teach/me` again (after a login, a logout, an expired login).
    let generation = use_state(|| 0u32);
    {
        let me = me.setter();
        use_effect_with(*generation, move |_| {
            spawn_local(async move {
                loop {
                    match http::teach_me().await {
                        Ok(i) => me.set(Me::In(i)),
                        Err(e) if e.is_unauthorized() => me.set(Me::LoggedOut),
                        Err(e) => {
                            // The server is away (restarting?): say so and ask again.
                            me.set(Me::Failed(e));
                            TimeoutFuture::new(3000).await;
                            continue;
                        }
                    }
                    return;
                }
            });
        });
    }
    let again = {
        let generation = generation.clone();
        Callback::from(move |_: ()| generation.set(*generation + 1))
    };
    let logout = {
        let me = me.setter();
        Callback::from(move |_: MouseEvent| {
            let me = me.clone();
            spawn_local(async move {
                let _ = http::teach_logout().await;
                me.set(Me::LoggedOut);
            });
        })
    };
    let right = match &*me {
        Me::In(i) => html! {
            <span class="who">
                <span id="teach-who" class="who-name">{ i18n::logged_in_as(l, &i.name) }</span>
                <button id="teach-logout" class="on-dark" onclick={logout}>{ tr(l, T::LogOut) }</button>
            </span>
        },
        _ => Html::default(),
    };
    let body = match &*me {
        Me::Loading => html! { <p class="muted">{ tr(l, T::Loading) }</p> },
        Me::Failed(e) => html! { <p class="error">{ i18n::error_text(l, e) }</p> },
        Me::LoggedOut => html! { <LoginForm lang={l} on_done={again.clone()} /> },
        Me::In(_) => html! { <ClassesView lang={l} on_expired={again.clone()} /> },
    };
    html! {
        <div class="doc-page teach-page">
            <TopBar lang={l} on_lang={props.on_lang.clone()} tagline={T::Instructor}
                home={AttrValue::Static("/teach")} {right} />
            <main class="doc">{ body }</main>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct LoginProps {
    lang: Lang,
    /// Logged in: ask who.
    on_done: Callback<()>,
}

#[function_component(LoginForm)]
fn login_form(props: &LoginProps) -> Html {
    let l = props.lang;
    let name = use_state(String::new);
    let password = use_state(String::new);
    let error = use_state(|| None::<http::Error>);
    let sending = use_state(|| false);
    let onsubmit = {
        let (name, password) = (name.clone(), password.clone());
        let (error, sending) = (error.setter(), sending.setter());
        let on_done = props.on_done.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let req = Login {
                name: name.trim().to_string(),
                password: (*password).clone(),
            };
            let (error, sending, on_done) = (error.clone(), sending.clone(), on_done.clone());
            sending.set(true);
            error.set(None);
            spawn_local(async move {
                let answer = http::teach_login(&req).await;
                sending.set(false);
                match answer {
                    Ok(()) => on_done.emit(()),
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let on_name = {
        let name = name.setter();
        Callback::from(move |e: InputEvent| name.set(dom::input_value(&e)))
    };
    let on_password = {
        let password = password.setter();
        Callback::from(move |e: InputEvent| password.set(dom::input_value(&e)))
    };
    html! {
        <section class="card narrow">
            <h1 class="card-title">{ tr(l, T::TeachLoginTitle) }</h1>
            <form id="teach-login-form" class="stack-form" {onsubmit}>
                <label class="field">
                    <span class="field-label">{ tr(l, T::TeachName) }</span>
                    <input id="teach-name" type="text" autocomplete="username"
                        value={(*name).clone()} oninput={on_name} />
                </label>
                <label class="field">
                    <span class="field-label">{ tr(l, T::TeachPassword) }</span>
                    <input id="teach-password" type="password" autocomplete="current-password"
                        value={(*password).clone()} oninput={on_password} />
                </label>
                if let Some(e) = &*error {
                    <p id="teach-error" class="error form-error" data-kind={http::kind_code(e.kind())}>
                        { i18n::error_text(l, e) }
                    </p>
                }
                <button id="teach-login" class="primary" type="submit" disabled={*sending}>
                    { tr(l, T::LogIn) }
                </button>
            </form>
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct ClassesProps {
    lang: Lang,
    /// A 401: the login expired.
    on_expired: Callback<()>,
}

/// An optional time of a class, local, or a dash.
fn when(l: Lang, t: &Option<String>) -> String {
    t.as_deref()
        .map(|t| time::local_rfc3339(l, t))
        .unwrap_or_else(|| tr(l, T::NoTimeSet).to_string())
}

#[function_component(ClassesView)]
fn classes_view(props: &ClassesProps) -> Html {
    let l = props.lang;
    let classes = use_state(|| Loaded::<Rc<Vec<ClassInfo>>>::Loading);
    let lessons = use_state(|| Loaded::<Rc<Vec<Lesson>>>::Loading);
    {
        let classes = classes.setter();
        let lessons = lessons.setter();
        let on_expired = props.on_expired.clone();
        use_effect_with((), move |_| {
            spawn_local(async move {
                match http::teach_classes().await {
                    Ok(list) => classes.set(Loaded::Ready(Rc::new(list))),
                    Err(e) if e.is_unauthorized() => return on_expired.emit(()),
                    Err(_) => classes.set(Loaded::Failed),
                }
                lessons.set(match http::lessons_sorted().await {
                    Ok(list) => Loaded::Ready(Rc::new(list)),
                    Err(_) => Loaded::Failed,
                });
            });
        });
    }
    let list = match &*classes {
        Loaded::Loading => html! { <p class="muted">{ tr(l, T::LoadingClasses) }</p> },
        Loaded::Failed => html! { <p class="error">{ tr(l, T::ErrNetwork) }</p> },
        Loaded::Ready(list) if list.is_empty() => {
            html! { <p id="no-classes" class="muted">{ tr(l, T::NoClasses) }</p> }
        }
        Loaded::Ready(list) => html! {
            <table id="classes" class="table">
                <thead>
                    <tr>
                        <th>{ tr(l, T::ColClass) }</th>
                        <th>{ tr(l, T::ColCode) }</th>
                        <th>{ tr(l, T::ColState) }</th>
                        <th>{ tr(l, T::ColOpens) }</th>
                        <th>{ tr(l, T::ColCloses) }</th>
                    </tr>
                </thead>
                <tbody>
                { for list.iter().map(|c| {
                    let id = c.id.clone().unwrap_or_default();
                    let state = i18n::class_state_code(c.state);
                    html! {
                        <tr key={id.clone()} class="class-row" data-id={id.clone()}
                            data-code={c.code.clone()} data-state={state}>
                            <td><a class="class-link" href={route::dashboard_path(&id)}>{ c.name.clone() }</a></td>
                            <td><code class="code-chip">{ c.code.clone() }</code></td>
                            <td><span class={classes!("state-badge", state)}>{ i18n::class_state(l, c.state) }</span></td>
                            <td>{ when(l, &c.opens) }</td>
                            <td>{ when(l, &c.closes) }</td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
        },
    };
    html! {
        <>
            <section class="card">
                <h1 class="card-title">{ tr(l, T::YourClasses) }</h1>
                { list }
            </section>
            <NewClassForm lang={l} lessons={(*lessons).clone()} on_expired={props.on_expired.clone()} />
        </>
    }
}

#[derive(Properties, PartialEq)]
struct NewClassProps {
    lang: Lang,
    lessons: Loaded<Rc<Vec<Lesson>>>,
    on_expired: Callback<()>,
}

/// A `datetime-local` value as the server wants it: UTC RFC 3339; a value the browser
/// should not have produced goes as it is, for the server to refuse with its reason.
fn window_time(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    Some(time::local_input_to_utc(v).unwrap_or_else(|| v.to_string()))
}

/// A number of MiB as typed, in bytes (empty or not a number: unset).
fn mib(value: &str) -> Option<i64> {
    value.trim().parse::<i64>().ok().map(|m| m << 20)
}

#[function_component(NewClassForm)]
fn new_class_form(props: &NewClassProps) -> Html {
    let l = props.lang;
    let name = use_state(String::new);
    let picked = use_state(Vec::<String>::new);
    let opens = use_state(String::new);
    let closes = use_state(String::new);
    // The class's lab limits, as typed (empty: the server's defaults).
    let cpus = use_state(String::new);
    let memory = use_state(String::new);
    let disk = use_state(String::new);
    let containers = use_state(String::new);
    let error = use_state(|| None::<http::Error>);
    let sending = use_state(|| false);
    let all: Rc<Vec<Lesson>> = match &props.lessons {
        Loaded::Ready(list) => list.clone(),
        _ => Rc::default(),
    };
    let onsubmit = {
        let (name, picked, opens, closes) =
            (name.clone(), picked.clone(), opens.clone(), closes.clone());
        let (cpus, memory, disk, containers) =
            (cpus.clone(), memory.clone(), disk.clone(), containers.clone());
        let (error, sending) = (error.setter(), sending.setter());
        let all = all.clone();
        let on_expired = props.on_expired.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let req = NewClassRequest {
                name: name.trim().to_string(),
                // In lesson order, whatever the order of the clicks.
                lessons: all
                    .iter()
                    .filter(|x| picked.contains(&x.id))
                    .map(|x| x.id.clone())
                    .collect(),
                opens: window_time(&opens),
                closes: window_time(&closes),
                limits: ClassLimits {
                    session_cpus: cpus.trim().parse().ok(),
                    session_memory: mib(&memory),
                    session_pids: None,
                    disk: mib(&disk),
                    containers: containers.trim().parse().ok(),
                },
            };
            let (error, sending, on_expired) = (error.clone(), sending.clone(), on_expired.clone());
            sending.set(true);
            error.set(None);
            spawn_local(async move {
                match http::create_class(&req).await {
                    Ok(c) => match c.id {
                        Some(id) => route::go(&route::dashboard_path(&id)),
                        None => route::go("/teach"),
                    },
                    Err(e) if e.is_unauthorized() => on_expired.emit(()),
                    Err(e) => {
                        sending.set(false);
                        error.set(Some(e));
                    }
                }
            });
        })
    };
    let text_input = |state: &UseStateHandle<String>| {
        let state = state.setter();
        Callback::from(move |e: InputEvent| state.set(dom::input_value(&e)))
    };
    let picks = match &props.lessons {
        Loaded::Loading => html! { <p class="muted">{ tr(l, T::LoadingLessons) }</p> },
        Loaded::Failed => html! { <p class="error">{ tr(l, T::LessonsFailed) }</p> },
        Loaded::Ready(list) => html! {
            <div class="lesson-picks">
            { for list.iter().map(|lesson| {
                let id = lesson.id.clone();
                let onchange = {
                    let picked = picked.clone();
                    let id = id.clone();
                    Callback::from(move |e: Event| {
                        let mut next: Vec<String> = (*picked).iter().filter(|x| **x != id).cloned().collect();
                        if dom::checked(&e) {
                            next.push(id.clone());
                        }
                        picked.set(next);
                    })
                };
                html! {
                    <label key={id.clone()} class="check pick">
                        <input type="checkbox" class="new-class-lesson" value={id.clone()}
                            checked={picked.contains(&id)} {onchange} />
                        <span class="lesson-order">{ lesson.order }</span>
                        <span>{ lesson.title.get(l).to_string() }</span>
                    </label>
                }
            }) }
            </div>
        },
    };
    html! {
        <section class="card">
            <h1 class="card-title">{ tr(l, T::NewClass) }</h1>
            <form id="new-class-form" class="stack-form" {onsubmit}>
                <label class="field">
                    <span class="field-label">{ tr(l, T::NewClassName) }</span>
                    <input id="new-class-name" type="text" autocomplete="off"
                        value={(*name).clone()} oninput={text_input(&name)} />
                </label>
                <fieldset class="field">
                    <legend class="field-label">{ tr(l, T::NewClassLessons) }</legend>
                    <span class="small muted">{ tr(l, T::NewClassLessonsHelp) }</span>
                    { picks }
                </fieldset>
                <div class="row-fields">
                    <label class="field">
                        <span class="field-label">{ tr(l, T::NewClassOpens) }</span>
                        <input id="new-class-opens" type="datetime-local"
                            value={(*opens).clone()} oninput={text_input(&opens)} />
                    </label>
                    <label class="field">
                        <span class="field-label">{ tr(l, T::NewClassCloses) }</span>
                        <input id="new-class-closes" type="datetime-local"
                            value={(*closes).clone()} oninput={text_input(&closes)} />
                    </label>
                </div>
                <span class="small muted">{ tr(l, T::NewClassTimesHelp) }</span>
                <fieldset class="field">
                    <legend class="field-label">{ tr(l, T::NewClassLimits) }</legend>
                    <span class="small muted">{ tr(l, T::NewClassLimitsHelp) }</span>
                    <div class="row-fields">
                        <label class="field">
                            <span class="field-label">{ tr(l, T::LimitCpus) }</span>
                            <input id="new-class-cpus" type="number" min="0.1" step="0.1"
                                value={(*cpus).clone()} oninput={text_input(&cpus)} />
                        </label>
                        <label class="field">
                            <span class="field-label">{ tr(l, T::LimitMemory) }</span>
                            <input id="new-class-memory" type="number" min="64" step="64"
                                value={(*memory).clone()} oninput={text_input(&memory)} />
                        </label>
                        <label class="field">
                            <span class="field-label">{ tr(l, T::LimitDisk) }</span>
                            <input id="new-class-disk" type="number" min="64" step="64"
                                value={(*disk).clone()} oninput={text_input(&disk)} />
                        </label>
                        <label class="field">
                            <span class="field-label">{ tr(l, T::LimitContainers) }</span>
                            <input id="new-class-containers" type="number" min="1" step="1"
                                value={(*containers).clone()} oninput={text_input(&containers)} />
                        </label>
                    </div>
                </fieldset>
                if let Some(e) = &*error {
                    <p id="new-class-error" class="error form-error" data-kind={http::kind_code(e.kind())}>
                        { i18n::error_text(l, e) }
                    </p>
                }
                <button id="new-class-create" class="primary" type="submit" disabled={*sending}>
                    { if *sending { tr(l, T::Creating) } else { tr(l, T::Create) } }
                </button>
            </form>
        </section>
    }
}
