//! # minerva-openai: the OpenAI API's JSON shapes
//!
//! Request and response types for `/v1/chat/completions`, `/v1/completions`, `/v1/models`
//! and the error body, `/v1/embeddings`, plus llama-server's `/tokenize`,
//! `/detokenize` and `/infill`. Serde only: no
//! HTTP framework, no engine types; the server crate converts between these and the engine.

mod embeddings;
mod request;
#[cfg(test)]
mod request_tests;
mod response;

pub use embeddings::*;
pub use request::*;
pub use response::*;
