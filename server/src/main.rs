//! `berth`: the lab server (`berth serve`) and the helpers it re-executes itself as
//! (`berth shim DIR`, `berth nsexec`). The helpers must run before any thread starts:
//! they clone and setns, which want a single-threaded process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
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
    /// Supervise one container (started by the engine; not for people).
    #[command(hide = true)]
    Shim { dir: PathBuf },
    /// Run an exec process inside a container (started by the engine).
    #[command(hide = true)]
    Nsexec,
    /// Run a wasm container's module (exec'd by its shim's child; not for people).
    #[command(hide = true)]
    WasmGuest { dir: PathBuf, err_fd: i32 },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shim { dir } => ExitCode::from(berth_engine::shim::main(&dir).clamp(0, 255) as u8),
        Command::Nsexec => ExitCode::from(berth_engine::nsexec_main().clamp(0, 255) as u8),
        Command::WasmGuest { dir, err_fd } => ExitCode::from(berth_engine::runtime::wasm::guest_main(&dir, err_fd).clamp(0, 255) as u8),
        Command::RegistryUser(cmd) => match registry_user(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth: {e:#}");
                ExitCode::FAILURE
            }
        },
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
