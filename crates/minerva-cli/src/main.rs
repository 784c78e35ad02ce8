//! The `minerva` command. `main` only parses arguments, installs logging and calls a command.
//!
//! This is the one crate that registers backends: it loads models with `minerva-llama` and
//! hands the engine to `minerva-server`.

mod catalog;
mod load;
mod run;
mod worker;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "minerva",
    version,
    about = "Run open-weight LLMs locally and serve them on OpenAI-compatible APIs"
)]
struct Cli {
    /// Where models are stored (default: ~/.local/share/minerva/models).
    #[arg(long, global = true, env = "MINERVA_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a model over HTTP (OpenAI-compatible API).
    Serve(ServeArgs),
    /// Chat with a model in the terminal; one reply when a prompt is given.
    Run(RunArgs),
    /// Download and verify known models into the models directory.
    Fetch(FetchArgs),
    /// Serve one model for a parent `minerva serve` (internal).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Which model to load, and how.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A GGUF file, or the name of a known model (fetched on first use).
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    /// Context window one request may use, in tokens.
    #[arg(long, short = 'c', default_value_t = 4096)]
    pub ctx_size: u32,
    /// Compute threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<u32>,
    /// Requests decoded together (continuous batching); each gets its own --ctx-size window
    /// [default: 16384 / ctx-size, between 1 and 4].
    #[arg(long, short = 'p')]
    pub parallel: Option<u32>,
    /// Requests that may wait for a free sequence; beyond them the server answers 503.
    #[arg(long, default_value_t = 64)]
    pub queue: u32,
    /// Seconds a request may wait for a free sequence before a 503 (0: no limit).
    #[arg(long, default_value_t = 600)]
    pub queue_timeout: u64,
    /// Host memory for the prompt cache, in MiB (0: only what the context's sequences hold).
    #[arg(long, default_value_t = 2048)]
    pub cache_ram: u64,
    /// A Jinja chat template file that replaces the model's own.
    #[arg(long)]
    pub chat_template: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value = "127.0.0.1", env = "MINERVA_HOST")]
    host: String,
    #[arg(long, default_value_t = 11434, env = "MINERVA_PORT")]
    port: u16,
    /// Run the model inside the server process instead of a worker process of its own
    /// (for debugging: a crash in the model then takes the server down).
    #[arg(long)]
    no_worker: bool,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt; without one, an interactive chat starts.
    pub prompt: Option<String>,
    /// Most tokens per reply.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long)]
    pub seed: Option<u32>,
}

#[derive(Args)]
struct FetchArgs {
    /// Model names (default: every known model).
    names: Vec<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,llama-cpp-2=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let models_dir = catalog::models_dir(cli.models_dir.as_deref())?;
    match cli.command {
        Command::Serve(args) => serve(args, &models_dir),
        Command::Run(args) => run::run(args, &models_dir),
        Command::Fetch(args) => fetch(args, &models_dir),
        Command::Worker(args) => worker::run(args),
    }
}

fn serve(args: ServeArgs, models_dir: &std::path::Path) -> Result<()> {
    let placement = if args.no_worker {
        load::Placement::InProcess
    } else {
        load::Placement::Worker
    };
    let model = load::load(&args.model, models_dir, placement)?;
    let engine = minerva_engine::Engine::new([model]);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let addr: SocketAddr = format!("{}:{}", args.host, args.port)
            .parse()
            .or_else(|_| {
                std::net::ToSocketAddrs::to_socket_addrs(&(args.host.as_str(), args.port))
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", args.host))
            })?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tracing::info!("listening on http://{local}");
        eprintln!("Minerva listening on http://{local}");
        minerva_server::serve(listener, engine, shutdown_signal()).await?;
        tracing::info!("server stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn fetch(args: FetchArgs, models_dir: &std::path::Path) -> Result<()> {
    let entries: Vec<&catalog::Entry> = if args.names.is_empty() {
        catalog::CATALOG.iter().collect()
    } else {
        args.names
            .iter()
            .map(|n| {
                catalog::find(n).ok_or_else(|| {
                    let known: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
                    anyhow::anyhow!("unknown model '{n}'; known: {}", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    for entry in entries {
        let path = catalog::ensure(entry, models_dir)?;
        println!("{}\t{}", entry.name, path.display());
    }
    Ok(())
}
