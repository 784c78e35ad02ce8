//! Structured output for Minerva: grammars in llama.cpp's GBNF dialect.
//!
//! - [`gbnf`] parses and validates GBNF text (a request's `grammar`, or one built here) before
//!   any backend sees it, within limits, because an invalid grammar can abort llama.cpp.
//! - [`schema`] compiles a JSON Schema (a documented subset, everything else refused with the
//!   keyword and where it is) to GBNF, and [`schema::GrammarBuilder`] assembles grammars from
//!   several schemas and hand-written rules (tool calls).
//!
//! This crate is pure Rust: it must not depend on llama.cpp, a backend or HTTP.

pub mod gbnf;
#[cfg(test)]
mod matcher;
pub mod schema;

mod regex;
mod repeat;

pub use gbnf::{validate, GbnfError};
pub use schema::{gbnf_literal, schema_to_gbnf, GrammarBuilder, GrammarError, SchemaError};

/// One JSON object (RFC 8259), with whitespace runs bounded so that a model cannot pad forever
/// between tokens; after the closing brace only end-of-generation is allowed. Root rule `root`.
/// (Ollama's `format: "json"`, OpenAI's `json_object`.)
pub const JSON_OBJECT: &str = r#"
root    ::= object
value   ::= object | array | string | number | "true" | "false" | "null"
object  ::= "{" ws ( member ( "," ws member )* )? "}" ws
member  ::= string ":" ws value
array   ::= "[" ws ( value ( "," ws value )* )? "]" ws
string  ::= "\"" char* "\"" ws
char    ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
number  ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]{1,3} )? ws
ws      ::= | " " | "\n" [ \t]{0,20}
"#;
