//! Every text of the page, in Korean and English.

use berth_lessons::api::{ClassMessage, ClassState, ErrorKind, MessageKind, Stuck};

use crate::http;
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

    // The student's page, in a class.
    JoinClass,
    JoinCodePlaceholder,
    JoinCodeTitle,
    StudentNameTitle,
    ClassClosedBanner,
    ClassOnlyNotice,

    // The join page.
    JoinTitle,
    LoadingClass,
    ClassUpcoming,
    ClassOpen,
    ClassClosed,
    JoinUpcomingNote,
    JoinClosedNote,
    DisplayName,
    DisplayNameHelp,
    BeenHereBefore,
    Pin,
    PinHelp,
    JoinButton,
    Joining,
    Rejoining,
    JoinAsSomeoneElse,
    YourPinIs,
    PinExplain,
    RejoinLink,
    RejoinLinkExplain,
    GoToLab,
    BackHome,

    // Error answers, by `ErrorKind`.
    ErrUnknownCode,
    ErrNotOpen,
    ErrClosed,
    ErrNameEmpty,
    ErrNameTooLong,
    ErrNameInvalid,
    ErrNameTaken,
    ErrWrongPin,
    ErrBadToken,
    ErrRateLimited,
    ErrClassOnly,
    ErrWrongPassword,
    ErrNotLoggedIn,
    ErrBadClass,
    ErrNotFound,
    ErrLabEnded,
    ErrNotInClass,
    ErrBadMessage,
    ErrResetting,
    ErrReconnecting,
    NewClassLimits,
    NewClassLimitsHelp,
    LimitCpus,
    LimitMemory,
    LimitDisk,
    LimitContainers,
    ErrNetwork,

    // The instructor's pages.
    Instructor,
    TeachLoginTitle,
    TeachName,
    TeachPassword,
    LogIn,
    LogOut,
    YourClasses,
    NoClasses,
    LoadingClasses,
    ColClass,
    ColCode,
    ColState,
    ColOpens,
    ColCloses,
    NoTimeSet,
    NewClass,
    NewClassName,
    NewClassLessons,
    NewClassLessonsHelp,
    NewClassOpens,
    NewClassCloses,
    NewClassTimesHelp,
    Create,
    Creating,
    LoginExpired,
    LoginAgain,

    // The dashboard.
    BackToClasses,
    JoinAt,
    JoinCode,
    ShowLarge,
    CloseLarge,
    Live,
    LiveReconnecting,
    ProgressByStep,
    Students,
    NoStudents,
    FilterPlaceholder,
    StuckOnly,
    ColName,
    ColLesson,
    ColStep,
    ColProgress,
    ColOnStep,
    ColLastActivity,
    ColContainers,
    ColAttempts,
    ColLastAction,
    ColStuck,
    SortStuckTitle,
    Online,
    Offline,
    LabReconnecting,
    LessonFinished,
    NoLessonYet,
    Never,
    Loading,
    ClassNotFound,

    // The student's page: the instructor's hand in the lab.
    RaiseHand,
    RaiseHandTitle,
    HandNotePlaceholder,
    HandRaised,
    LowerHand,
    Messages,
    NoMessages,
    MessageReset,
    MessageEnded,
    ToYou,
    Dismiss,
    LabEndedTitle,
    LabEndedText,
    BackToClass,

    // The dashboard: acting on the class and its students.
    Hands,
    NoHands,
    Answer,
    AnswerTitle,
    Watch,
    WatchTitle,
    TakeOver,
    TakeOverTitle,
    StopTyping,
    MessageStudent,
    Reset,
    ResetTitle,
    End,
    EndTitle,
    Transcript,
    TranscriptTitle,
    ColTools,
    Cancel,
    ModeWatch,
    ModeControl,
    CloseWatch,
    Broadcast,
    BroadcastPlaceholder,
    Send,
    Sending,
    SentMessages,
    NoSentMessages,
    ToClass,
    CloseNow,
    CloseNowTitle,
    ConfirmClose,
    Reopen,
    ReopenTitle,
    OpenNow,
    ExportCsv,
    ExportCsvTitle,
    RecentActions,
    NoActions,
    HandUp,
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

        T::JoinClass => ("수업 참여", "Join a class"),
        T::JoinCodePlaceholder => ("참여 코드", "Class code"),
        T::JoinCodeTitle => (
            "선생님께 받은 참여 코드 (예: ABCD-EFGH)",
            "The join code from your teacher (like ABCD-EFGH)",
        ),
        T::StudentNameTitle => ("수업에서 쓰는 내 이름", "Your name in this class"),
        T::ClassClosedBanner => (
            "이 수업은 끝났습니다. 진행 기록은 그대로 볼 수 있지만, 컨테이너는 더 이상 시작할 수 없습니다.",
            "This class has closed. You can still read your progress, but containers can no longer be started.",
        ),
        T::ClassOnlyNotice => (
            "이 서버는 수업용입니다. 선생님께 받은 참여 코드를 위쪽 칸에 입력하세요.",
            "This server runs classes only. Enter the join code your teacher gave you in the box at the top.",
        ),

        T::JoinTitle => ("수업 참여", "Join a class"),
        T::LoadingClass => ("수업 정보를 불러오는 중…", "Loading the class…"),
        T::ClassUpcoming => ("시작 전", "Not open yet"),
        T::ClassOpen => ("진행 중", "Open"),
        T::ClassClosed => ("종료", "Closed"),
        T::JoinUpcomingNote => (
            "수업이 아직 시작되지 않았습니다. 시작 시간이 되면 참여할 수 있습니다.",
            "The class has not opened yet. You can join once it opens.",
        ),
        T::JoinClosedNote => (
            "수업이 끝났습니다. 이 수업의 학생은 이름과 PIN으로 다시 들어와 진행 기록을 볼 수 있습니다.",
            "This class has closed. Its students can still come back with their name and PIN to read their progress.",
        ),
        T::DisplayName => ("이름", "Your name"),
        T::DisplayNameHelp => (
            "선생님 화면에 보이는 이름입니다.",
            "This is the name your teacher sees.",
        ),
        T::BeenHereBefore => ("전에 참여한 적이 있어요", "I have been here before"),
        T::Pin => ("PIN", "PIN"),
        T::PinHelp => (
            "처음 참여했을 때 받은 6자리 숫자",
            "The 6 digits you were given when you first joined",
        ),
        T::JoinButton => ("참여하기", "Join"),
        T::Joining => ("참여하는 중…", "Joining…"),
        T::Rejoining => ("실습실로 돌아가는 중…", "Taking you back to your lab…"),
        T::JoinAsSomeoneElse => (
            "다른 이름으로 참여하려면 아래에 입력하세요.",
            "To join under another name, fill in the form below.",
        ),
        T::YourPinIs => ("내 PIN", "Your PIN is"),
        T::PinExplain => (
            "적어 두세요. 이름, 수업 코드와 함께 입력하면 언제든 내 실습실로 돌아올 수 있습니다.",
            "Write it down: with your name and the class code it brings your lab back.",
        ),
        T::RejoinLink => ("다시 들어오는 링크", "Your rejoin link"),
        T::RejoinLinkExplain => (
            "이 링크만 있으면 PIN 없이 들어올 수 있으니 다른 사람과 공유하지 마세요.",
            "It opens your lab without a PIN, so keep it to yourself.",
        ),
        T::GoToLab => ("내 실습실로 가기", "Go to my lab"),
        T::BackHome => ("처음 화면으로", "Back to the start page"),

        T::ErrUnknownCode => (
            "이 코드의 수업이 없습니다. 코드를 다시 확인하세요.",
            "There is no class with this code. Check the code and try again.",
        ),
        T::ErrNotOpen => (
            "수업이 아직 시작되지 않았습니다. 시작 시간이 되면 다시 시도하세요.",
            "The class has not opened yet. Try again once it opens.",
        ),
        T::ErrClosed => (
            "수업이 끝나서 새로 참여할 수 없습니다.",
            "The class has closed, so no new students can join.",
        ),
        T::ErrNameEmpty => ("이름을 입력하세요.", "Please enter your name."),
        T::ErrNameTooLong => (
            "이름이 너무 깁니다. 더 짧게 입력하세요.",
            "That name is too long. Please use a shorter one.",
        ),
        T::ErrNameInvalid => (
            "이름에 쓸 수 없는 문자가 들어 있습니다.",
            "The name contains characters that cannot be used.",
        ),
        T::ErrNameTaken => (
            "이 수업에 같은 이름이 이미 있습니다. 본인이라면 ‘전에 참여한 적이 있어요’를 누르고 PIN을 입력하세요. 아니라면 다른 이름을 쓰세요.",
            "Someone in this class already has this name. If that is you, tick “I have been here before” and enter your PIN; otherwise pick another name.",
        ),
        T::ErrWrongPin => (
            "PIN이 맞지 않습니다. 처음 참여할 때 받은 PIN을 입력하세요.",
            "That PIN is not right. Enter the PIN you were given when you first joined.",
        ),
        T::ErrBadToken => (
            "이 링크로는 더 이상 들어올 수 없습니다. 이름과 PIN으로 들어오세요.",
            "This link no longer works. Come back with your name and PIN instead.",
        ),
        T::ErrRateLimited => (
            "시도가 너무 많습니다. 잠시 기다렸다가 다시 해 보세요.",
            "Too many tries. Please wait a moment and try again.",
        ),
        T::ErrClassOnly => (
            "이 서버의 실습실은 수업 참여자만 쓸 수 있습니다. 참여 코드로 수업에 참여하세요.",
            "On this server, labs are for class members only. Join a class with its code.",
        ),
        T::ErrWrongPassword => (
            "이름 또는 비밀번호가 맞지 않습니다.",
            "Wrong name or password.",
        ),
        T::ErrNotLoggedIn => (
            "로그인이 필요합니다.",
            "Please log in.",
        ),
        T::ErrBadClass => (
            "수업을 만들 수 없습니다:",
            "The class could not be created:",
        ),
        T::ErrNotFound => ("찾을 수 없습니다.", "Not found."),
        T::ErrLabEnded => (
            "선생님이 이 실습실을 끝냈습니다. 수업 참여 페이지로 다시 들어오면 진행 기록은 그대로인 새 실습실이 생깁니다.",
            "Your teacher ended this lab. Come back through the class's join page for a new one; your progress is kept.",
        ),
        T::ErrNotInClass => (
            "수업에 참여한 학생만 할 수 있습니다.",
            "Only students in a class can do this.",
        ),
        T::ErrBadMessage => (
            "메시지가 비어 있거나 너무 깁니다.",
            "The message is empty or too long.",
        ),
        T::NewClassLimits => ("학생별 실습 환경 한도", "Limits for each student's lab"),
        T::NewClassLimitsHelp => (
            "비워 두면 서버의 기본값을 씁니다.",
            "Leave a field empty to use the server's default.",
        ),
        T::LimitCpus => ("CPU 수", "CPUs"),
        T::LimitMemory => ("메모리 (MiB)", "Memory (MiB)"),
        T::LimitDisk => ("디스크 (MiB)", "Disk (MiB)"),
        T::LimitContainers => ("컨테이너 수", "Containers"),
        T::ErrResetting => (
            "강사가 실습 환경을 초기화하는 중입니다. 몇 초 뒤에 다시 연결됩니다.",
            "Your instructor is resetting this lab. It will be back in a few seconds.",
        ),
        T::ErrReconnecting => (
            "실습 환경이 있는 서버가 다시 시작하는 중입니다. 작업한 내용은 그대로이며 곧 다시 연결됩니다.",
            "The server your lab runs on is restarting. Your work is kept, and it reconnects shortly.",
        ),
        T::ErrNetwork => (
            "서버에 연결할 수 없습니다. 잠시 후 다시 해 보세요.",
            "Could not reach the server. Please try again shortly.",
        ),

        T::Instructor => ("강사", "Instructor"),
        T::TeachLoginTitle => ("강사 로그인", "Instructor login"),
        T::TeachName => ("이름", "Name"),
        T::TeachPassword => ("비밀번호", "Password"),
        T::LogIn => ("로그인", "Log in"),
        T::LogOut => ("로그아웃", "Log out"),
        T::YourClasses => ("내 수업", "Your classes"),
        T::NoClasses => (
            "아직 수업이 없습니다. 아래에서 새 수업을 만드세요.",
            "No classes yet. Create one below.",
        ),
        T::LoadingClasses => ("수업 목록을 불러오는 중…", "Loading your classes…"),
        T::ColClass => ("수업", "Class"),
        T::ColCode => ("참여 코드", "Join code"),
        T::ColState => ("상태", "State"),
        T::ColOpens => ("시작", "Opens"),
        T::ColCloses => ("종료", "Closes"),
        T::NoTimeSet => ("—", "—"),
        T::NewClass => ("새 수업", "New class"),
        T::NewClassName => ("수업 이름", "Class name"),
        T::NewClassLessons => ("레슨", "Lessons"),
        T::NewClassLessonsHelp => (
            "하나도 고르지 않으면 모든 레슨이 들어갑니다.",
            "Tick none to include every lesson.",
        ),
        T::NewClassOpens => ("시작 (선택)", "Opens (optional)"),
        T::NewClassCloses => ("종료 (선택)", "Closes (optional)"),
        T::NewClassTimesHelp => (
            "이 컴퓨터의 시간대 기준입니다. 비워 두면 바로 시작하고 끝나지 않습니다.",
            "In this computer's time zone. Leave empty to open now and never close.",
        ),
        T::Create => ("만들기", "Create"),
        T::Creating => ("만드는 중…", "Creating…"),
        T::LoginExpired => (
            "로그인이 만료되었습니다.",
            "Your login has expired.",
        ),
        T::LoginAgain => ("다시 로그인", "Log in again"),

        T::BackToClasses => ("← 내 수업", "← Your classes"),
        T::JoinAt => ("접속 주소", "Go to"),
        T::JoinCode => ("참여 코드", "Join code"),
        T::ShowLarge => ("크게 보기", "Show large"),
        T::CloseLarge => ("닫기", "Close"),
        T::Live => ("실시간", "Live"),
        T::LiveReconnecting => ("다시 연결하는 중…", "Reconnecting…"),
        T::ProgressByStep => ("단계별 진행", "Progress by step"),
        T::Students => ("학생", "Students"),
        T::NoStudents => (
            "아직 참여한 학생이 없습니다.",
            "No students have joined yet.",
        ),
        T::FilterPlaceholder => ("이름으로 찾기", "Filter by name"),
        T::StuckOnly => ("막힌 학생만", "Stuck only"),
        T::ColName => ("이름", "Name"),
        T::ColLesson => ("레슨", "Lesson"),
        T::ColStep => ("현재 단계", "Current step"),
        T::ColProgress => ("진행", "Progress"),
        T::ColOnStep => ("단계 시간", "On step"),
        T::ColLastActivity => ("마지막 활동", "Last activity"),
        T::ColContainers => ("컨테이너", "Containers"),
        T::ColAttempts => ("시도", "Tries"),
        T::ColLastAction => ("마지막 동작", "Last action"),
        T::ColStuck => ("막힘", "Stuck"),
        T::SortStuckTitle => ("막힌 학생을 먼저", "Stuck students first"),
        T::Online => ("접속 중", "online"),
        T::Offline => ("접속 안 함", "offline"),
        T::LabReconnecting => ("실습 환경 다시 연결 중", "lab reconnecting"),
        T::LessonFinished => ("레슨 완료", "lesson done"),
        T::NoLessonYet => ("레슨 고르기 전", "no lesson picked"),
        T::Never => ("없음", "none yet"),
        T::Loading => ("불러오는 중…", "Loading…"),
        T::ClassNotFound => (
            "이 수업을 찾을 수 없습니다.",
            "There is no such class.",
        ),

        T::RaiseHand => ("손 들기", "Raise hand"),
        T::RaiseHandTitle => (
            "선생님 화면의 대기열에 내 이름이 올라갑니다",
            "Puts you in your instructor's queue",
        ),
        T::HandNotePlaceholder => (
            "무엇이 막혔나요? (선택)",
            "What are you stuck on? (optional)",
        ),
        T::HandRaised => (
            "손을 들었습니다. 선생님이 곧 도와줄 거예요.",
            "Hand raised: your instructor will be with you.",
        ),
        T::LowerHand => ("내리기", "Lower"),
        T::Messages => ("선생님 메시지", "From your instructor"),
        T::NoMessages => ("아직 메시지가 없습니다.", "No messages yet."),
        T::MessageReset => (
            "선생님이 내 실습실을 초기화했습니다. 컨테이너, 이미지, 볼륨과 파일이 모두 지워졌고, 진행 기록은 그대로입니다.",
            "Your instructor reset your lab: containers, images, volumes and files are gone; your progress is kept.",
        ),
        T::MessageEnded => (
            "선생님이 내 실습실을 끝냈습니다. 다시 들어와서 새 실습실을 받았고, 진행 기록은 그대로입니다.",
            "Your instructor ended your lab; coming back gave you a new one. Your progress is kept.",
        ),
        T::ToYou => ("나에게만", "to you"),
        T::Dismiss => ("확인", "Dismiss"),
        T::LabEndedTitle => (
            "선생님이 이 실습실을 끝냈습니다",
            "Your instructor ended this lab",
        ),
        T::LabEndedText => (
            "진행 기록은 그대로입니다. 수업 참여 페이지로 돌아가 다시 들어오면 새 실습실을 받습니다.",
            "Your progress is kept. Go back to the class's page and come back in for a new lab.",
        ),
        T::BackToClass => ("수업으로 돌아가기", "Back to the class"),

        T::Hands => ("손 든 학생", "Raised hands"),
        T::NoHands => ("손 든 학생이 없습니다.", "No hands up."),
        T::Answer => ("응답", "Answer"),
        T::AnswerTitle => (
            "도와줬으면 눌러서 손을 내려 주세요",
            "Lowers the hand once you have helped",
        ),
        T::Watch => ("보기", "Watch"),
        T::WatchTitle => (
            "학생의 터미널을 봅니다 (읽기 전용)",
            "See the student's terminal (read only)",
        ),
        T::TakeOver => ("대신 입력", "Take over"),
        T::TakeOverTitle => (
            "학생의 터미널에 직접 입력합니다. 학생 화면에 표시됩니다",
            "Type in the student's terminal; the student is told",
        ),
        T::StopTyping => ("입력 그만", "Stop typing"),
        T::MessageStudent => ("메시지", "Message"),
        T::Reset => ("초기화", "Reset"),
        T::ResetTitle => (
            "실습실을 비웁니다: 컨테이너, 이미지, 볼륨, 파일. 진행 기록은 남습니다",
            "Empties the lab: containers, images, volumes, files. Progress is kept",
        ),
        T::End => ("끝내기", "End"),
        T::EndTitle => (
            "실습실을 지웁니다. 학생이 다시 들어오면 새 실습실을 받습니다",
            "Removes the lab; the student gets a new one when they come back",
        ),
        T::Transcript => ("기록", "Transcript"),
        T::TranscriptTitle => (
            "서명된 진행 기록을 내려받습니다 (berth transcript verify 로 확인)",
            "Download the signed record of the steps done (check it with berth transcript verify)",
        ),
        T::ColTools => ("관리", "Actions"),
        T::Cancel => ("취소", "Cancel"),
        T::ModeWatch => ("보는 중 (읽기 전용)", "Watching (read only)"),
        T::ModeControl => (
            "입력하는 중: 학생 화면에 표시됩니다",
            "Typing: the student sees that you are",
        ),
        T::CloseWatch => ("닫기", "Close"),
        T::Broadcast => ("수업 전체에 메시지", "Message the class"),
        T::BroadcastPlaceholder => (
            "모든 학생의 화면에 뜹니다",
            "It pops up on every student's screen",
        ),
        T::Send => ("보내기", "Send"),
        T::Sending => ("보내는 중…", "Sending…"),
        T::SentMessages => ("보낸 메시지", "Messages sent"),
        T::NoSentMessages => ("아직 보낸 메시지가 없습니다.", "No messages yet."),
        T::ToClass => ("전체", "everyone"),
        T::CloseNow => ("지금 닫기", "Close now"),
        T::CloseNowTitle => (
            "수업을 닫습니다: 학생들의 컨테이너가 멈추고 새 학생은 참여할 수 없습니다",
            "Closes the class: students' containers stop and nobody new can join",
        ),
        T::ConfirmClose => (
            "수업을 지금 닫을까요? 모든 학생의 컨테이너가 멈추고, 새 학생은 참여할 수 없습니다. 나중에 다시 열 수 있습니다.",
            "Close the class now? Every student's containers stop and nobody new can join. You can reopen it later.",
        ),
        T::Reopen => ("다시 열기", "Reopen"),
        T::ReopenTitle => (
            "시간 제한 없이 수업을 다시 엽니다",
            "Opens the class again, with no time limits",
        ),
        T::OpenNow => ("지금 열기", "Open now"),
        T::ExportCsv => ("CSV 내보내기", "Export CSV"),
        T::ExportCsvTitle => (
            "학생별로 완료한 단계와 시각 (student,lesson,step,done_at,attempts)",
            "Every step done, by student (student,lesson,step,done_at,attempts)",
        ),
        T::RecentActions => ("최근 조치", "Recent actions"),
        T::NoActions => ("아직 없습니다.", "None yet."),
        T::HandUp => ("손 듦", "hand up"),
    };
    match lang {
        Lang::Ko => ko,
        Lang::En => en,
    }
}

fn pick(lang: Lang, ko: String, en: String) -> String {
    match lang {
        Lang::Ko => ko,
        Lang::En => en,
    }
}

/// A class's state, as its badge says it.
pub fn class_state(lang: Lang, state: ClassState) -> &'static str {
    tr(
        lang,
        match state {
            ClassState::Upcoming => T::ClassUpcoming,
            ClassState::Open => T::ClassOpen,
            ClassState::Closed => T::ClassClosed,
        },
    )
}

/// `ClassState` as it is on the wire, for `data-state` attributes and CSS classes.
pub fn class_state_code(state: ClassState) -> &'static str {
    match state {
        ClassState::Upcoming => "upcoming",
        ClassState::Open => "open",
        ClassState::Closed => "closed",
    }
}

/// The page's own text for an error answer: by its kind, else the server's message.
pub fn error_text(lang: Lang, e: &http::Error) -> String {
    let key = match e.kind() {
        Some(ErrorKind::UnknownCode) => T::ErrUnknownCode,
        Some(ErrorKind::NotOpen) => T::ErrNotOpen,
        Some(ErrorKind::Closed) => T::ErrClosed,
        Some(ErrorKind::NameEmpty) => T::ErrNameEmpty,
        Some(ErrorKind::NameTooLong) => T::ErrNameTooLong,
        Some(ErrorKind::NameInvalid) => T::ErrNameInvalid,
        Some(ErrorKind::NameTaken) => T::ErrNameTaken,
        Some(ErrorKind::WrongPin) => T::ErrWrongPin,
        Some(ErrorKind::BadToken) => T::ErrBadToken,
        Some(ErrorKind::RateLimited) => {
            return match e.retry_after {
                Some(secs) => pick(
                    lang,
                    format!(
                        "시도가 너무 많습니다. {} 뒤에 다시 해 보세요.",
                        duration(lang, u64::from(secs))
                    ),
                    format!(
                        "Too many tries. Please try again in {}.",
                        duration(lang, u64::from(secs))
                    ),
                ),
                None => tr(lang, T::ErrRateLimited).to_string(),
            }
        }
        Some(ErrorKind::ClassOnly) => T::ErrClassOnly,
        Some(ErrorKind::WrongPassword) => T::ErrWrongPassword,
        Some(ErrorKind::NotLoggedIn) => T::ErrNotLoggedIn,
        // The server says what is wrong with the class; its words follow ours.
        Some(ErrorKind::BadClass) => {
            return format!("{} {}", tr(lang, T::ErrBadClass), e.message());
        }
        Some(ErrorKind::NotFound) => T::ErrNotFound,
        Some(ErrorKind::LabEnded) => T::ErrLabEnded,
        Some(ErrorKind::NotInClass) => T::ErrNotInClass,
        Some(ErrorKind::BadMessage) => T::ErrBadMessage,
        Some(ErrorKind::Resetting) => T::ErrResetting,
        Some(ErrorKind::Reconnecting) => T::ErrReconnecting,
        None if e.status == 0 => T::ErrNetwork,
        None if e.status == 429 => T::ErrRateLimited,
        None => return e.message(),
    };
    tr(lang, key).to_string()
}

/// A span of time, rounded down to its largest units: "12 s", "3 min", "1 h 5 min".
pub fn duration(lang: Lang, secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match lang {
        Lang::Ko if h > 0 && m > 0 => format!("{h}시간 {m}분"),
        Lang::Ko if h > 0 => format!("{h}시간"),
        Lang::Ko if secs >= 60 => format!("{m}분"),
        Lang::Ko => format!("{s}초"),
        Lang::En if h > 0 && m > 0 => format!("{h} h {m} min"),
        Lang::En if h > 0 => format!("{h} h"),
        Lang::En if secs >= 60 => format!("{m} min"),
        Lang::En => format!("{s} s"),
    }
}

/// "12 s ago".
pub fn ago(lang: Lang, secs: u64) -> String {
    pick(
        lang,
        format!("{} 전", duration(lang, secs)),
        format!("{} ago", duration(lang, secs)),
    )
}

/// Why a student is flagged as stuck.
pub fn stuck_text(lang: Lang, stuck: &Stuck) -> String {
    match stuck {
        Stuck::NoProgress { minutes } => pick(
            lang,
            format!("{minutes}분째 완료한 단계 없음"),
            format!("no step done for {minutes} min"),
        ),
        Stuck::Failing { attempts } => pick(
            lang,
            format!("{attempts}번 시도했지만 통과하지 못함"),
            format!("{attempts} tries without passing"),
        ),
    }
}

/// "Opens May 1, 2024, 9:00 AM".
pub fn opens_at(lang: Lang, when: &str) -> String {
    pick(lang, format!("{when} 시작"), format!("Opens {when}"))
}

pub fn closes_at(lang: Lang, when: &str) -> String {
    pick(lang, format!("{when} 종료"), format!("Closes {when}"))
}

/// The upcoming class's banner on the student's page.
pub fn class_upcoming_banner(lang: Lang, when: Option<&str>) -> String {
    match when {
        Some(w) => pick(
            lang,
            format!("이 수업은 {w}에 시작합니다. 그때부터 컨테이너를 시작할 수 있습니다."),
            format!("This class opens {w}. Containers can be started from then on."),
        ),
        None => tr(lang, T::JoinUpcomingNote).to_string(),
    }
}

/// The button that rejoins with the token this browser kept.
pub fn resume_as(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("{name}(으)로 계속하기"),
        format!("Continue as {name}"),
    )
}

/// The heading of the screen after a first join.
pub fn joined_as(lang: Lang, class: &str, name: &str) -> String {
    pick(
        lang,
        format!("‘{class}’에 {name}(으)로 참여했습니다"),
        format!("You joined “{class}” as {name}"),
    )
}

/// "3 of 12": students who finished a step.
pub fn finished_of(lang: Lang, finished: u32, students: usize) -> String {
    pick(
        lang,
        format!("{students}명 중 {finished}명"),
        format!("{finished} of {students}"),
    )
}

pub fn student_count(lang: Lang, n: usize) -> String {
    match (lang, n) {
        (Lang::Ko, n) => format!("{n}명"),
        (Lang::En, 1) => "1 student".to_string(),
        (Lang::En, n) => format!("{n} students"),
    }
}

pub fn logged_in_as(lang: Lang, name: &str) -> String {
    pick(lang, format!("{name} 님"), name.to_string())
}

/// The notice above a student's terminal while an instructor types in it.
pub fn instructor_typing(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("선생님({name})이 내 터미널에 입력하고 있습니다"),
        format!("Your instructor ({name}) is typing in your terminal"),
    )
}

/// What a message says on the student's page: the instructor's words, or the page's
/// own for what the instructor did to the lab.
pub fn message_text(lang: Lang, m: &ClassMessage) -> String {
    match m.kind {
        MessageKind::Text => m.text.clone(),
        MessageKind::Reset => tr(lang, T::MessageReset).to_string(),
        MessageKind::Ended => tr(lang, T::MessageEnded).to_string(),
    }
}

/// `MessageKind` as it is on the wire, for `data-kind` attributes.
pub fn message_kind_code(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Text => "text",
        MessageKind::Reset => "reset",
        MessageKind::Ended => "ended",
    }
}

/// "and 2 more" under the banner's message.
pub fn more_messages(lang: Lang, n: usize) -> String {
    pick(
        lang,
        format!("새 메시지 {n}개 더"),
        match n {
            1 => "1 more new message".to_string(),
            n => format!("{n} more new messages"),
        },
    )
}

/// The watch panel's title.
pub fn watching_who(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("{name}의 터미널"),
        format!("{name}'s terminal"),
    )
}

/// The per-student message dialog's title.
pub fn message_to(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("{name}에게 메시지"),
        format!("Message to {name}"),
    )
}

pub fn confirm_reset(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("{name}의 실습실을 초기화할까요? 컨테이너, 이미지, 볼륨과 파일이 모두 지워집니다. 진행 기록은 남습니다."),
        format!("Reset {name}'s lab? Their containers, images, volumes and files are removed; their progress is kept."),
    )
}

pub fn confirm_end(lang: Lang, name: &str) -> String {
    pick(
        lang,
        format!("{name}의 실습실을 끝낼까요? 실습실이 지워지고, 학생이 수업에 다시 들어오면 새 실습실을 받습니다. 진행 기록은 남습니다."),
        format!("End {name}'s lab? It is removed; they get a new one when they come back to the class. Their progress is kept."),
    )
}

/// A watcher's badge on a student's row.
pub fn watcher_badge(lang: Lang, instructor: &str, control: bool) -> String {
    match (lang, control) {
        (Lang::Ko, false) => format!("{instructor} 보는 중"),
        (Lang::Ko, true) => format!("⌨ {instructor} 입력 중"),
        (Lang::En, false) => format!("{instructor} watching"),
        (Lang::En, true) => format!("⌨ {instructor} typing"),
    }
}

/// A recorded instructor action, as the dashboard's list says it (`action` as on the
/// wire; an unknown one is shown as it is).
pub fn action_text(lang: Lang, instructor: &str, action: &str, student: Option<&str>) -> String {
    let s = student.unwrap_or("");
    let ko = match action {
        "watch" => format!("{instructor}: {s}의 터미널을 봄"),
        "take_over" => format!("{instructor}: {s}의 터미널에 입력"),
        "reset" => format!("{instructor}: {s}의 실습실 초기화"),
        "end" => format!("{instructor}: {s}의 실습실 끝냄"),
        "message" if student.is_some() => format!("{instructor}: {s}에게 메시지"),
        "message" => format!("{instructor}: 전체 메시지"),
        "answer_hand" => format!("{instructor}: {s}의 손에 응답"),
        "window" => format!("{instructor}: 수업 시간 변경"),
        "export_csv" => format!("{instructor}: CSV 내보내기"),
        "transcript" => format!("{instructor}: {s}의 기록 내려받기"),
        other => format!("{instructor}: {other} {s}"),
    };
    let en = match action {
        "watch" => format!("{instructor} watched {s}'s terminal"),
        "take_over" => format!("{instructor} typed in {s}'s terminal"),
        "reset" => format!("{instructor} reset {s}'s lab"),
        "end" => format!("{instructor} ended {s}'s lab"),
        "message" if student.is_some() => format!("{instructor} messaged {s}"),
        "message" => format!("{instructor} messaged the class"),
        "answer_hand" => format!("{instructor} answered {s}'s hand"),
        "window" => format!("{instructor} changed the class's times"),
        "export_csv" => format!("{instructor} exported the CSV"),
        "transcript" => format!("{instructor} downloaded {s}'s transcript"),
        other => format!("{instructor}: {other} {s}"),
    };
    pick(lang, ko.trim_end().to_string(), en.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(Lang::En, 0), "0 s");
        assert_eq!(duration(Lang::En, 59), "59 s");
        assert_eq!(duration(Lang::En, 60), "1 min");
        assert_eq!(duration(Lang::En, 3599), "59 min");
        assert_eq!(duration(Lang::En, 3600), "1 h");
        assert_eq!(duration(Lang::En, 3900), "1 h 5 min");
        assert_eq!(duration(Lang::Ko, 12), "12초");
        assert_eq!(duration(Lang::Ko, 3900), "1시간 5분");
        assert_eq!(ago(Lang::En, 12), "12 s ago");
        assert_eq!(ago(Lang::Ko, 180), "3분 전");
    }

    #[test]
    fn actions_and_notices() {
        assert_eq!(
            action_text(Lang::En, "kim", "message", None),
            "kim messaged the class"
        );
        assert_eq!(
            action_text(Lang::En, "kim", "message", Some("Ann")),
            "kim messaged Ann"
        );
        assert_eq!(
            action_text(Lang::Ko, "kim", "reset", Some("Ann")),
            "kim: Ann의 실습실 초기화"
        );
        // An action this page does not know yet is still shown.
        assert_eq!(action_text(Lang::En, "kim", "limits", None), "kim: limits");
        assert_eq!(
            instructor_typing(Lang::En, "kim"),
            "Your instructor (kim) is typing in your terminal"
        );
    }

    #[test]
    fn error_texts() {
        let e = |kind, status| http::Error {
            status,
            api: Some(berth_lessons::api::ApiError {
                message: "server words".into(),
                kind,
            }),
            retry_after: None,
            detail: String::new(),
        };
        assert_eq!(
            error_text(Lang::En, &e(Some(ErrorKind::WrongPin), 403)),
            tr(Lang::En, T::ErrWrongPin)
        );
        assert_eq!(error_text(Lang::En, &e(None, 500)), "server words");
        assert_eq!(
            error_text(Lang::En, &e(Some(ErrorKind::BadClass), 400)),
            "The class could not be created: server words"
        );
        let mut limited = e(Some(ErrorKind::RateLimited), 429);
        limited.retry_after = Some(30);
        assert_eq!(
            error_text(Lang::En, &limited),
            "Too many tries. Please try again in 30 s."
        );
        assert_eq!(http::kind_code(Some(ErrorKind::NameTaken)), "name_taken");
        assert_eq!(http::kind_code(None), "other");
    }
}
