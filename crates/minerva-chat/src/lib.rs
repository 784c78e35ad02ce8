//! # minerva-chat: what a chat reply means
//!
//! A model answers a chat with text. Whether part of that text is a call to one of the tools
//! the client offered depends on the model family: Qwen and Hermes models wrap each call in
//! `<tool_call>…</tool_call>`, Llama 3.x writes `<|python_tag|>` or a bare JSON object,
//! Mistral writes `[TOOL_CALLS]` and a JSON array, and small models often write just the bare
//! `{"name": …, "arguments": …}` object. This crate
//!
//! * picks the format from the chat template ([`ToolFormat::detect`]), as llama.cpp's chat
//!   parser does (`common/chat.cpp`), and
//! * parses the reply incrementally ([`ReplyParser`]): text goes in as it is generated, and out
//!   come content, the start of each call (its name), and its arguments in pieces as they are
//!   generated, so a streamed call is never shown as content and never arrives in one lump.
//!
//! The same parser serves every API dialect and every backend: it works on text only.
//! It must not depend on HTTP, wire formats or any backend.

mod format;
mod grammar;
mod parser;
mod reasoning;
mod scan;
mod tools;

pub use format::ToolFormat;
pub use grammar::{check_strict, tool_grammar, ToolGrammar, MAX_PARALLEL_CALLS};
pub use parser::{ReplyEvent, ReplyParser};
pub use reasoning::{prompt_opens_block, template_thinks, ChatParser};
pub use tools::{parse_tool_choice, parse_tools, ToolChoice, ToolDef, ToolError, ToolRequest};
