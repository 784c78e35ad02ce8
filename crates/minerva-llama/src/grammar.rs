//! Grammars (llama.cpp's GBNF) for the output formats of [`OutputFormat`].

use minerva_core::OutputFormat;

/// One JSON object (RFC 8259), with whitespace runs bounded so that a model cannot pad forever
/// between tokens. After the closing brace only end-of-generation is allowed.
const JSON_OBJECT: &str = r#"
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

/// The grammar text and its root rule.
pub fn for_format(format: &OutputFormat) -> (&'static str, &'static str) {
    match format {
        OutputFormat::JsonObject => (JSON_OBJECT, "root"),
    }
}
