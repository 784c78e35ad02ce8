//! # minerva-openai: the OpenAI API's JSON shapes
//!
//! Request and response types for `/v1/chat/completions`, `/v1/completions`, `/v1/models`
//! and the error body, plus llama-server's `/tokenize` and `/detokenize`. Serde only: no
//! HTTP framework, no engine types; the server crate converts between these and the engine.

mod request;
#[cfg(test)]
mod request_tests;
mod response;

pub use request::*;
pub use response::*;
