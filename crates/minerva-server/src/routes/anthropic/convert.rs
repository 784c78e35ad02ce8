//! Anthropic request parts into the shapes the engine and chat templates take.

use crate::error::AnthropicError;
use crate::routes::images::{Images, RawImage};
use crate::routes::reasoning::Thinking;
use minerva_engine::{ReasoningRequest, ToolRequest};
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> AnthropicError {
    AnthropicError::bad_request(message)
}

/// `system` (a string or text blocks) and `messages` as chat-template messages: a user
/// message's `tool_result` blocks become `tool` messages (before its text), an assistant's
/// `tool_use` blocks its `tool_calls` and its `thinking` blocks `reasoning_content`.
/// `cache_control` is accepted without effect. A user message's `image` blocks (base64
/// sources) stand in its text as the media marker, their bytes go to `images`. Errors name
/// the block.
pub fn messages(
    system: Option<&Value>,
    messages: &[Value],
    images: &mut Images,
) -> Result<Vec<Value>, AnthropicError> {
    let mut out = Vec::new();
    match system {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => out.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text = text_of(blocks, "system")?;
            if !text.is_empty() {
                out.push(json!({"role": "system", "content": text}));
            }
        }
        Some(_) => return Err(bad("system: must be a string or an array of text blocks")),
    }
    if messages.is_empty() {
        return Err(bad("messages: at least one message is required"));
    }
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages.{i}");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(bad(format!(
                "{at}.role: must be 'user' or 'assistant', got {}",
                message.get("role").unwrap_or(&Value::Null)
            )));
        }
        let blocks = match message.get("content") {
            Some(Value::String(s)) => vec![json!({"type": "text", "text": s})],
            Some(Value::Array(blocks)) => blocks.clone(),
            _ => {
                return Err(bad(format!(
                    "{at}.content: must be a string or an array of content blocks"
                )))
            }
        };
        if role == "user" {
            user(&blocks, &at, &mut out, images)?;
        } else {
            out.push(assistant(&blocks, &at)?);
        }
    }
    // A last message from the assistant is continued (prefill): see the engine's chat prompt.
    Ok(out)
}

/// An `image` block's bytes: a `base64` source (`media_type` image/jpeg, png, gif or webp), or
/// a `url` source when the server fetches image URLs.
fn image(
    block: &Value,
    at: &str,
    urls: Option<crate::routes::images::ImageUrls>,
) -> Result<RawImage, AnthropicError> {
    let source = block
        .get("source")
        .filter(|s| s.is_object())
        .ok_or_else(|| {
            bad(format!(
                "{at}.source: an image block needs a 'source' object"
            ))
        })?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            // As Anthropic's API: one of four media types (the bytes are decoded by what they
            // are, so a PNG sent as image/jpeg is read as a PNG).
            const TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];
            let media_type = string(source, "media_type", &format!("{at}.source"))?;
            if !TYPES.contains(&media_type) {
                return Err(bad(format!(
                    "{at}.source.media_type: must be one of {}, got '{media_type}'",
                    TYPES.join(", ")
                )));
            }
            let data = string(source, "data", &format!("{at}.source"))?;
            crate::routes::images::from_base64(data, &format!("{at}.source.data"))
                .map_err(AnthropicError::from)
        }
        Some("url") => {
            let url = string(source, "url", &format!("{at}.source"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(format!("{at}.source.url: must be an http(s) URL")));
            }
            crate::routes::images::from_url(url, &format!("{at}.source.url"), urls)
                .map_err(AnthropicError::from)
        }
        other => Err(bad(format!(
            "{at}.source.type: an image source must be 'base64' (or 'url'), got {}",
            other.map_or("nothing".to_string(), |t| format!("'{t}'"))
        ))),
    }
}

fn block_type<'a>(block: &'a Value, at: &str) -> Result<&'a str, AnthropicError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.type: a content block needs a 'type'")))
}

/// The text of text blocks (joined); any other block is an error.
fn text_of(blocks: &[Value], at: &str) -> Result<String, AnthropicError> {
    let mut text = String::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.{j}");
        match block_type(block, &at)? {
            "text" => text.push_str(string(block, "text", &at)?),
            other => {
                return Err(bad(format!(
                    "{at}.type: expected a text block, got '{other}'"
                )))
            }
        }
    }
    Ok(text)
}

fn string<'a>(block: &'a Value, field: &str, at: &str) -> Result<&'a str, AnthropicError> {
    block
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.{field}: must be a string")))
}

fn user(
    blocks: &[Value],
    at: &str,
    out: &mut Vec<Value>,
    images: &mut Images,
) -> Result<(), AnthropicError> {
    let mut text = String::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block, &at)? {
            "text" => text.push_str(string(block, "text", &at)?),
            "tool_result" => {
                let id = string(block, "tool_use_id", &at)?;
                let content = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => text_of(parts, &format!("{at}.content"))?,
                    Some(_) => {
                        return Err(bad(format!(
                            "{at}.content: must be a string or text blocks"
                        )))
                    }
                };
                let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
                let content = if is_error {
                    format!("Error: {content}")
                } else {
                    content
                };
                out.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
            "image" => {
                let raw = image(block, &at, images.urls)?;
                images.raw.push(raw);
                text.push_str(minerva_core::media_marker());
            }
            "document" => {
                return Err(bad(format!(
                    "{at}.type: 'document' blocks are not supported: send the text as a text block"
                )))
            }
            other => {
                return Err(bad(format!(
                    "{at}.type: '{other}' blocks are not supported in user messages"
                )))
            }
        }
    }
    if !text.is_empty()
        || !blocks
            .iter()
            .any(|b| b.get("type") == Some(&json!("tool_result")))
    {
        out.push(json!({"role": "user", "content": text}));
    }
    Ok(())
}

fn assistant(blocks: &[Value], at: &str) -> Result<Value, AnthropicError> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        match block_type(block, &at)? {
            "text" => text.push_str(string(block, "text", &at)?),
            "thinking" => reasoning.push_str(string(block, "thinking", &at)?),
            "redacted_thinking" => {}
            "tool_use" => {
                let id = string(block, "id", &at)?;
                let name = string(block, "name", &at)?;
                let input = block
                    .get("input")
                    .filter(|v| v.is_object())
                    .ok_or_else(|| bad(format!("{at}.input: must be an object")))?;
                calls.push(json!({"id": id, "type": "function",
                                  "function": {"name": name, "arguments": input}}));
            }
            other => {
                return Err(bad(format!(
                    "{at}.type: '{other}' blocks are not supported in assistant messages"
                )))
            }
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(text));
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(message))
}

/// A request's tools: in OpenAI's shape for the template, and how they may be used.
pub struct Tools {
    pub openai: Option<Value>,
    pub request: ToolRequest,
}

/// `tools` (`{"name", "description", "input_schema"}`) and `tool_choice` (`auto`, `any`,
/// `tool` with a `name`, `none`; `disable_parallel_tool_use`) as the OpenAI route reads them.
pub fn tools(tools: Option<&Value>, choice: Option<&Value>) -> Result<Tools, AnthropicError> {
    let openai = match tools {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.is_empty() => None,
        Some(Value::Array(list)) => Some(Value::Array(
            list.iter()
                .enumerate()
                .map(|(i, t)| {
                    let name = t.get("name").cloned().unwrap_or(Value::Null);
                    if t.get("type").and_then(Value::as_str).is_some_and(|k| k != "custom") {
                        return Err(bad(format!(
                            "tools.{i}.type: server tools ('{}') are not supported; give a name and an input_schema",
                            t["type"].as_str().unwrap_or("")
                        )));
                    }
                    if !t.get("input_schema").is_some_and(Value::is_object) {
                        return Err(bad(format!("tools.{i}.input_schema: Field required (an object)")));
                    }
                    let mut function = Map::new();
                    function.insert("name".into(), name);
                    if let Some(d) = t.get("description") {
                        function.insert("description".into(), d.clone());
                    }
                    function.insert(
                        "parameters".into(),
                        t.get("input_schema").cloned().unwrap_or(Value::Null),
                    );
                    Ok(json!({"type": "function", "function": function}))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )),
        Some(_) => return Err(bad("tools: must be an array")),
    };
    let (choice, parallel) = match choice {
        None | Some(Value::Null) => (None, None),
        Some(c) => {
            let parallel = c
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                .map(|d| !d);
            let mapped = match c.get("type").and_then(Value::as_str) {
                Some("auto") => json!("auto"),
                Some("any") => json!("required"),
                Some("none") => json!("none"),
                Some("tool") => {
                    let name = c.get("name").and_then(Value::as_str).ok_or_else(|| {
                        bad("tool_choice.name: a 'tool' choice needs the tool's name")
                    })?;
                    json!({"type": "function", "function": {"name": name}})
                }
                _ => {
                    return Err(bad(
                        "tool_choice.type: must be 'auto', 'any', 'tool' or 'none'",
                    ))
                }
            };
            (Some(mapped), parallel)
        }
    };
    let request = ToolRequest::parse(openai.as_ref(), choice.as_ref(), parallel).map_err(|e| {
        bad(format!(
            "{}: {}",
            anthropic_path(&e.param),
            anthropic_path(&e.message)
        ))
    })?;
    Ok(Tools { openai, request })
}

/// OpenAI field paths (`tools[1].function.parameters`) in a text, in Anthropic's terms.
fn anthropic_path(param: &str) -> String {
    param
        .replace("tools[", "tools.")
        .replace("].function.parameters", ".input_schema")
        .replace("].function.name", ".name")
        .replace("].function", "")
        .replace(']', "")
}

/// `thinking`: `{"type": "enabled", "budget_tokens": N}` is a reasoning budget of N tokens;
/// `{"type": "disabled"}` turns thinking off in the template (`enable_thinking: false`) with a
/// budget of 0; absent leaves the model's default.
pub fn thinking(thinking: Option<&Value>) -> Result<Thinking, AnthropicError> {
    let mut out = Thinking::default();
    match thinking {
        None | Some(Value::Null) => {}
        Some(t) => match t.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = t
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .and_then(|b| u32::try_from(b).ok())
                    .ok_or_else(|| bad("thinking.budget_tokens: must be a number of tokens"))?;
                out.request = ReasoningRequest {
                    split: true,
                    budget: Some(budget),
                };
            }
            Some("disabled") => {
                out.request.budget = Some(0);
                out.kwargs.insert("enable_thinking".into(), json!(false));
            }
            _ => return Err(bad("thinking.type: must be 'enabled' or 'disabled'")),
        },
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_images() -> Images {
        Images::new(None)
    }

    #[test]
    fn blocks_become_template_messages() {
        let out = messages(
            Some(&json!([{"type": "text", "text": "Be brief."}])),
            &[
                json!({"role": "user", "content": "Weather in Paris?"}),
                json!({"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": ""},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]}),
                json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21 C"}],
                     "cache_control": {"type": "ephemeral"}}]}),
            ],
            &mut no_images(),
        )
        .unwrap();
        assert_eq!(out[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(out[2]["reasoning_content"], "Use the tool.");
        assert_eq!(
            out[2]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(
            out[3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "21 C"})
        );
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn bad_blocks_name_where() {
        for (m, says) in [
            (json!({"role": "system", "content": "x"}), "messages.0.role"),
            (json!({"role": "user", "content": 5}), "messages.0.content"),
            (
                json!({"role": "user", "content": [{"text": "x"}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"role": "user", "content": [{"type": "image", "source": {}}]}),
                "an image source must be 'base64'",
            ),
            (
                json!({"role": "user", "content": [{"type": "tool_result"}]}),
                "tool_use_id",
            ),
        ] {
            let e = messages(None, &[m], &mut no_images()).unwrap_err();
            assert!(e.0.message.contains(says), "{}", e.0.message);
        }
        let prefill = [
            json!({"role": "user", "content": "Hi"}),
            json!({"role": "assistant", "content": "Hel"}),
        ];
        let kept = messages(None, &prefill, &mut no_images()).unwrap_or_default();
        assert_eq!(
            kept.last(),
            Some(&json!({"role": "assistant", "content": "Hel"}))
        );
    }

    #[test]
    fn tool_choices() {
        let t = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        assert!(tools(Some(&t), Some(&json!({"type": "any"}))).is_ok());
        assert!(tools(Some(&t), Some(&json!({"type": "tool", "name": "f"}))).is_ok());
        let e = tools(Some(&t), Some(&json!({"type": "tool", "name": "g"})))
            .err()
            .unwrap();
        assert!(e.0.message.contains("tool_choice"), "{}", e.0.message);
        let e = tools(
            Some(&json!([{"name": "bad name!", "input_schema": {}}])),
            None,
        )
        .err()
        .unwrap();
        assert!(e.0.message.starts_with("tools.0"), "{}", e.0.message);
    }

    #[test]
    fn thinking_options() {
        let t = thinking(Some(&json!({"type": "enabled", "budget_tokens": 64}))).unwrap();
        assert_eq!(t.request.budget, Some(64));
        let t = thinking(Some(&json!({"type": "disabled"}))).unwrap();
        assert_eq!(t.kwargs["enable_thinking"], false);
        assert!(thinking(Some(&json!({"type": "on"}))).is_err());
    }
}
