//! Every text of the page, in Korean and English.

use crate::model::Lang;

/// A text of the page (lesson content comes from the server in both languages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T {
    Tagline,
    SwitchTitle,
    Lessons,
    LoadingLessons,
    LessonsFailed,
    PickLesson,
    LessonListButton,
    LessonListTitle,
    StepsDone,
    Hint,
    HideHint,
    Copy,
    Copied,
    TypeIt,
    TypeItTitle,
    Terminal,
    Detach,
    DetachTitle,
    Connecting,
    Connected,
    Reconnecting,
    NoSession,
    Containers,
    NoContainers,
    Images,
    NoImages,
    StateCreated,
    StateRunning,
    StatePaused,
    StateStopped,
    StateRemoved,
    Dangling,
    EmptyLayer,
    LessonDone,
}

/// The text `key` in `lang`.
pub fn tr(lang: Lang, key: T) -> &'static str {
    let (ko, en) = match key {
        T::Tagline => ("도커 교실", "Docker classroom"),
        T::SwitchTitle => ("언어 바꾸기", "Switch language"),
        T::Lessons => ("레슨", "Lessons"),
        T::LoadingLessons => ("레슨을 불러오는 중…", "Loading lessons…"),
        T::LessonsFailed => (
            "레슨을 불러오지 못했습니다. 다시 시도하는 중…",
            "Could not load the lessons. Retrying…",
        ),
        T::PickLesson => (
            "위 목록에서 레슨을 고르세요.",
            "Pick a lesson from the list above.",
        ),
        T::LessonListButton => ("레슨 목록", "Lessons"),
        T::LessonListTitle => ("다른 레슨 고르기", "Pick another lesson"),
        T::StepsDone => ("단계 완료", "steps done"),
        T::Hint => ("힌트 보기", "Show hint"),
        T::HideHint => ("힌트 숨기기", "Hide hint"),
        T::Copy => ("복사", "Copy"),
        T::Copied => ("복사됨", "Copied"),
        T::TypeIt => ("입력하기", "Type it"),
        T::TypeItTitle => (
            "이 명령을 터미널에 입력합니다",
            "Type this command into the terminal",
        ),
        T::Terminal => ("터미널", "Terminal"),
        T::Detach => ("분리 (ctrl-P ctrl-Q)", "Detach (ctrl-P ctrl-Q)"),
        T::DetachTitle => (
            "ctrl-P ctrl-Q를 보냅니다: 컨테이너는 계속 실행되고 셸로 돌아옵니다",
            "Sends ctrl-P ctrl-Q: the container keeps running and you get your shell back",
        ),
        T::Connecting => ("연결 중…", "Connecting…"),
        T::Connected => ("연결됨", "Connected"),
        T::Reconnecting => (
            "연결이 끊겼습니다. 다시 연결하는 중…",
            "Disconnected. Reconnecting…",
        ),
        T::NoSession => ("세션을 준비하는 중…", "Preparing your session…"),
        T::Containers => ("컨테이너", "Containers"),
        T::NoContainers => (
            "아직 컨테이너가 없습니다. docker run 으로 만들어 보세요.",
            "No containers yet. Make one with docker run.",
        ),
        T::Images => ("이미지와 레이어", "Images and layers"),
        T::NoImages => ("이미지가 없습니다.", "No images."),
        T::StateCreated => ("생성됨", "created"),
        T::StateRunning => ("실행 중", "running"),
        T::StatePaused => ("일시 정지", "paused"),
        T::StateStopped => ("정지됨 (exited)", "stopped (exited)"),
        T::StateRemoved => ("삭제됨", "removed"),
        T::Dangling => ("<태그 없음>", "<none>"),
        T::EmptyLayer => ("빈 레이어 (메타데이터만)", "empty layer (metadata only)"),
        T::LessonDone => ("레슨 완료!", "Lesson complete!"),
    };
    match lang {
        Lang::Ko => ko,
        Lang::En => en,
    }
}
