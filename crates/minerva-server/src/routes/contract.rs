//! The parts of OpenAI's request contract that are not sampling: fields Minerva cannot honour
//! (refused by name with `code: "unsupported_parameter"`, never ignored), message fields sent
//! as `null`, and `developer` messages for chat templates that have no such role.
//!
//! Fields that cannot change the reply (`user`, `store`, `metadata`, `service_tier`,
//! `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`, `prompt_cache_options`,
//! `stream_options.include_obfuscation`, `prediction`) are not read at all; the README's
//! field table says what happens to each field.

use crate::ApiError;
use minerva_openai::{ChatCompletionRequest, CompletionRequest};
use serde_json::Value;

fn unsupported(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, Some(param)).with_code("unsupported_parameter")
}

/// Refuses the chat fields that would change the reply and that Minerva cannot honour.
pub fn refuse_chat_fields(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    let present = [
        (
            "audio",
            req.audio.is_some(),
            "audio output is not supported",
        ),
        (
            "web_search_options",
            req.web_search_options.is_some(),
            "web search is not supported",
        ),
        (
            "functions",
            req.functions.is_some(),
            "legacy 'functions' are not supported; use 'tools'",
        ),
        (
            "function_call",
            req.function_call.is_some(),
            "legacy 'function_call' is not supported; use 'tool_choice'",
        ),
        (
            "moderation",
            req.moderation.is_some(),
            "moderation is not supported",
        ),
    ];
    if let Some((param, _, message)) = present.iter().find(|(_, set, _)| *set) {
        return Err(unsupported(*message, param));
    }
    if let Some(modalities) = &req.modalities {
        if modalities.iter().any(|m| m != "text") {
            return Err(unsupported(
                "only the 'text' modality is supported",
                "modalities",
            ));
        }
    }
    if let Some(verbosity) = req.verbosity.as_deref() {
        if verbosity != "medium" {
            return Err(unsupported(
                format!("'verbosity' '{verbosity}' is not supported (only 'medium', the default)"),
                "verbosity",
            ));
        }
    }
    Ok(())
}

/// Refuses the text-completion fields that Minerva cannot honour.
pub fn refuse_completion_fields(req: &CompletionRequest) -> Result<(), ApiError> {
    if req.echo {
        return Err(unsupported("'echo' is not supported", "echo"));
    }
    match req.best_of {
        None | Some(1) => Ok(()),
        Some(_) => Err(unsupported("only best_of = 1 is supported", "best_of")),
    }
}

/// Messages with their `null` fields removed (`null` means absent; `content: null` stays, for
/// assistant messages that only call tools), after refusing the message fields Minerva cannot
/// honour: an assistant's `audio` (a reference to an earlier audio reply) and legacy
/// `function_call`.
pub fn clean_messages(messages: &[Value]) -> Result<Vec<Value>, ApiError> {
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let Some(obj) = message.as_object() else {
                // normalize_messages says what is wrong with it.
                return Ok(message.clone());
            };
            for field in ["audio", "function_call"] {
                if obj.get(field).is_some_and(|v| !v.is_null()) {
                    let mut e = unsupported(
                        format!("messages[{i}].{field} is not supported"),
                        "messages",
                    );
                    e.param = Some(format!("messages[{i}].{field}"));
                    return Err(e);
                }
            }
            let mut obj = obj.clone();
            obj.retain(|key, value| key == "content" || !value.is_null());
            Ok(Value::Object(obj))
        })
        .collect()
}

/// True when the chat template knows the `developer` role (it names it); OpenAI's newer
/// models take `developer` where older ones took `system`.
pub fn template_has_developer(template: &str) -> bool {
    template.contains("developer")
}

/// `developer` messages become `system` messages when the template has no such role (as
/// OpenAI does for models without it); most open models' templates drop a role they do not
/// know without a word.
pub fn developer_as_system(mut messages: Vec<Value>, template: &str) -> Vec<Value> {
    if template_has_developer(template) {
        return messages;
    }
    for message in &mut messages {
        if let Some(role) = message.get_mut("role") {
            if role == "developer" {
                *role = Value::from("system");
            }
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn developer_becomes_system_unless_the_template_knows_it() {
        let messages = vec![
            json!({"role": "developer", "content": "Be brief."}),
            json!({"role": "user", "content": "Hi"}),
        ];
        let chatml = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}";
        let mapped = developer_as_system(messages.clone(), chatml);
        assert_eq!(mapped[0]["role"], "system");
        assert_eq!(mapped[1]["role"], "user");
        let knows = "{% if m.role == 'developer' %}...{% endif %}";
        assert_eq!(developer_as_system(messages, knows)[0]["role"], "developer");
    }

    #[test]
    fn null_message_fields_are_absent() {
        let cleaned = clean_messages(&[json!({
            "role": "assistant", "content": null, "name": null, "tool_calls": null,
            "refusal": null, "audio": null, "function_call": null
        })])
        .unwrap();
        assert_eq!(cleaned[0], json!({"role": "assistant", "content": null}));
    }

    #[test]
    fn message_audio_and_function_call_are_refused() {
        for field in ["audio", "function_call"] {
            let message = json!({"role": "assistant", "content": "x", field: {"id": "a"}});
            let e =
                clean_messages(&[json!({"role": "user", "content": "hi"}), message]).unwrap_err();
            assert_eq!(
                e.param.as_deref(),
                Some(format!("messages[1].{field}").as_str())
            );
            assert_eq!(e.code, Some("unsupported_parameter"));
        }
    }
}
