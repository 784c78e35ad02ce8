//! The `minerva` command. `main` only parses arguments, installs logging and calls a command.
//!
//! This is the one crate that registers backends: it loads models with `minerva-llama` and
//! hands the engine to `minerva-server`.

mod catalog;
mod create;
mod kept_responses;
mod library;
mod load;
mod mlx;
mod progress;
mod ps;
mod run;
mod serve;
mod with_catalog;
mod worker;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "minerva",
    version,
    about = "Run open-weight LLMs locally and serve them on OpenAI-compatible APIs"
)]
struct Cli {
    /// The models root: the store (blobs/, manifests/) and, in models/, the download cache of
    /// `minerva fetch` [env: MINERVA_MODELS or MINERVA_MODELS_DIR; default: ~/.local/share/minerva].
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    /// Log what Minerva does (info level) on stderr. By default only `serve` does; other
    /// commands show warnings and errors only. `RUST_LOG` overrides both.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a model over HTTP (OpenAI-compatible API).
    Serve(Box<serve::ServeArgs>),
    /// Chat with a model in the terminal; one reply when a prompt is given.
    Run(RunArgs),
    /// Download and verify known models, and add them to the store under their names.
    Fetch(FetchArgs),
    /// Download a model (a GGUF, or a Hugging Face model directory) from the hub or a URL into
    /// the store (resumes).
    Pull(library::PullArgs),
    /// Add a local GGUF file or Hugging Face model directory to the store.
    Import(library::ImportArgs),
    /// Make a model from a Modelfile (FROM, SYSTEM, PARAMETER, TEMPLATE, MESSAGE, LICENSE), as
    /// `ollama create`.
    Create(create::CreateArgs),
    /// Show or change a stored model's settings (the backend it loads with).
    Config(library::ConfigArgs),
    /// List the models in the store.
    #[command(alias = "ls")]
    List,
    /// Show a stored model's facts, template or licence.
    Show(library::ShowArgs),
    /// Remove models from the store (and the files no other name uses).
    Rm(library::RmArgs),
    /// Give a stored model a second name (no data is copied), as `ollama cp`.
    #[command(alias = "copy")]
    Cp(library::CpArgs),
    /// List the models a running server has loaded.
    Ps(ps::PsArgs),
    /// Set up and check the Python with mlx-lm that runs Hugging Face models.
    Mlx(mlx::MlxArgs),
    /// Serve one model for a parent `minerva serve` (internal).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Which model to load, and how.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face model directory (run on MLX), the name of a known model
    /// (fetched on first use) or a model in the store.
    #[arg(long, short = 'm', default_value = catalog::DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How models are loaded.
#[derive(Args, Clone)]
pub struct LoadArgs {
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
    /// The backend for the models named with --model: llama.cpp (GGUF files) or mlx (Hugging
    /// Face directories) [default: by the model's format]. Library models keep their own
    /// choice (minerva config NAME --backend).
    #[arg(long)]
    pub backend: Option<String>,
    /// The multimodal projector (llama.cpp's mmproj GGUF) of a vision model named with
    /// --model, so it reads images; with several --model, it goes with the first.
    #[arg(long)]
    pub mmproj: Option<PathBuf>,
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
    // A server (and its workers) logs its work; a terminal command (`run` is a chat, `list` a
    // table) shows only what went wrong, unless asked.
    let default_filter = match (&cli.command, cli.verbose) {
        (Command::Serve(_) | Command::Worker(_), _) | (_, true) => "info,llama-cpp-2=warn",
        _ => "warn,llama-cpp-2=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let root = library::models_root(cli.models_dir.as_deref())?;
    if matches!(
        cli.command,
        Command::List | Command::Show(_) | Command::Config(_) | Command::Ps(_)
    ) {
        quiet_on_closed_stdout();
    }
    match cli.command {
        Command::Serve(args) => serve::serve(*args, &root),
        Command::Run(args) => run::run(args, &root),
        Command::Fetch(args) => fetch(args, &root),
        Command::Pull(args) => library::pull(args, &root),
        Command::Import(args) => library::import(args, &root),
        Command::Create(args) => create::create(args, &root),
        Command::Config(args) => library::config(args, &root),
        Command::List => library::list(&root),
        Command::Show(args) => library::show(args, &root),
        Command::Rm(args) => library::rm(args, &root),
        Command::Cp(args) => library::cp(args, &root),
        Command::Ps(args) => ps::ps(args),
        Command::Mlx(args) => mlx::run(args),
        Command::Worker(args) => worker::run(args),
    }
}

/// A listing piped into a reader that stops early (`minerva list | head`) ends quietly, as other
/// Unix tools do, instead of panicking in `println!`. Only for commands that print and exit: a
/// server must see EPIPE as an error on the socket, not die of the signal.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE, a valid signal and handler, before
    // the command starts any thread or writes anything.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn fetch(args: FetchArgs, root: &std::path::Path) -> Result<()> {
    let entries: Vec<&catalog::Entry> = if args.names.is_empty() {
        catalog::CATALOG.iter().collect()
    } else {
        args.names
            .iter()
            .map(|n| {
                catalog::find(n).ok_or_else(|| {
                    anyhow::anyhow!("unknown model '{n}'; known: {}", catalog::known_names())
                })
            })
            .collect::<Result<_>>()?
    };
    let store = library::open(root)?;
    for entry in entries {
        let path = catalog::ensure(entry, &catalog::cache_dir(root))?;
        library::import_fetched(&store, entry, &path)?;
        println!("{}\t{}", entry.name, path.display());
    }
    Ok(())
}
