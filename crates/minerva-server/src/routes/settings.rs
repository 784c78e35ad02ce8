//! A created model's own settings ([`ModelSettings`], from `/api/create`) applied to a request
//! for it, on every route: its system prompt when the request has none, its messages before
//! the request's, and its parameters as defaults the request's own values override.

use minerva_core::ModelSettings;
use minerva_engine::Engine;
use minerva_ollama::Options;
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
pub(crate) fn check_parameters(parameters: &Map<String, Value>) -> Result<(), String> {
    let parsed = Options::from_map(Some(parameters)).map_err(|e| format!("parameters: {e}"))?;
    if let Some(unknown) = parsed.unknown.first() {
        return Err(format!("parameters: unknown parameter '{unknown}'"));
    }
    Ok(())
}
