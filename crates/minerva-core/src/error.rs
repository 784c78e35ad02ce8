use thiserror::Error;

/// Errors a backend or the engine can report. The server maps each to a status code.
#[derive(Debug, Error)]
pub enum CoreError {
    /// The request is malformed or out of range; `param` names the offending field.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    /// The prompt (plus anything required after it) does not fit the context window.
    #[error("the prompt has {prompt_tokens} tokens, but the context window is {n_ctx} tokens")]
    ContextOverflow { prompt_tokens: usize, n_ctx: usize },
    /// No model with this id is served.
    #[error("model '{0}' not found")]
    ModelNotFound(String),
    /// The model file could not be loaded.
    #[error("failed to load model: {0}")]
    Load(String),
    /// The backend cannot do what was asked (a missing capability, never a silent fallback).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Chat template rendering failed.
    #[error("chat template error: {0}")]
    Template(String),
    /// Every sequence is busy and the queue is full: retry later.
    #[error("the model is busy: all sequences are running and the queue is full")]
    Busy,
    /// The request waited in the queue longer than the model's queue timeout: retry later.
    #[error("the request waited {waited_secs:.0} s for a free sequence (the queue timeout); the model is overloaded")]
    QueueTimeout { waited_secs: f64 },
    /// The server cannot take the request now (memory held by models in use, ...): retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The backend failed while running (decode error, worker gone, ...).
    #[error("backend error: {0}")]
    Backend(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidRequest`].
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        CoreError::InvalidRequest {
            message: message.into(),
            param,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CoreError>;
