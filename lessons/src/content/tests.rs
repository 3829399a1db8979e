use super::*;
use crate::check::Check;
use proptest::prelude::*;

#[test]
fn shipped_lessons_parse_and_validate() {
    let lessons = all().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lessons.len(), 10);
    let ids: Vec<&str> = lessons.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "lifecycle",
            "step-by-step",
            "images-containers",
            "debugging",
            "volumes",
            "dockerfile",
            "registry",
            "two-containers",
            "beyond-linux",
            "compose"
        ]
    );
    for (i, l) in lessons.iter().enumerate() {
        assert_eq!(l.order as usize, i + 1, "{}", l.id);
        for lang in Lang::ALL {
            assert!(!l.title.get(lang).is_empty(), "{} title {lang}", l.id);
            assert!(!l.summary.get(lang).is_empty(), "{} summary {lang}", l.id);
        }
        assert!(l.steps.len() >= 3, "{} has few steps", l.id);
        for s in &l.steps {
            for lang in Lang::ALL {
                for (what, t) in [("title", &s.title), ("text", &s.text), ("hint", &s.hint)] {
                    assert!(
                        !t.get(lang).trim().is_empty(),
                        "{}/{} {what} {lang}",
                        l.id,
                        s.id
                    );
                }
                assert!(
                    s.text.get(lang).starts_with('<'),
                    "{}/{}: text is HTML",
                    l.id,
                    s.id
                );
            }
            // Korean text is Korean, English text is not.
            assert!(
                s.text.ko.chars().any(|c| ('가'..='힣').contains(&c)),
                "{}/{}",
                l.id,
                s.id
            );
            assert!(
                !s.text.en.chars().any(|c| ('가'..='힣').contains(&c)),
                "{}/{}",
                l.id,
                s.id
            );
            assert!(!s.commands.is_empty());
        }
    }
}

#[test]
fn every_content_folder_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/content");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = LESSON_FILES.iter().map(|(d, _)| d.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "lessons/content/ and LESSON_FILES differ");
    for (d, src) in LESSON_FILES {
        let on_disk = std::fs::read_to_string(format!("{dir}/{d}/lesson.toml")).unwrap();
        assert_eq!(&on_disk, src);
    }
}

#[test]
fn lessons_serialize_to_json_and_back() {
    let lessons = all().unwrap();
    let json = serde_json::to_string(&lessons).unwrap();
    let back: Vec<crate::Lesson> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, lessons);
}

#[test]
fn detach_step_uses_keys() {
    let lessons = all().unwrap();
    let detach = lessons[0].step("detach").unwrap();
    assert_eq!(detach.commands[0].bytes(), vec![0x10, 0x11]);
    let run = lessons[0].step("run-it").unwrap();
    assert_eq!(
        run.commands[0].bytes(),
        b"docker run -it --name mybox busybox sh\r".to_vec()
    );
}

const GOOD: &str = r#"
id = "demo"
order = 1
title = { ko = "데모", en = "Demo" }
summary = { ko = "요약", en = "Summary" }

[[steps]]
id = "pull"
title = { ko = "받기", en = "Pull" }
text.ko = "**굵게** <script>alert(1)</script>"
text.en = "Pull [it](javascript:alert(1)) <b>now</b>"
hint = { ko = "힌트", en = "Hint" }
commands = ["docker pull busybox", { keys = ["ctrl-c"] }]
check = { event = { kind = "image", action = "pull", image = "busybox" } }
"#;

fn parse(src: &str) -> Result<Lesson, LessonError> {
    parse_lesson("demo.toml", src)
}

#[test]
fn a_good_lesson_parses_and_raw_html_is_escaped() {
    let l = parse(GOOD).unwrap();
    let s = &l.steps[0];
    assert_eq!(
        s.text.ko,
        "<p><strong>굵게</strong> &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    );
    assert!(!s.text.en.contains("<b>"), "{}", s.text.en);
    assert!(!s.text.en.contains("javascript:"), "{}", s.text.en);
    assert_eq!(s.commands.len(), 2);
    assert!(matches!(s.check, Check::Event(_)));
}

#[test]
fn html_blocks_are_escaped() {
    let html = render_markdown("<div onclick=\"x()\">\nhi\n</div>\n\n`<code>`\n");
    assert!(!html.contains("<div"), "{html}");
    assert!(html.contains("<code>&lt;code&gt;</code>"), "{html}");
    assert!(render_markdown("[a](https://example.com)").contains("href=\"https://example.com\""));
    assert!(render_markdown("[a](/lab/x)").contains("href=\"/lab/x\""));
}

fn err(src: &str) -> LessonError {
    parse(src).expect_err("should be refused")
}

#[test]
fn unknown_check_kind() {
    let e = err(&GOOD.replace("check = { event =", "check = { evnt ="));
    assert!(
        matches!(&e, LessonError::BadCheck { step, message, .. } if step == "pull" && message.contains("evnt")),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("demo.toml, step `pull`: bad check"),
        "{e}"
    );
}

#[test]
fn unknown_check_field() {
    let e = err(&GOOD.replace("image = \"busybox\" }", "imgae = \"busybox\" }"));
    assert!(
        matches!(&e, LessonError::BadCheck { message, .. } if message.contains("imgae")),
        "{e}"
    );
}

#[test]
fn unknown_event_kind_and_action() {
    let e = err(&GOOD.replace("kind = \"image\"", "kind = \"picture\""));
    assert!(
        matches!(&e, LessonError::ImpossibleCheck { reason, .. } if reason.contains("picture")),
        "{e}"
    );
    let e = err(&GOOD.replace("action = \"pull\"", "action = \"fetch\""));
    assert!(
        matches!(&e, LessonError::ImpossibleCheck { reason, .. } if reason.contains("fetch")),
        "{e}"
    );
}

#[test]
fn empty_all_is_impossible() {
    let src = GOOD.replace(
        r#"check = { event = { kind = "image", action = "pull", image = "busybox" } }"#,
        "check = { all = [] }",
    );
    assert!(matches!(err(&src), LessonError::ImpossibleCheck { .. }));
}

#[test]
fn missing_check() {
    let src = GOOD.replace(
        r#"check = { event = { kind = "image", action = "pull", image = "busybox" } }"#,
        "",
    );
    let e = err(&src);
    assert_eq!(
        e,
        LessonError::MissingCheck {
            file: "demo.toml".into(),
            step: "pull".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "demo.toml, step `pull`: the step has no check"
    );
}

#[test]
fn step_without_commands() {
    let e = err(&GOOD.replace(
        r#"commands = ["docker pull busybox", { keys = ["ctrl-c"] }]"#,
        "commands = []",
    ));
    assert_eq!(
        e,
        LessonError::NoCommands {
            file: "demo.toml".into(),
            step: "pull".into()
        }
    );
    let e = err(&GOOD.replace(
        r#"commands = ["docker pull busybox", { keys = ["ctrl-c"] }]"#,
        "",
    ));
    assert_eq!(
        e,
        LessonError::NoCommands {
            file: "demo.toml".into(),
            step: "pull".into()
        }
    );
}

#[test]
fn bad_command() {
    let e = err(&GOOD.replace(r#"{ keys = ["ctrl-c"] }"#, r#"{ keys = ["ctrl-é"] }"#));
    assert!(matches!(&e, LessonError::BadCommand { .. }), "{e}");
    let e = err(&GOOD.replace(r#"{ keys = ["ctrl-c"] }"#, r#"{ key = ["ctrl-c"] }"#));
    assert!(matches!(&e, LessonError::BadCommand { .. }), "{e}");
}

#[test]
fn bad_toml() {
    let e = err("id = \"demo\"\norder = 1\ntitle = { ko = \"x\", en = ");
    assert!(
        matches!(&e, LessonError::Parse { file, .. } if file == "demo.toml"),
        "{e}"
    );
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn unknown_lesson_field() {
    let e = err(&GOOD.replace("order = 1", "order = 1\nauthor = \"me\""));
    assert!(
        matches!(&e, LessonError::Parse { message, .. } if message.contains("author")),
        "{e}"
    );
}

#[test]
fn missing_text() {
    let e = err(&GOOD.replace(
        "text.en = \"Pull [it](javascript:alert(1)) <b>now</b>\"",
        "",
    ));
    assert_eq!(
        e,
        LessonError::MissingText {
            file: "demo.toml".into(),
            step: Some("pull".into()),
            field: "text".into(),
            lang: Lang::En
        }
    );
    assert_eq!(
        e.to_string(),
        "demo.toml, step `pull`: `text` has no en text"
    );
    let e = err(&GOOD.replace(
        "title = { ko = \"데모\", en = \"Demo\" }",
        "title = { en = \"Demo\" }",
    ));
    assert_eq!(e.to_string(), "demo.toml: `title` has no ko text");
}

#[test]
fn duplicate_step() {
    let step = &GOOD[GOOD.find("[[steps]]").unwrap()..];
    let e = err(&format!("{GOOD}\n{step}"));
    assert_eq!(
        e,
        LessonError::DuplicateStep {
            file: "demo.toml".into(),
            step: "pull".into()
        }
    );
}

#[test]
fn no_steps_and_bad_ids() {
    let head = &GOOD[..GOOD.find("[[steps]]").unwrap()];
    assert!(matches!(err(head), LessonError::NoSteps { .. }));
    assert!(matches!(
        err(&GOOD.replace("id = \"demo\"", "id = \"Demo Lesson\"")),
        LessonError::BadId { .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random TOML-ish text never panics the parser.
    #[test]
    fn parser_never_panics(src in r#"[\[\]{}=",.a-z0-9 \n'_-]{0,200}"#) {
        let _ = parse(&src);
    }

    /// Random edits to a valid lesson never panic it either.
    #[test]
    fn mutated_lesson_never_panics(at in 0usize..GOOD.len(), cut in 0usize..40, insert in r#"[\[\]{}=",a-z ]{0,8}"#) {
        let mut src = GOOD.to_string();
        let mut start = at.min(src.len());
        while !src.is_char_boundary(start) { start -= 1; }
        let mut end = (start + cut).min(src.len());
        while !src.is_char_boundary(end) { end -= 1; }
        src.replace_range(start..end, &insert);
        let _ = parse(&src);
    }

    /// Random keys and check shapes, in a well-formed file.
    #[test]
    fn random_checks_never_panic(kind in "[a-z_]{1,10}", action in "[a-z_:-]{1,12}", key in "[a-z_]{1,10}") {
        let src = GOOD.replace(
            r#"check = { event = { kind = "image", action = "pull", image = "busybox" } }"#,
            &format!(r#"check = {{ {key} = {{ kind = "{kind}", action = "{action}" }} }}"#),
        );
        let _ = parse(&src);
    }
}

#[test]
fn a_check_with_two_kinds_is_refused() {
    let src = GOOD.replace(
        r#"check = { event = { kind = "image", action = "pull", image = "busybox" } }"#,
        r#"check = { event = { kind = "image", action = "pull" }, volume = { name = "x" } }"#,
    );
    assert!(matches!(err(&src), LessonError::BadCheck { .. }));
}
