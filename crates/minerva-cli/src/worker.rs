//! The hidden `minerva worker` mode: a child of `minerva serve` that loads one model with the
//! llama.cpp backend and serves it over the socket its parent names (see `minerva-worker`).

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct WorkerArgs {
    /// The Unix socket the parent listens on.
    #[arg(long)]
    pub socket: PathBuf,
}

/// Serves until the parent says stop or goes away. A failure is logged (the parent reports
/// it to its callers) and ends the process with status 1.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let backend = minerva_llama::LlamaCppBackend::new();
    match minerva_worker::serve_worker(&args.socket, &backend) {
        Ok(()) => Ok(()),
        // A load error was logged and sent to the parent already.
        Err(minerva_worker::WorkerError::Model(_)) => std::process::exit(1),
        Err(e) => {
            tracing::error!("worker failed: {e}");
            std::process::exit(1)
        }
    }
}
