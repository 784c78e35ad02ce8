//! The library half of the `minerva` command: backend registration, model resolution, the
//! store and server start-up ([`serve::serve_until`]). The `minerva` binary and the desktop app
//! (`minerva-desktop`) both run the server through it, so there is one copy of that code.
//!
//! This is the one crate that registers backends: it loads models with `minerva-llama` and
//! hands the engine to `minerva-server`.

pub mod catalog;
pub mod create;
mod kept_responses;
pub mod library;
pub mod load;
pub mod mlx;
mod progress;
pub mod ps;
pub mod run;
pub mod serve;
mod with_catalog;
pub mod worker;

use clap::Args;
use std::path::PathBuf;

/// The log filter of a server (and its workers) when `RUST_LOG` is not set: its work at info.
pub const SERVER_LOG_FILTER: &str = "info,llama-cpp-2=warn";

/// Logs to stderr (colours on a terminal) with `RUST_LOG`'s filter, or `default_filter`.
pub fn init_logging(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
    /// Requests decoded together (continuous batching); they share one KV cache of parallel ×
    /// ctx-size cells, and each may use a whole --ctx-size window
    /// [default: 16384 / ctx-size, between 1 and 4].
    #[arg(long, short = 'p')]
    pub parallel: Option<u32>,
    /// KV cache cells the sequences share, at least --ctx-size [default: parallel × ctx-size,
    /// so the running requests always fit]. A smaller pool takes less memory: a prefix several
    /// requests share (a long system prompt) is held once, and a new request waits for room.
    #[arg(long)]
    pub kv_size: Option<u32>,
    /// A KV cache of ctx-size cells for each sequence instead of one pool they share (as
    /// llama-server without --kv-unified): no prefix is shared, but a token never attends over
    /// another request's cells, which pays off for many long, unrelated conversations.
    #[arg(long, conflicts_with = "kv_size")]
    pub no_kv_unified: bool,
    /// Flash attention: auto (the default, as llama-server's: llama.cpp decides, on for the
    /// CPU), on, or off. Off needs a compute buffer that grows with the KV pool, and changes
    /// the arithmetic, so greedy replies may differ from the default's in near-ties.
    #[arg(long, value_enum, default_value_t = FlashAttnArg::Auto)]
    pub flash_attn: FlashAttnArg,
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
    /// The llama.cpp CPU backend variant a GGUF model runs on, as `minerva serve --cpu-variant`
    /// (`haswell` is x86-64-v3) [default: the best this CPU runs].
    #[arg(long, env = "MINERVA_CPU_VARIANT")]
    pub cpu_variant: Option<String>,
}

/// `--flash-attn`'s values (llama-server's `-fa on|off|auto`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashAttnArg {
    Auto,
    On,
    Off,
}

impl From<FlashAttnArg> for minerva_core::FlashAttn {
    fn from(arg: FlashAttnArg) -> Self {
        match arg {
            FlashAttnArg::Off => minerva_core::FlashAttn::Off,
            FlashAttnArg::On => minerva_core::FlashAttn::On,
            FlashAttnArg::Auto => minerva_core::FlashAttn::Auto,
        }
    }
}
