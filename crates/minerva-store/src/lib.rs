//! Minerva's model store: the models a user has pulled or imported, by name.
//!
//! A store is a directory, laid out like Ollama's:
//!
//! ```text
//! <dir>/blobs/sha256-<64 hex>             model files and vision projectors, named by their sha256
//! <dir>/blobs/sha256-<64 hex>.partial     a download or import in progress (renamed once verified)
//! <dir>/manifests/<sha256 of name>.json   one per model name: the name and every fact about it
//! <dir>/snapshots/<digest>/<file>         a directory model (Hugging Face safetensors): links to
//!                                         its blobs, named as in the model's directory
//! ```
//!
//! No path is ever built from a user-supplied string: names are validated ([`ModelName`]) and
//! manifests are filed under the sha256 of the canonical name, blobs under a verified digest.
//! Every file that enters the store is read by a small GGUF reader ([`gguf`]) first, and every
//! model directory is read as a model (config, tokenizer configs, safetensors headers against
//! their files) before its manifest is written, so a truncated or corrupt model never gets a
//! name.
//!
//! This crate implements [`minerva_core::Library`]; it knows files and HTTP (a blocking client:
//! call it from a blocking thread), and nothing about backends or the server.

mod blobs;
mod dir;
mod download;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gguf;
mod gguf_types;
mod guard;
#[cfg(test)]
mod hostile_tests;
mod http;
mod hub;
mod manifest;
mod name;
mod path_digest;
mod store;

pub use error::{Result, StoreError};

pub use name::{parse_digest, ModelName};

pub use blobs::Upload;
pub use gguf::GgufInfo;
pub use guard::UrlPolicy;
pub use hub::{default_endpoint, Source};
pub use path_digest::PathDigests;
pub use store::{ImportOptions, Store};
