//! A Responses request as the chat completion request it means: `instructions` and `input`
//! items become chat messages, function tools and `tool_choice` take chat's shape, `text.format`
//! becomes `response_format`, `reasoning.effort` `reasoning_effort`. Errors name the Responses
//! field (`input[2].content[0].type`).

use crate::ApiError;
use minerva_responses::ResponsesRequest;
use serde_json::{json, Map, Value};

/// Fields of chat completions (OpenAI's, llama-server's and Minerva's: sampling, the prompt
/// cache, reasoning) that the Responses API lacks, taken from the request as they are.
const PASSED_ON: &[&str] = &[
    "seed",
    "top_k",
    "min_p",
    "typical_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "logit_bias",
    "cache_prompt",
    "ignore_eos",
    "reasoning_budget",
    "reasoning_format",
    "chat_template_kwargs",
];

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param))
}

/// The chat completion request (as JSON, for the chat route's own parser) of `req`, whose
/// `input` is `input` ([`input_messages`]) after the earlier turns `history`.
pub fn chat_request(
    req: &ResponsesRequest,
    history: &[Value],
    input: &[Value],
) -> Result<Value, ApiError> {
    if req.model.is_empty() {
        return Err(bad("'model' is required", "model"));
    }
    let mut messages = Vec::with_capacity(history.len() + input.len() + 1);
    // Instructions are the request's own: a previous response's are not carried over (as
    // OpenAI's).
    if let Some(instructions) = req.instructions.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    messages.extend_from_slice(history);
    messages.extend_from_slice(input);
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(bad("'input' has no message or item to answer", "input"));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!(req.model));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.max_output_tokens {
        if n < 1 {
            return Err(bad(
                format!("'max_output_tokens' must be at least 1, got {n}"),
                "max_output_tokens",
            ));
        }
        chat.insert("max_completion_tokens".into(), json!(n));
    }
    for (key, value) in [
        ("temperature", req.temperature.map(Value::from)),
        ("top_p", req.top_p.map(Value::from)),
        (
            "parallel_tool_calls",
            req.parallel_tool_calls.map(Value::from),
        ),
    ] {
        if let Some(v) = value {
            chat.insert(key.into(), v);
        }
    }
    for key in PASSED_ON {
        if let Some(v) = req.extra.get(*key) {
            chat.insert((*key).into(), v.clone());
        }
    }
    if let Some(tools) = tools(req.tools.as_ref())? {
        chat.insert("tools".into(), tools);
    }
    if let Some(choice) = tool_choice(req.tool_choice.as_ref())? {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some(format) = response_format(req.text.as_ref())? {
        chat.insert("response_format".into(), format);
    }
    if let Some(effort) = req
        .reasoning
        .as_ref()
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    Ok(Value::Object(chat))
}

/// `input` (a string, or items) as chat messages.
pub fn input_messages(req: &ResponsesRequest) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    match &req.input {
        None | Some(Value::Null) => return Err(bad("'input' is required", "input")),
        Some(Value::String(text)) => out.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                add_item(item, &format!("input[{i}]"), &mut out)?;
            }
        }
        Some(_) => {
            return Err(bad(
                "'input' must be a string or an array of items",
                "input",
            ))
        }
    }
    Ok(out)
}

/// A response's output items as the chat message that answers in a conversation: its text,
/// and its function calls (reasoning is left out, as chat templates drop earlier reasoning).
pub fn output_message(items: &[minerva_responses::OutputItem]) -> Option<Value> {
    use minerva_responses::{ContentPart, OutputItem};
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in items {
        match item {
            OutputItem::Message { content, .. } => {
                for ContentPart::OutputText { text: t, .. } in content {
                    text.push_str(t);
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => calls.push(json!({
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            OutputItem::Reasoning { .. } => {}
        }
    }
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    let mut message = json!({"role": "assistant", "content": text});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Some(message)
}

fn field<'a>(item: &'a Value, name: &str, at: &str) -> Result<&'a str, ApiError> {
    item.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}.{name}: a string is required"), at))
}

/// One input item, appended to the chat messages.
fn add_item(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    if !item.is_object() {
        return Err(bad(format!("{at}: an item must be an object"), at));
    }
    let kind = match item.get("type").and_then(Value::as_str) {
        Some(kind) => kind,
        None if item.get("role").is_some() => "message",
        None => {
            return Err(bad(
                format!("{at}.type: required (or a 'role' for a message)"),
                at,
            ))
        }
    };
    match kind {
        "message" => out.push(message(item, at)?),
        "function_call" => {
            let call = json!({
                "id": field(item, "call_id", at)?,
                "type": "function",
                "function": {"name": field(item, "name", at)?, "arguments": field(item, "arguments", at)?},
            });
            // Calls made in one turn go in one assistant message, after its text if any.
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    let calls = last
                        .as_object_mut()
                        .map(|m| m.entry("tool_calls").or_insert_with(|| json!([])));
                    if let Some(Value::Array(calls)) = calls {
                        calls.push(call);
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => text_of(parts, &format!("{at}.output"), &["input_text", "output_text"])?,
                _ => return Err(bad(format!("{at}.output: a string or text parts are required"), at)),
            };
            out.push(json!({"role": "tool", "tool_call_id": field(item, "call_id", at)?, "content": output}));
        }
        // Earlier reasoning is not sent back to the model (chat templates drop it too).
        "reasoning" => {}
        "item_reference" => {
            return Err(bad(
                format!("{at}: item references are not supported; send the item itself, or continue a stored response with previous_response_id"),
                at,
            ))
        }
        other => {
            return Err(bad(
                format!("{at}.type: '{other}' is not supported (message, function_call, function_call_output, reasoning are)"),
                at,
            ))
        }
    }
    Ok(())
}

/// A message item: `role` and `content` (a string, or parts).
fn message(item: &Value, at: &str) -> Result<Value, ApiError> {
    let role = field(item, "role", at)?;
    let allowed: &[&str] = match role {
        "user" | "system" | "developer" => &["input_text"],
        "assistant" => &["output_text", "refusal", "input_text"],
        other => {
            return Err(bad(
                format!("{at}.role: '{other}' is not one of user, assistant, system, developer"),
                at,
            ))
        }
    };
    let content = match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts))
            if role == "user"
                && parts
                    .iter()
                    .any(|p| p.get("type").and_then(Value::as_str) == Some("input_image")) =>
        {
            return Ok(
                json!({"role": role, "content": chat_parts(parts, &format!("{at}.content"))?}),
            );
        }
        Some(Value::Array(parts)) => text_of(parts, &format!("{at}.content"), allowed)?,
        _ => {
            return Err(bad(
                format!("{at}.content: a string or an array of parts is required"),
                at,
            ))
        }
    };
    Ok(json!({"role": role, "content": content}))
}

/// A user message's `input_text` and `input_image` parts as chat content parts (`text`,
/// `image_url`), for the chat route to read; images by `file_id` are refused.
fn chat_parts(parts: &[Value], at: &str) -> Result<Value, ApiError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str).unwrap_or("") {
            "input_text" => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("{at}[{j}].text: a string is required"), at))?;
                out.push(json!({"type": "text", "text": text}));
            }
            "input_image" => {
                let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                    bad(
                        format!("{at}[{j}].image_url: a data URI is required (file_id is not supported)"),
                        at,
                    )
                })?;
                out.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            other => {
                return Err(bad(
                    format!("{at}[{j}].type: '{other}' is not supported here; use input_text or input_image"),
                    at,
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

/// The text of content parts of the `allowed` types, joined.
fn text_of(parts: &[Value], at: &str, allowed: &[&str]) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        if !allowed.contains(&kind) {
            let why = match kind {
                "input_image" => " (images go in user messages)",
                "input_file" | "input_audio" => " (files and audio are not supported)",
                _ => "",
            };
            return Err(bad(
                format!(
                    "{at}[{j}].type: '{kind}' is not supported here{why}; use {}",
                    allowed.join(" or ")
                ),
                at,
            ));
        }
        let key = if kind == "refusal" { "refusal" } else { "text" };
        let piece = part
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}[{j}].{key}: a string is required"), at))?;
        text.push_str(piece);
    }
    Ok(text)
}

/// Function tools in chat's shape; any other tool type is refused.
fn tools(tools: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if list.is_empty() => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(bad("'tools' must be an array", "tools")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => {
                return Err(bad(
                    format!("{at}.type: '{other}' is one of OpenAI's hosted tools, which a local server does not have; only 'function' tools are supported"),
                    "tools",
                ))
            }
            None => return Err(bad(format!("{at}.type: required ('function')"), "tools")),
        }
        let mut function = Map::new();
        function.insert("name".into(), json!(field(tool, "name", &at)?));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                function.insert(key.into(), v.clone());
            }
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Some(Value::Array(out)))
}

/// `tool_choice`: `auto`, `none`, `required`, or `{"type": "function", "name"}`.
fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if ["auto", "none", "required"].contains(&s.as_str()) => {
            Ok(Some(json!(s)))
        }
        Some(c) if c.get("type").and_then(Value::as_str) == Some("function") => {
            let name = field(c, "name", "tool_choice")?;
            Ok(Some(json!({"type": "function", "function": {"name": name}})))
        }
        Some(_) => Err(bad(
            "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}",
            "tool_choice",
        )),
    }
}

/// `text.format` as chat's `response_format`.
fn response_format(text: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                json!(format
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("output")),
            );
            let Some(body) = format.get("schema").filter(|s| s.is_object()) else {
                return Err(bad(
                    "text.format.schema: an object is required",
                    "text.format.schema",
                ));
            };
            schema.insert("schema".into(), body.clone());
            for key in ["strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(bad(
            "text.format.type: must be 'text', 'json_object' or 'json_schema'",
            "text.format.type",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> ResponsesRequest {
        serde_json::from_value(value).unwrap_or_default()
    }

    fn chat_request(req: &ResponsesRequest) -> Result<Value, ApiError> {
        super::chat_request(req, &[], &input_messages(req)?)
    }

    #[test]
    fn items_become_chat_messages() {
        let req = request(json!({
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "What is the weather in Paris?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Lyon\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
                {"role": "developer", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}
            ],
            "max_output_tokens": 5,
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}},
            "reasoning": {"effort": "low"}
        }));
        let chat = chat_request(&req).unwrap_or_default();
        let messages = chat["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 6);
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(messages[2]["tool_calls"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
        );
        assert_eq!(
            messages[4],
            json!({"role": "assistant", "content": "Sunny."})
        );
        assert_eq!(messages[5], json!({"role": "developer", "content": "ab"}));
        assert_eq!(chat["max_completion_tokens"], 5);
        assert_eq!(chat["tools"][0]["function"]["name"], "weather");
        assert_eq!(chat["tool_choice"]["function"]["name"], "weather");
        assert_eq!(chat["response_format"]["json_schema"]["strict"], true);
        assert_eq!(chat["reasoning_effort"], "low");
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({"model": "m"}), "'input' is required"),
            (json!({"model": "m", "input": 3}), "'input' must be"),
            (
                json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
                "input[0].role",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "x"}]}]}),
                "input[0].content[0].image_url",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
                "input[0].call_id",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
                "item references are not supported",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "hosted tools",
            ),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 0}),
                "at least 1",
            ),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}),
                "text.format.type",
            ),
            (
                json!({"model": "m", "input": "x", "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (
                json!({"model": "m", "instructions": "x", "input": []}),
                "nothing",
            ),
        ];
        for (body, said) in cases {
            let req = request(body.clone());
            match chat_request(&req) {
                Ok(v) => panic!("{body} was accepted: {v}"),
                Err(e) if said == "nothing" => {
                    assert!(e.message.contains("no message"), "{}", e.message)
                }
                Err(e) => assert!(e.message.contains(said), "{body}: {}", e.message),
            }
        }
    }
}
