//! `berth`: the lab server (`berth serve`) and the helpers it re-executes itself as
//! (`berth shim DIR`, `berth nsexec`, `berth cp-extract`). The helpers must run before any thread starts:
//! they clone and setns, which want a single-threaded process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_server::lab::db::DatabaseOptions;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "A self-hostable Docker classroom")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Docker Engine API, the registry and the playground.
    Serve(Box<berth_server::serve::ServeOptions>),
    /// Manage the users of Berth's registry (`berth serve --registry-users FILE`).
    #[command(subcommand)]
    RegistryUser(RegistryUserCommand),
    /// Manage the instructors who run classes on this server.
    #[command(subcommand)]
    Instructor(InstructorCommand),
    /// Make and list classes (works while `berth serve` runs).
    #[command(subcommand)]
    Class(ClassCommand),
    /// Check students' hand-ins (transcripts exported from a class's dashboard).
    #[command(subcommand)]
    Transcript(TranscriptCommand),
    /// A lab node of a cluster (`berth serve --role node`): drain it before removing it.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Supervise one container (started by the engine; not for people). DIR `-`: read
    /// it from stdin (a shim started ahead of its container).
    #[command(hide = true)]
    Shim {
        dir: PathBuf,
        /// With DIR `-`: the engine's state directory, only for `ps` to show whose
        /// shim it is.
        root: Option<PathBuf>,
    },
    /// Run an exec process inside a container (started by the engine).
    #[command(hide = true)]
    Nsexec,
    /// Extract `docker cp`'s tar (stdin) into a container (started by the engine).
    #[command(hide = true)]
    CpExtract,
    /// Run a wasm container's module (exec'd by its shim's child; not for people).
    #[command(hide = true)]
    WasmGuest { dir: PathBuf, err_fd: i32 },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Take no new sessions here (the node's sessions go on); lasts across restarts.
    Drain {
        /// The node's state directory.
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
    },
    /// Take new sessions again.
    Undrain {
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
    },
    /// Whether the node drains, and how many lab sessions it still holds.
    Status {
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
    },
}

fn node(cmd: NodeCommand) -> anyhow::Result<()> {
    let root_of = |root: &std::path::Path| -> anyhow::Result<PathBuf> {
        anyhow::ensure!(root.is_dir(), "{} is not a Berth state directory (berth serve --root DIR makes one)", root.display());
        Ok(root.to_path_buf())
    };
    match cmd {
        NodeCommand::Drain { root } => {
            berth_server::cluster::set_draining(&root_of(&root)?, true).context("mark the node draining")?;
            eprintln!("draining: the hub places no new sessions here (within a few seconds); `berth node status` counts the sessions left");
        }
        NodeCommand::Undrain { root } => {
            berth_server::cluster::set_draining(&root_of(&root)?, false).context("unmark the node")?;
            eprintln!("not draining: new sessions may come here");
        }
        NodeCommand::Status { root } => {
            let root = root_of(&root)?;
            // A session's directory under lab/ lives as long as the session.
            let sessions = std::fs::read_dir(root.join("lab")).map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_dir()).count()).unwrap_or(0);
            println!("draining: {}", if berth_server::cluster::drain_mark(&root).exists() { "yes" } else { "no" });
            println!("sessions: {sessions}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum RegistryUserCommand {
    /// Add a user, or change its password; the password is read from stdin.
    Add {
        /// The htpasswd file (created when missing).
        #[arg(long)]
        file: PathBuf,
        name: String,
    },
}

#[derive(Subcommand)]
enum InstructorCommand {
    /// Add an instructor, or change their password; the password is read from stdin.
    Add {
        /// The state directory of `berth serve`.
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
        #[command(flatten)]
        db: DatabaseOptions,
        name: String,
    },
}

#[derive(Subcommand)]
enum ClassCommand {
    /// Make a class; prints its join code and join URL.
    Create {
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
        #[command(flatten)]
        db: DatabaseOptions,
        #[arg(long)]
        name: String,
        /// Lessons in the class, in order: numbers (1,2,5) or ids; default: all.
        #[arg(long, default_value = "")]
        lessons: String,
        /// When students may start joining (RFC 3339, or YYYY-MM-DDTHH:MM in UTC).
        #[arg(long)]
        opens: Option<String>,
        /// When the class closes.
        #[arg(long)]
        closes: Option<String>,
        /// The playground's address as students reach it, for the join URL.
        #[arg(long, default_value = "http://localhost:8080")]
        url: String,
        /// CPUs for each student's lab (default: the server's --lab-session-cpus).
        #[arg(long)]
        session_cpus: Option<f64>,
        /// Memory for each student's lab, e.g. 512m (default: --lab-session-memory).
        #[arg(long, value_parser = berth_server::lab::parse_size)]
        session_memory: Option<i64>,
        /// Processes for each student's lab (default: --lab-session-pids).
        #[arg(long)]
        session_pids: Option<i64>,
        /// Disk for each student's lab, e.g. 1g (default: --lab-disk).
        #[arg(long, value_parser = berth_server::lab::parse_size)]
        disk: Option<i64>,
        /// Containers each student may hold at once (default: --lab-containers).
        #[arg(long)]
        containers: Option<u32>,
    },
    /// List the classes with their codes.
    List {
        #[arg(long, default_value = "/var/lib/berth")]
        root: PathBuf,
        #[command(flatten)]
        db: DatabaseOptions,
    },
}

#[derive(Subcommand)]
enum TranscriptCommand {
    /// Check a transcript's signature offline; any change to any line fails.
    Verify {
        file: PathBuf,
        /// Also require the key of the server with this state directory.
        #[arg(long, conflicts_with = "key")]
        root: Option<PathBuf>,
        /// Also require this public key (base64, as in the transcript's server-key line).
        #[arg(long)]
        key: Option<String>,
        /// Also require the key of the hub whose database is --database (or
        /// BERTH_DATABASE_URL): a hub keeps its key there.
        #[arg(long, conflicts_with_all = ["root", "key"])]
        hub: bool,
        #[command(flatten)]
        db: DatabaseOptions,
    },
}

fn transcript(cmd: TranscriptCommand) -> anyhow::Result<()> {
    use base64::Engine as _;
    use berth_server::classroom::transcript::{self, ServerKey};
    let TranscriptCommand::Verify { file, root, key, hub, db } = cmd;
    let text = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    let expected = match (root, key) {
        _ if hub => {
            anyhow::ensure!(db.is_set(), "--hub needs the hub's database: --database URL (or BERTH_DATABASE_URL)");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("start the async runtime")?;
            let stored = rt.block_on(async {
                let db = berth_server::lab::Db::connect(&db.url(std::path::Path::new("/nonexistent"))?).await?;
                anyhow::Ok(ServerKey::stored_in_database(&db).await?)
            })?;
            Some(stored.context("this database holds no hub key: no hub signed a transcript with it")?.public())
        }
        (Some(root), _) => {
            // A server with its records in PostgreSQL has no lab.db, but its key if it signed anything.
            anyhow::ensure!(root.join("lab.db").is_file() || root.join(transcript::KEY_FILE).is_file(), "{} is not a Berth state directory", root.display());
            Some(ServerKey::load_or_create(&root)?.public())
        }
        (None, Some(k)) => {
            let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--key: a 32-byte public key in base64")?;
            Some(ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("--key: not an Ed25519 public key")?)
        }
        (None, None) => None,
    };
    let v = transcript::verify(&text, expected.as_ref()).with_context(|| format!("{}", file.display()))?;
    println!("{}: valid", file.display());
    println!("student: {}", v.student);
    println!("class: {}", v.class);
    println!("steps: {}", v.steps.iter().map(|(l, s)| format!("{l}/{s}")).collect::<Vec<_>>().join(", "));
    println!("signed by key {}{}", v.key, if expected.is_some() { " (this server's)" } else { " (pass --root or --key to require the server's)" });
    Ok(())
}

/// The lab database of a state root (or `--database`), for the commands that share it
/// with the server.
async fn lab_db(root: &std::path::Path, db: &DatabaseOptions) -> anyhow::Result<berth_server::lab::Db> {
    // The root's own file only: a database elsewhere needs no state directory here.
    anyhow::ensure!(db.is_set() || root.is_dir(), "{} is not a Berth state directory (berth serve --root DIR makes one)", root.display());
    Ok(berth_server::lab::Db::connect(&db.url(root)?).await?)
}

fn instructor(cmd: InstructorCommand) -> anyhow::Result<()> {
    let InstructorCommand::Add { root, db, name } = cmd;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("start the async runtime")?;
    let added = rt.block_on(async { berth_server::classroom::add_instructor(&lab_db(&root, &db).await?, &name, password).await.map_err(anyhow::Error::from) })?;
    eprintln!("instructor {} {}", name.trim(), if added { "added" } else { "has a new password" });
    Ok(())
}

fn class(cmd: ClassCommand) -> anyhow::Result<()> {
    use berth_server::classroom::{self, NewClass};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("start the async runtime")?;
    rt.block_on(async {
        match cmd {
            ClassCommand::Create { root, db, name, lessons, opens, closes, url, session_cpus, session_memory, session_pids, disk, containers } => {
                let catalog = berth_lessons::all().context("read the lessons")?;
                let new = NewClass {
                    name,
                    lessons: classroom::parse_lessons(&lessons, &catalog)?,
                    opens: opens.as_deref().map(classroom::parse_time).transpose()?,
                    closes: closes.as_deref().map(classroom::parse_time).transpose()?,
                    limits: berth_lessons::api::ClassLimits { session_cpus, session_memory, session_pids, disk, containers },
                };
                let (row, code) = classroom::create_class(&lab_db(&root, &db).await?, new).await?;
                println!("class: {} ({})", row.name, row.id);
                println!("join code: {code}");
                println!("join URL: {}/join/{code}", url.trim_end_matches('/'));
            }
            ClassCommand::List { root, db } => {
                for c in lab_db(&root, &db).await?.classes().await? {
                    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
                    let code: classroom::join_code::JoinCode = c.code.parse()?;
                    println!("{}\t{code}\t{}\t{}\t{}\t{}", c.id, c.name, c.lessons.join(","), when(c.opens), when(c.closes));
                }
            }
        }
        Ok(())
    })
}

fn registry_user(cmd: RegistryUserCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryUserCommand::Add { file, name } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("read the password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            berth_server::registry::auth::add_user(&file, &name, password)?;
            eprintln!("user {name} saved in {}", file.display());
            Ok(())
        }
    }
}

/// The exit of a command that ran to the end or failed with a message.
fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shim { dir, .. } => ExitCode::from(berth_engine::shim::main(&dir).clamp(0, 255) as u8),
        Command::Nsexec => ExitCode::from(berth_engine::nsexec_main().clamp(0, 255) as u8),
        Command::CpExtract => ExitCode::from(berth_engine::cp_extract_main().clamp(0, 255) as u8),
        Command::WasmGuest { dir, err_fd } => ExitCode::from(berth_engine::runtime::wasm::guest_main(&dir, err_fd).clamp(0, 255) as u8),
        Command::RegistryUser(cmd) => report(registry_user(cmd)),
        Command::Instructor(cmd) => report(instructor(cmd)),
        Command::Class(cmd) => report(class(cmd)),
        Command::Transcript(cmd) => report(transcript(cmd)),
        Command::Node(cmd) => report(node(cmd)),
        Command::Serve(opts) => {
            tracing_subscriber::fmt()
                .with_env_filter({
                    // BERTH_LOG=debug is about Berth: the libraries' own chatter stays at warn.
                    let level = std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into());
                    let filter = if level.contains('=') { level } else { format!("{level},sqlx=warn,hyper_util=warn,reqwest=warn,tungstenite=warn") };
                    tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into())
                })
                .with_writer(std::io::stderr)
                .init();
            let run = || -> anyhow::Result<()> {
                let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
                rt.block_on(berth_server::serve::serve(*opts))
            };
            match run() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("berth: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
