//! # minerva-ui: the chat UI in the browser
//!
//! [`attach`] adds the UI to a server's `Router`: the page at `/` (for browsers: requests that
//! accept `text/html`; other clients keep the server's own `/`, where Ollama clients expect
//! `Ollama is running`), its assets under `/ui/`, and the conversation API under
//! `/ui/api/v1/` (see [`routes`]), backed by a SQLite [`Store`], and the facts of the server the
//! models view shows ([`ServerFacts`]: the memory budget, the models it can fetch by name).
//!
//! The front end is built from `ui/` (npm) and embedded at compile time by `build.rs` when
//! `ui/dist` exists; a build without it embeds a page that says how to build the UI.
//!
//! This crate knows nothing of models or engines: the page talks to the server's OpenAI API
//! (`/v1/models`, `/v1/chat/completions`) and Ollama API (`/api/pull`, `/api/delete`,
//! `/api/generate` to load and unload) like any other client.

mod assets;
pub mod responses;
pub mod routes;
pub mod store;

pub use responses::StoredResponse;
pub use routes::{attach, Offer, ServerFacts};
pub use store::{Changes, Content, Conversation, Message, Store, Summary};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("conversation database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} was written by a newer Minerva (schema {version})")]
    NewerSchema { path: PathBuf, version: i64 },
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no such conversation")]
    NotFound,
    #[error("the conversation store lock was poisoned by a panic")]
    Poisoned,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when the UI was built (`ui/dist` existed) when this binary was compiled.
pub fn is_built() -> bool {
    assets::BUILT
}
