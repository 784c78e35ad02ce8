//! The store's errors, and how they map onto the backend contract's.

use minerva_core::CoreError;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A model name, tag, digest or pull source that is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No model of this name is in the store (or no such file on the hub).
    #[error("model '{0}' not found")]
    NotFound(String),
    /// Something the store cannot do yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The file is not a valid GGUF model.
    #[error("invalid GGUF file {path}: {reason}")]
    InvalidGguf { path: PathBuf, reason: String },
    /// A file given as a vision projector that is not one (llama.cpp's `mmproj` GGUF, with a
    /// vision encoder).
    #[error("{path} is not a vision projector (llama.cpp's mmproj GGUF): {reason}")]
    NotAProjector { path: PathBuf, reason: String },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The disk is full; the partial download was removed.
    #[error("no space left on the device while writing {0}")]
    DiskFull(PathBuf),
    /// An HTTP request failed.
    #[error("download failed: {0}")]
    Http(String),
    /// The downloaded bytes are not what the server announced.
    #[error(
        "sha256 mismatch for {what}: expected {expected}, got {actual}; the download was deleted"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// The downloaded size is not what the server announced.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}; the download was deleted")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// The pull was cancelled; the partial download is kept for a resume.
    #[error("the pull was cancelled (the partial download is kept and resumes next time)")]
    Cancelled,
    /// Another pull is writing the same file.
    #[error("another pull is downloading {0} right now")]
    Busy(String),
    /// A model directory that is not a loadable Hugging Face model.
    #[error(transparent)]
    Format(#[from] minerva_core::hf::FormatError),
    /// A manifest that cannot be read.
    #[error("corrupt manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
}

impl StoreError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => CoreError::invalid(m, Some("model")),
            e @ (StoreError::InvalidGguf { .. }
            | StoreError::NotAProjector { .. }
            | StoreError::Format(_)) => CoreError::invalid(e.to_string(), None),
            StoreError::NotFound(name) => CoreError::ModelNotFound(name),
            StoreError::Unsupported(m) => CoreError::Unsupported(m),
            other => CoreError::Backend(other.to_string()),
        }
    }
}
