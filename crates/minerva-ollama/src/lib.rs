//! # minerva-ollama: the Ollama API's JSON shapes
//!
//! Request and response types for Ollama's `/api/chat`, `/api/generate`, `/api/tags`,
//! `/api/show`, `/api/ps` and `/api/version`, the `options` object typed the way Ollama types
//! it ([`Options::from_map`]), its `{"error": "..."}` body, and its timestamps. Streaming
//! responses are NDJSON: one of these objects per line ([`ndjson_line`]).
//!
//! Serde only: no HTTP framework, no engine types; the server crate converts between these and
//! the engine.

mod modelfile;
mod options;
mod request;
mod response;
mod time;

pub use modelfile::{
    from_kind, parameter_lines, quote as modelfile_quote, read as read_modelfile, FromKind,
    Instruction, ModelfileError, ModelfileRequest, ModelfileText,
};
pub use options::{kind as option_kind, OptionError, OptionKind, Options, ParsedOptions};
pub use request::*;
pub use response::*;
pub use time::{parse_timestamp, timestamp};

/// One NDJSON line: the object as JSON, then `\n`.
pub fn ndjson_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}
