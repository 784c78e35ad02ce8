//! # minerva-worker: each loaded model in its own process
//!
//! A native crash in a backend (llama.cpp aborting on a hostile file, a failed assert, a
//! segfault) must cost only that model's in-flight requests, not the server. So the server does
//! not load models itself: [`ProcessBackend`] implements [`minerva_core::Backend`] by starting
//! a worker process (the `minerva` binary in its hidden `worker` mode), which loads the model
//! with an in-process backend and serves it whole: its context, batching scheduler, KV and
//! prompt cache. The server side, [`RemoteModel`], implements [`minerva_core::Model`] by
//! forwarding each call, so the engine and the HTTP routes cannot tell the difference.
//!
//! * Transport: a Unix socket the parent binds in a fresh private directory (mode 0700) and
//!   names on the worker's command line; never the worker's stdout, which native code may write
//!   to. Frames are length-prefixed JSON ([`protocol`]), versioned by a hello exchange.
//! * When a worker dies, every generation in flight ends with [`minerva_core::CoreError::Backend`]
//!   saying how it died, later calls fail at once, and [`minerva_core::Model::failure`] says
//!   why; the owner drops the model and loads it again.
//! * Dropping a [`RemoteModel`] asks the worker to exit, kills it if it does not, and reaps it:
//!   the model's memory goes back to the operating system.
//! * The worker exits when the parent goes away (its socket reaches end of file).
//!
//! This crate depends on `minerva-core` only: it knows nothing of llama.cpp or HTTP. The binary
//! passes the in-process backend to [`serve_worker`].

mod process;
pub mod protocol;
mod remote;
mod serve;

pub use process::ProcessBackend;
pub use remote::RemoteModel;
pub use serve::serve_worker;

use minerva_core::CoreError;
use thiserror::Error;

/// Errors of the transport and the worker's own loop.
#[derive(Debug, Error)]
pub enum WorkerError {
    #[error("worker connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding a worker message: {0}")]
    Encode(serde_json::Error),
    #[error("decoding a worker message: {0}")]
    Decode(serde_json::Error),
    #[error("a worker message of {0} bytes is larger than the protocol allows")]
    FrameTooLarge(usize),
    #[error("the worker connection was closed")]
    Closed,
    #[error("the peer speaks worker protocol version {theirs}, this binary version {ours} (a stale binary?)")]
    Version { ours: u32, theirs: u32 },
    #[error("unexpected worker message: {0}")]
    Protocol(String),
    #[error(transparent)]
    Model(#[from] CoreError),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, WorkerError>;
