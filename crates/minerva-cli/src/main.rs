//! The `minerva` command. `main` only parses arguments, installs logging and calls a command
//! of the crate's library (`minerva_cli`), which the desktop app shares.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use minerva_cli::{catalog, create, library, mlx, ps, run, serve, worker, RunArgs};
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
        (Command::Serve(_) | Command::Worker(_), _) | (_, true) => minerva_cli::SERVER_LOG_FILTER,
        _ => "warn,llama-cpp-2=error",
    };
    minerva_cli::init_logging(default_filter);
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
