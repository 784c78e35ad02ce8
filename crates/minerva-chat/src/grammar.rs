//! Grammars that make a model write valid tool calls in its own format.
//!
//! `tool_choice: "required"` and a named function constrain the whole reply: it is one call
//! (or, for `required`, several with `parallel_tool_calls`), each naming an offered function with arguments
//! that match its `parameters` schema. `"auto"` leaves the model free until it writes its
//! format's opener (`<tool_call>`): from there the same grammar holds (a lazy grammar, as
//! llama.cpp's chat handlers build them), so a call once begun always has valid arguments.

use crate::{ToolChoice, ToolError, ToolFormat, ToolRequest};
use minerva_grammar::{gbnf_literal, GrammarBuilder};

/// Most calls one constrained reply may make with `parallel_tool_calls`.
pub const MAX_PARALLEL_CALLS: usize = 8;

/// A tool-call grammar (GBNF, root rule `root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolGrammar {
    pub gbnf: String,
    /// `Some(opener)`: lazy, applied from the first time the model writes `opener` (the
    /// grammar starts with it); `None`: applied from the first token.
    pub trigger: Option<&'static str>,
}

/// The grammar for `request` in `format`, or `None` when the reply is left free (no tools,
/// `tool_choice: none`, or `auto` in a format without an opener, where a call can only be
/// recognised after the fact).
///
/// A tool whose `parameters` schema uses keywords the schema compiler does not support gets
/// free-form object arguments, unless the function is marked `strict`, which makes it an
/// error naming the keyword (`tools[i].function.parameters`).
pub fn tool_grammar(
    format: ToolFormat,
    request: &ToolRequest,
) -> Result<Option<ToolGrammar>, ToolError> {
    if !request.active() {
        return Ok(None);
    }
    let trigger = match (&request.choice, format.opener()) {
        (ToolChoice::Auto, None) => return Ok(None),
        (ToolChoice::Auto, Some(opener)) => Some(opener),
        _ => None,
    };
    let mut b = GrammarBuilder::new();
    b.add_rule("tc-ws", "[ \\t\\n]{0,8}");
    let mut alternatives = Vec::new();
    for (i, tool) in request.tools.iter().enumerate() {
        if let ToolChoice::Named(name) = &request.choice {
            if *name != tool.name {
                continue;
            }
        }
        let args = match b.add_schema(&format!("tool{i}"), &tool.parameters) {
            Ok(rule) => rule,
            Err(e) if tool.strict => {
                return Err(ToolError {
                    message: format!("tools[{i}].function.parameters: {e}"),
                    param: format!("tools[{i}].function.parameters"),
                })
            }
            Err(_) => b.any_object(),
        };
        let rule = format!("tc-call{i}");
        b.add_rule(
            &rule,
            &format!(
                "\"{{\" tc-ws {name_key} tc-ws \":\" tc-ws {name} tc-ws \",\" tc-ws {args_key} tc-ws \":\" tc-ws {args} tc-ws \"}}\"",
                name_key = gbnf_literal("\"name\""),
                name = gbnf_literal(&format!("\"{}\"", tool.name)),
                args_key = gbnf_literal(&format!("\"{}\"", format.arguments_key())),
            ),
        );
        alternatives.push(rule);
    }
    b.add_rule("tc-obj", &alternatives.join(" | "));
    // More calls after the first, with `parallel_tool_calls` (a named function is called once).
    let several = request.parallel && !matches!(request.choice, ToolChoice::Named(_));
    let more = |sep: &str, call: &str| {
        if several {
            format!(" ( tc-ws {sep}{call} ){{0,{}}}", MAX_PARALLEL_CALLS - 1)
        } else {
            String::new()
        }
    };
    let root = match format {
        ToolFormat::Hermes => {
            b.add_rule(
                "tc-one",
                &format!(
                    "{} tc-ws tc-obj tc-ws {}",
                    gbnf_literal("<tool_call>"),
                    gbnf_literal("</tool_call>")
                ),
            );
            format!("tc-one{}", more("", "tc-one"))
        }
        ToolFormat::Mistral => format!(
            "{} \"[\" tc-ws tc-obj{} tc-ws \"]\"",
            gbnf_literal("[TOOL_CALLS]"),
            more("\",\" tc-ws ", "tc-obj")
        ),
        ToolFormat::Llama3 => format!("tc-obj{}", more("\";\" tc-ws ", "tc-obj")),
        ToolFormat::Generic => format!("tc-obj{}", more("", "tc-obj")),
    };
    b.add_rule("root", &root);
    let gbnf = b.build("root").map_err(|e| ToolError {
        message: format!("the tools cannot be turned into a grammar: {e}"),
        param: "tools".into(),
    })?;
    Ok(Some(ToolGrammar { gbnf, trigger }))
}

/// Checks that every `strict` tool's `parameters` schema can be enforced (the error names the
/// tool's field and the keyword), before a request is started.
pub fn check_strict(tools: &[crate::ToolDef]) -> Result<(), ToolError> {
    for (i, tool) in tools.iter().enumerate().filter(|(_, t)| t.strict) {
        let mut b = GrammarBuilder::new();
        let rule = b.add_schema(&format!("tool{i}"), &tool.parameters);
        let checked = rule.map_err(|e| e.to_string()).and_then(|rule| {
            b.add_rule("root", &rule);
            b.build("root").map(|_| ()).map_err(|e| e.to_string())
        });
        if let Err(message) = checked {
            return Err(ToolError {
                message: format!("tools[{i}].function.parameters: {message}"),
                param: format!("tools[{i}].function.parameters"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_tools, ToolDef};
    use serde_json::json;

    fn request(choice: ToolChoice, parallel: bool) -> ToolRequest {
        let tools = parse_tools(Some(&json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"]}}}
        ])))
        .unwrap();
        ToolRequest {
            tools,
            choice,
            parallel,
        }
    }

    #[test]
    fn required_constrains_from_the_start() {
        let g = tool_grammar(ToolFormat::Hermes, &request(ToolChoice::Required, true))
            .unwrap()
            .unwrap();
        assert_eq!(g.trigger, None);
        assert!(g.gbnf.contains("get_weather") && g.gbnf.contains("get_time"));
        minerva_grammar::validate(&g.gbnf, "root").unwrap();
    }

    #[test]
    fn named_offers_only_that_tool() {
        let g = tool_grammar(
            ToolFormat::Generic,
            &request(ToolChoice::Named("get_time".into()), false),
        )
        .unwrap()
        .unwrap();
        assert!(g.gbnf.contains("get_time") && !g.gbnf.contains("get_weather"));
    }

    #[test]
    fn auto_is_lazy_where_the_format_has_an_opener() {
        let g = tool_grammar(ToolFormat::Hermes, &request(ToolChoice::Auto, true))
            .unwrap()
            .unwrap();
        assert_eq!(g.trigger, Some("<tool_call>"));
        assert!(
            tool_grammar(ToolFormat::Generic, &request(ToolChoice::Auto, true))
                .unwrap()
                .is_none()
        );
        assert!(
            tool_grammar(ToolFormat::Hermes, &request(ToolChoice::None, true))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_format_builds_a_valid_grammar() {
        for format in [
            ToolFormat::Hermes,
            ToolFormat::Mistral,
            ToolFormat::Llama3,
            ToolFormat::Generic,
        ] {
            for parallel in [true, false] {
                let g = tool_grammar(format, &request(ToolChoice::Required, parallel))
                    .unwrap()
                    .unwrap();
                minerva_grammar::validate(&g.gbnf, "root").unwrap();
            }
        }
    }

    #[test]
    fn a_function_without_parameters_takes_an_empty_object() {
        let tools = parse_tools(Some(
            &json!([{"type": "function", "function": {"name": "ping"}}]),
        ))
        .unwrap();
        let r = ToolRequest {
            tools,
            choice: ToolChoice::Required,
            parallel: false,
        };
        let g = tool_grammar(ToolFormat::Generic, &r).unwrap().unwrap();
        // The arguments rule admits `{` and `}` with at most whitespace between.
        let args_rule = g
            .gbnf
            .lines()
            .find(|l| l.starts_with("tool0 ::="))
            .unwrap_or_default()
            .to_string();
        assert!(
            args_rule.contains("\"{\"") && !args_rule.contains("json-"),
            "{}",
            g.gbnf
        );
    }

    #[test]
    fn unsupported_parameter_keywords_fall_back_unless_strict() {
        let mut r = request(ToolChoice::Required, false);
        r.tools.push(ToolDef {
            name: "odd".into(),
            parameters: json!({"type": "object", "patternProperties": {"^x": {}}}),
            strict: false,
        });
        assert!(tool_grammar(ToolFormat::Hermes, &r).unwrap().is_some());
        r.tools[2].strict = true;
        let e = tool_grammar(ToolFormat::Hermes, &r).unwrap_err();
        assert_eq!(e.param, "tools[2].function.parameters");
        assert!(e.message.contains("patternProperties"), "{}", e.message);
    }
}
