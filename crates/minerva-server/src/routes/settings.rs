//! A created model's own settings ([`ModelSettings`], from `/api/create`) applied to a request
//! for it, on every route: its system prompt when the request has none, its messages before
//! the request's, and its parameters as defaults the request's own values override.

use minerva_core::ModelSettings;
use minerva_engine::Engine;
use minerva_ollama::{CreateRequest, Options};
use minerva_openai::{SamplingFields, StopField};
use serde_json::{Map, Value};

/// The settings of the model `name` names (none for a model without, or one that does not
/// resolve: the request's own lookup reports that).
pub(crate) async fn of(engine: &Engine, name: &str) -> ModelSettings {
    match engine.resolve(Some(name)).await {
        Ok(model) => model.settings,
        Err(_) => ModelSettings::default(),
    }
}

/// Ollama's `options`: the model's parameters, then the request's on top.
pub(crate) fn ollama_options(
    settings: &ModelSettings,
    options: Option<&Map<String, Value>>,
) -> Option<Map<String, Value>> {
    if settings.parameters.is_empty() {
        return options.cloned();
    }
    let mut merged = settings.parameters.clone();
    for (k, v) in options.into_iter().flatten() {
        merged.insert(k.clone(), v.clone());
    }
    Some(merged)
}

/// OpenAI-shaped sampling fields: each the request leaves out takes the model's parameter
/// (`num_predict` as `max_tokens`, `stop` as the stop list).
pub(crate) fn fill_fields(settings: &ModelSettings, fields: &mut SamplingFields) {
    if settings.parameters.is_empty() {
        return;
    }
    // Checked when the model was created; a parameter that no longer reads is left out.
    let Ok(parsed) = Options::from_map(Some(&settings.parameters)) else {
        return;
    };
    let o = parsed.options;
    let to_i32 = |v: i64| i32::try_from(v).ok();
    fields.temperature = fields.temperature.or(o.temperature);
    fields.top_p = fields.top_p.or(o.top_p);
    fields.top_k = fields.top_k.or(o.top_k.and_then(to_i32));
    fields.min_p = fields.min_p.or(o.min_p);
    fields.repeat_penalty = fields.repeat_penalty.or(o.repeat_penalty);
    fields.repeat_last_n = fields.repeat_last_n.or(o.repeat_last_n.and_then(to_i32));
    fields.presence_penalty = fields.presence_penalty.or(o.presence_penalty);
    fields.frequency_penalty = fields.frequency_penalty.or(o.frequency_penalty);
    fields.seed = fields.seed.or(o.seed.filter(|&s| s >= 0));
    if fields.stop.is_none() {
        fields.stop = o.stop.map(StopField::Many);
    }
    if fields.max_tokens.is_none() {
        fields.max_tokens = o.num_predict.filter(|&n| n > 0);
    }
}

/// Checks parameters given to `/api/create` as Ollama's `options` are checked: known names,
/// the right types. The message names the parameter.
fn check_parameters(parameters: &Map<String, Value>) -> Result<(), String> {
    let parsed = Options::from_map(Some(parameters)).map_err(|e| format!("parameters: {e}"))?;
    if let Some(unknown) = parsed.unknown.first() {
        return Err(format!("parameters: unknown parameter '{unknown}'"));
    }
    Ok(())
}

/// A field of `/api/create` that cannot be a model's own setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    /// `system`, `template`, `license`, `parameters` or `messages`.
    pub field: &'static str,
    pub message: String,
}

fn refused(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

/// The settings a create request gives its model (`None`: none), checked: parameters as
/// Ollama's options (known names, right types, `num_ctx` from 1 to 2^20), messages with a
/// role of `system`, `user` or `assistant` and text content, the template as a Jinja chat
/// template ([`check_template`]), the licence a string or a list of strings.
pub fn create_settings(req: &CreateRequest) -> Result<Option<ModelSettings>, SettingsError> {
    let mut settings = ModelSettings {
        system: req.system.clone(),
        ..ModelSettings::default()
    };
    match &req.parameters {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            check_parameters(map).map_err(|m| refused("parameters", m))?;
            if let Some(n) = map.get("num_ctx").filter(|v| !v.is_null()) {
                let n = n.as_f64().unwrap_or(0.0);
                if !(1.0..=f64::from(1u32 << 20)).contains(&n) {
                    return Err(refused(
                        "parameters",
                        format!("num_ctx {n} is out of range (1 to 1048576 tokens)"),
                    ));
                }
            }
            settings.parameters = map.clone();
        }
        Some(_) => return Err(refused("parameters", "must be an object")),
    }
    for (i, m) in req.messages.iter().flatten().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(Value::as_str);
        match (role, content) {
            (Some("system" | "user" | "assistant"), Some(content)) => {
                settings
                    .messages
                    .push(serde_json::json!({"role": role, "content": content}));
            }
            _ => return Err(refused(
                "messages",
                format!(
                    "messages[{i}] needs a role (system, user or assistant) and a string content"
                ),
            )),
        }
    }
    if let Some(template) = &req.template {
        check_template(template).map_err(|m| refused("template", m))?;
        settings.template = Some(template.clone());
    }
    settings.license = match &req.license {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| refused("license", "must be a string or a list of strings"))?,
        Some(_) => return Err(refused("license", "must be a string or a list of strings")),
    };
    Ok((!settings.is_empty()).then_some(settings))
}

/// Checks a model's own template: a Jinja chat template (as Hugging Face models carry) that
/// compiles. Ollama's Go templates (`{{ .Prompt }}`, `{{ range .Messages }}`) are refused
/// with a message that says so.
pub fn check_template(source: &str) -> Result<(), String> {
    if is_go_template(source) {
        return Err(
            "this is a Go template (Ollama's syntax: {{ .Prompt }}, {{ range .Messages }}); Minerva takes chat templates in Jinja, as Hugging Face models carry them (tokenizer_config.json's chat_template)"
                .into(),
        );
    }
    minerva_template::ChatTemplate::new(source, "", "")
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `source` reads as a Go `text/template` rather than Jinja: an action that starts
/// with a field (`.Name`), a variable (`$x`) or a Go keyword (`if`, `range`, `end`, ...),
/// none of which Jinja writes inside `{{ }}`.
pub fn is_go_template(source: &str) -> bool {
    source.match_indices("{{").any(|(at, _)| {
        let action = source[at + 2..].trim_start_matches('-').trim_start();
        let word: String = action
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let after = action[word.len()..].chars().next();
        action.starts_with('.')
            || action.starts_with('$')
            || (matches!(
                word.as_str(),
                "if" | "range" | "end" | "else" | "with" | "define" | "template" | "block"
            ) && after.is_none_or(|c| c.is_whitespace() || c == '}' || c == '-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_are_told_from_jinja() {
        for go in [
            "{{ .System }} {{ .Prompt }}",
            "{{- if .System }}x{{ end }}",
            "{{ range $i, $m := .Messages }}{{ $m.Content }}{{ end }}",
            "{{- range .Messages }}{{- end }}",
        ] {
            assert!(is_go_template(go), "{go}");
            assert!(check_template(go).unwrap_err().contains("Go template"));
        }
        for jinja in [
            "{% for m in messages %}{{ m.content }}{% endfor %}",
            "{{ bos_token }}{% if add_generation_prompt %}x{% endif %}",
            "{{- messages[0]['content'] }}{{ range(3) | list }}",
        ] {
            assert!(!is_go_template(jinja), "{jinja}");
            assert_eq!(check_template(jinja), Ok(()));
        }
        assert!(check_template("{% for m in messages %}").is_err());
    }
}
