//! The tools a request offers and how the model may use them, checked once for every dialect.
//!
//! The shape is OpenAI's (`{"type": "function", "function": {"name", "description",
//! "parameters"}}`), which Ollama's `tools` field shares.

use serde_json::Value;

/// A bad `tools` or `tool_choice` value: what is wrong, and the request field it is in
/// (e.g. `tools[1].function.name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    pub message: String,
    pub param: String,
}

fn err(param: impl Into<String>, message: impl Into<String>) -> ToolError {
    ToolError {
        message: message.into(),
        param: param.into(),
    }
}

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// `function.name`: 1 to 64 characters of `a-z A-Z 0-9 _ - .` (OpenAI allows `a-zA-Z0-9_-`;
    /// dots are accepted because MCP tool names use them).
    pub name: String,
    /// `function.parameters`: a JSON Schema object (when absent or `null`, a function without
    /// parameters: `{"type": "object", "properties": {}, "additionalProperties": false}`, as
    /// OpenAI reads it).
    pub parameters: Value,
    /// `function.strict`: the arguments must follow `parameters` exactly (a schema Minerva
    /// cannot enforce is then an error instead of free-form arguments).
    pub strict: bool,
}

/// `tool_choice`: whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides (the default when tools are given).
    #[default]
    Auto,
    /// No call: the reply is a message (the tools are not shown to the model).
    None,
    /// At least one call, to any of the tools.
    Required,
    /// A call to this tool.
    Named(String),
}

/// The tools of one request and how they may be used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolRequest {
    pub tools: Vec<ToolDef>,
    pub choice: ToolChoice,
    /// `parallel_tool_calls`: more than one call in a turn (default true).
    pub parallel: bool,
}

impl ToolRequest {
    /// True when the reply is to be parsed for calls: there are tools and the choice allows them.
    pub fn active(&self) -> bool {
        !self.tools.is_empty() && self.choice != ToolChoice::None
    }

    /// A request's `tools`, `tool_choice` and `parallel_tool_calls` (absent: true), checked
    /// together: [`parse_tools`], `strict` schemas ([`crate::check_strict`]), then
    /// [`parse_tool_choice`]. Every dialect builds its tool request here.
    pub fn parse(
        tools: Option<&Value>,
        choice: Option<&Value>,
        parallel: Option<bool>,
    ) -> Result<ToolRequest, ToolError> {
        let tools = parse_tools(tools)?;
        crate::check_strict(&tools)?;
        let choice = parse_tool_choice(choice, &tools)?;
        Ok(ToolRequest {
            tools,
            choice,
            parallel: parallel.unwrap_or(true),
        })
    }

    /// The names of the tools, in order.
    pub fn names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.name.clone()).collect()
    }
}

const MAX_TOOLS: usize = 128;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks a `tools` array (absent or `null`: no tools) and returns its functions.
///
/// Errors: not an array, more than 128 tools, an entry that is not `{"type": "function",
/// "function": {...}}`, a missing or invalid name, two tools with one name, `parameters` that
/// is not an object.
pub fn parse_tools(tools: Option<&Value>) -> Result<Vec<ToolDef>, ToolError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(err("tools", "'tools' must be an array")),
    };
    if list.len() > MAX_TOOLS {
        return Err(err(
            "tools",
            format!("at most {MAX_TOOLS} tools are allowed, got {}", list.len()),
        ));
    }
    let mut out: Vec<ToolDef> = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let obj = tool
            .as_object()
            .ok_or_else(|| err(&at, format!("{at} must be an object")))?;
        match obj.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if t == "function" => {}
            Some(other) => {
                return Err(err(
                    format!("{at}.type"),
                    format!("{at}.type must be 'function', got {other}"),
                ))
            }
        }
        let function = obj
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                err(
                    format!("{at}.function"),
                    format!("{at}.function must be an object"),
                )
            })?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                err(
                    format!("{at}.function.name"),
                    format!("{at}.function.name must be a string"),
                )
            })?;
        if !valid_name(name) {
            return Err(err(
                format!("{at}.function.name"),
                format!(
                    "{at}.function.name '{name}' must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '-' and '.'"
                ),
            ));
        }
        if out.iter().any(|t| t.name == name) {
            return Err(err(
                format!("{at}.function.name"),
                format!("two tools are named '{name}'"),
            ));
        }
        let parameters = match function.get("parameters") {
            // No parameters: the function takes none, so its arguments are `{}`.
            None | Some(Value::Null) => {
                serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false})
            }
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(err(
                    format!("{at}.function.parameters"),
                    format!("{at}.function.parameters must be a JSON Schema object"),
                ))
            }
        };
        if let Some(d) = function.get("description") {
            if !d.is_string() && !d.is_null() {
                return Err(err(
                    format!("{at}.function.description"),
                    format!("{at}.function.description must be a string"),
                ));
            }
        }
        let strict = match function.get("strict") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(err(
                    format!("{at}.function.strict"),
                    format!("{at}.function.strict must be a boolean"),
                ))
            }
        };
        out.push(ToolDef {
            name: name.to_string(),
            parameters,
            strict,
        });
    }
    Ok(out)
}

/// Checks `tool_choice` against the tools: `"auto"`, `"none"`, `"required"`, or
/// `{"type": "function", "function": {"name": ...}}` naming one of them. Absent or `null` is
/// `auto` (OpenAI's default when tools are given). A choice other than `none`/`auto` without
/// tools is an error, as OpenAI answers.
pub fn parse_tool_choice(
    choice: Option<&Value>,
    tools: &[ToolDef],
) -> Result<ToolChoice, ToolError> {
    let parsed = match choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(err(
                    "tool_choice",
                    format!(
                    "'tool_choice' must be 'auto', 'none', 'required' or a function, got '{other}'"
                ),
                ))
            }
        },
        Some(Value::Object(obj)) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    err(
                        "tool_choice",
                        "'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            if let Some(t) = obj.get("type").and_then(Value::as_str) {
                if t != "function" {
                    return Err(err(
                        "tool_choice",
                        format!("'tool_choice.type' must be 'function', got '{t}'"),
                    ));
                }
            }
            if !tools.iter().any(|t| t.name == name) {
                return Err(err(
                    "tool_choice",
                    format!(
                        "'tool_choice' names the function '{name}', which is not among the tools"
                    ),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
        Some(_) => {
            return Err(err(
                "tool_choice",
                "'tool_choice' must be a string or an object",
            ))
        }
    };
    if tools.is_empty() && matches!(parsed, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(err(
            "tool_choice",
            "'tool_choice' requires a tool call but no 'tools' were given",
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    }

    #[test]
    fn tools_are_checked_with_their_path() {
        let tools = parse_tools(Some(&weather())).unwrap();
        assert_eq!(tools[0].name, "get_weather");
        let e = parse_tools(Some(&json!({"a": 1}))).unwrap_err();
        assert_eq!(e.param, "tools");
        let e = parse_tools(Some(
            &json!([{"type": "function", "function": {"name": "bad name"}}]),
        ))
        .unwrap_err();
        assert_eq!(e.param, "tools[0].function.name");
        let e = parse_tools(Some(
            &json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        ))
        .unwrap_err();
        assert_eq!(e.param, "tools[0].function.parameters");
        let e = parse_tools(Some(&json!([{"type": "retrieval"}]))).unwrap_err();
        assert_eq!(e.param, "tools[0].type");
        let two = json!([{"function": {"name": "f"}}, {"function": {"name": "f"}}]);
        assert!(parse_tools(Some(&two))
            .unwrap_err()
            .message
            .contains("two tools"));
        let no_params = parse_tools(Some(&json!([{"function": {"name": "f"}}]))).unwrap();
        assert_eq!(no_params[0].parameters["type"], "object");
    }

    #[test]
    fn tool_choice_names_only_known_tools() {
        let tools = parse_tools(Some(&weather())).unwrap();
        assert_eq!(parse_tool_choice(None, &tools).unwrap(), ToolChoice::Auto);
        assert_eq!(
            parse_tool_choice(Some(&json!("none")), &tools).unwrap(),
            ToolChoice::None
        );
        assert_eq!(
            parse_tool_choice(Some(&json!("required")), &tools).unwrap(),
            ToolChoice::Required
        );
        let named = json!({"type": "function", "function": {"name": "get_weather"}});
        assert_eq!(
            parse_tool_choice(Some(&named), &tools).unwrap(),
            ToolChoice::Named("get_weather".into())
        );
        let unknown = json!({"type": "function", "function": {"name": "nope"}});
        assert!(parse_tool_choice(Some(&unknown), &tools)
            .unwrap_err()
            .message
            .contains("nope"));
        assert!(parse_tool_choice(Some(&json!("sometimes")), &tools).is_err());
        assert!(parse_tool_choice(Some(&json!("required")), &[]).is_err());
        assert_eq!(
            parse_tool_choice(Some(&json!("auto")), &[]).unwrap(),
            ToolChoice::Auto
        );
    }
}
