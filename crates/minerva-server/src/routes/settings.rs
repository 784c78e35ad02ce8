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

/// Checks parameters given to `/api/create` as a request's Ollama `options` are checked
/// (known names, the right types, the same ranges), and gives them typed as Ollama types them
/// (an integer's fraction cut off, a float as a float), so that what is kept reads back the
/// same from JSON and from a Modelfile. The message names the parameter.
fn checked_parameters(parameters: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let parsed = Options::from_map(Some(parameters)).map_err(|e| e.to_string())?;
    if let Some(unknown) = parsed.unknown.first() {
        return Err(format!("unknown parameter '{unknown}'"));
    }
    let mut typed = Map::new();
    for (k, v) in parameters.iter().filter(|(_, v)| !v.is_null()) {
        let value = match (minerva_ollama::option_kind(k), v.as_f64()) {
            (Some(minerva_ollama::OptionKind::Int), Some(f)) => Value::from(f as i64),
            (Some(minerva_ollama::OptionKind::Float), Some(f)) => serde_json::json!(f),
            _ => v.clone(),
        };
        typed.insert(k.clone(), value);
    }
    if let Some(n) = typed.get("num_ctx").and_then(Value::as_i64) {
        if !(MIN_NUM_CTX..=MAX_NUM_CTX).contains(&n) {
            return Err(format!(
                "num_ctx {n} is out of range ({MIN_NUM_CTX} to {MAX_NUM_CTX} tokens)"
            ));
        }
    }
    super::ollama::options::check_unloaded(&typed).map_err(|e| e.0.message)?;
    Ok(typed)
}

/// The smallest and largest `num_ctx` a created model may ask for, in tokens: below 64 a
/// prompt and its reply hardly fit; 2^20 is past every model's trained context.
const MIN_NUM_CTX: i64 = 64;
const MAX_NUM_CTX: i64 = 1 << 20;
/// Most bytes of text (system prompt, messages, licences) a created model may keep: its
/// settings go into every prompt, which the template caps at 8 MiB.
const MAX_SETTINGS_TEXT: usize = 1 << 20;

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
/// Ollama's options (known names, right types and ranges, `num_ctx` from 64 to 2^20; kept
/// typed), at most 1 MiB of system prompt, messages and licence, messages with a
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
            settings.parameters = checked_parameters(map).map_err(|m| refused("parameters", m))?;
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
            _ => {
                return Err(refused(
                    "messages",
                    format!(
                    "messages[{i}] needs a role (system, user or assistant) and a string content"
                ),
                ))
            }
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
    let text = settings.system.as_ref().map_or(0, String::len)
        + settings
            .messages
            .iter()
            .map(|m| m.to_string().len())
            .sum::<usize>()
        + settings.license.iter().map(String::len).sum::<usize>();
    if text > MAX_SETTINGS_TEXT {
        let field = if settings.system.as_ref().map_or(0, String::len) > MAX_SETTINGS_TEXT / 2 {
            "system"
        } else {
            "messages"
        };
        return Err(refused(
            field,
            format!(
                "the system prompt, messages and licence come to {text} bytes, more than the {MAX_SETTINGS_TEXT} a model may keep"
            ),
        ));
    }
    Ok((!settings.is_empty()).then_some(settings))
}

/// Checks a model's own template: a Jinja chat template (as Hugging Face models carry) or an
/// Ollama Go template (`{{ .Prompt }}`, `{{ range .Messages }}`), which must compile and render
/// a short conversation.
pub fn check_template(source: &str) -> Result<(), String> {
    let template =
        minerva_template::ChatTemplate::new(source, "", "").map_err(|e| e.to_string())?;
    let sample = [
        serde_json::json!({"role": "system", "content": "You are helpful."}),
        serde_json::json!({"role": "user", "content": "Hello"}),
    ];
    let options = minerva_template::RenderOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    let rendered = template
        .render(&sample, &options)
        .map_err(|e| format!("it does not render a conversation: {e}"))?;
    // A template that leaves the messages out (`{{ Prompt }}` read as Jinja's undefined
    // `Prompt`) would send the model nothing of a request.
    if !rendered.contains("Hello") {
        return Err(
            "it leaves the conversation out: a sample user message is not in what it renders"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_compile_and_render() {
        for good in [
            "{% for m in messages %}{{ m.content }}{% endfor %}",
            "{{ .System }} {{ .Prompt }}",
            "{{ range .Messages }}{{ .Content }}{{ end }}",
        ] {
            assert_eq!(check_template(good), Ok(()), "{good}");
        }
        for bad in [
            "{% for m in messages %}",
            "{{ if .System }}",
            "{{ nonsense .Prompt }}",
            "{{ raise_exception('no') }}",
            "{{ Prompt }}",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }
}
