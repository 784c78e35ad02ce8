//! Tool calls of earlier assistant messages (`messages[i].tool_calls`), checked before a chat
//! template sees them: a template reads `call.function.name` and `call.function.arguments`,
//! and a malformed entry would fail inside it as an opaque template error.

use serde_json::Value;

/// A problem with one message's `tool_calls`: the field path and what is wrong.
#[derive(Debug, PartialEq)]
pub struct BadCall {
    pub param: String,
    pub message: String,
}

/// Checks `calls` (the `tool_calls` of the message at `param`, e.g. `messages[1]`) and puts
/// each call's arguments in the shape templates expect: an object (a JSON string that parses
/// to one is parsed; another string is kept as it is). OpenAI's shape requires `arguments`;
/// Ollama's (`arguments_default`) takes a missing one as `{}`.
pub fn normalize(calls: &mut Value, param: &str, arguments_default: bool) -> Result<(), BadCall> {
    let bad = |path: String, message: String| BadCall {
        param: path,
        message,
    };
    let list = calls.as_array_mut().ok_or_else(|| {
        bad(
            format!("{param}.tool_calls"),
            format!("{param}.tool_calls must be an array"),
        )
    })?;
    for (j, call) in list.iter_mut().enumerate() {
        let at = format!("{param}.tool_calls[{j}]");
        let function = call
            .as_object_mut()
            .and_then(|c| c.get_mut("function"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                bad(
                    format!("{at}.function"),
                    format!("{at} must be an object with a 'function' object"),
                )
            })?;
        if !function.get("name").is_some_and(Value::is_string) {
            return Err(bad(
                format!("{at}.function.name"),
                format!("{at}.function.name must be a string"),
            ));
        }
        match function.get_mut("arguments") {
            None | Some(Value::Null) if arguments_default => {
                function.insert("arguments".into(), Value::Object(Default::default()));
            }
            Some(args @ Value::String(_)) => {
                if let Some(parsed) = args
                    .as_str()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .filter(Value::is_object)
                {
                    *args = parsed;
                }
            }
            Some(Value::Object(_)) => {}
            _ => {
                return Err(bad(
                    format!("{at}.function.arguments"),
                    format!("{at}.function.arguments must be a JSON string or an object"),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_become_objects() {
        let mut calls = json!([
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
            {"function": {"name": "g", "arguments": {"y": 2}}},
            {"function": {"name": "h", "arguments": "not json"}}
        ]);
        normalize(&mut calls, "messages[1]", false).unwrap();
        assert_eq!(calls[0]["function"]["arguments"], json!({"x": 1}));
        assert_eq!(calls[1]["function"]["arguments"], json!({"y": 2}));
        assert_eq!(calls[2]["function"]["arguments"], "not json");
        let mut ollama = json!([{"function": {"name": "f"}}]);
        normalize(&mut ollama, "messages[1]", true).unwrap();
        assert_eq!(ollama[0]["function"]["arguments"], json!({}));
    }

    #[test]
    fn malformed_calls_name_the_field() {
        for (calls, param) in [
            (json!("x"), "messages[1].tool_calls"),
            (json!([5]), "messages[1].tool_calls[0].function"),
            (json!([{}]), "messages[1].tool_calls[0].function"),
            (
                json!([{"function": "x"}]),
                "messages[1].tool_calls[0].function",
            ),
            (
                json!([{"function": {"name": 5, "arguments": "{}"}}]),
                "messages[1].tool_calls[0].function.name",
            ),
            (
                json!([{"function": {"name": "f"}}]),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                json!([{"function": {"name": "f", "arguments": 3}}]),
                "messages[1].tool_calls[0].function.arguments",
            ),
        ] {
            let mut calls = calls;
            let e = normalize(&mut calls, "messages[1]", false).unwrap_err();
            assert_eq!(e.param, param);
        }
    }
}
