//! Turning OpenAI request fields into engine parameters, with range checks.

use crate::ApiError;
use minerva_core::{SamplingParams, TokenId};
use minerva_openai::{SamplingFields, Usage as WireUsage};

fn check_range(value: Option<f32>, lo: f32, hi: f32, name: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) || v.is_nan() => Err(ApiError::bad_request(
            format!("'{name}' must be between {lo} and {hi}, got {v}"),
            Some(name),
        )),
        _ => Ok(()),
    }
}

/// Sampling parameters from the request, llama-server's defaults for what is omitted.
pub fn sampling(f: &SamplingFields, n_vocab: usize) -> Result<SamplingParams, ApiError> {
    check_range(f.temperature, 0.0, 2.0, "temperature")?;
    check_range(f.top_p, 0.0, 1.0, "top_p")?;
    check_range(f.min_p, 0.0, 1.0, "min_p")?;
    check_range(f.presence_penalty, -2.0, 2.0, "presence_penalty")?;
    check_range(f.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
    check_range(f.repeat_penalty, 0.0, 10.0, "repeat_penalty")?;
    if let Some(k) = f.top_k {
        if k < 0 {
            return Err(ApiError::bad_request("'top_k' must be >= 0", Some("top_k")));
        }
    }
    if let Some(n) = f.repeat_last_n {
        if n < 0 {
            return Err(ApiError::bad_request(
                "'repeat_last_n' must be >= 0",
                Some("repeat_last_n"),
            ));
        }
    }
    let seed = match f.seed {
        None => None,
        Some(s) if (0..i64::from(u32::MAX)).contains(&s) => Some(s as u32),
        Some(s) => {
            return Err(ApiError::bad_request(
                format!("'seed' must be between 0 and {}, got {s}", u32::MAX - 1),
                Some("seed"),
            ))
        }
    };
    let mut logit_bias = Vec::new();
    for (key, &bias) in f.logit_bias.iter().flatten() {
        let id: TokenId = key.parse().map_err(|_| {
            ApiError::bad_request(
                format!("logit_bias key '{key}' is not a token id"),
                Some("logit_bias"),
            )
        })?;
        if id < 0 || id as usize >= n_vocab {
            return Err(ApiError::bad_request(
                format!("logit_bias token id {id} is outside the vocabulary (0..{n_vocab})"),
                Some("logit_bias"),
            ));
        }
        check_range(Some(bias), -100.0, 100.0, "logit_bias")?;
        // OpenAI: -100 bans the token.
        let bias = if bias <= -100.0 {
            f32::NEG_INFINITY
        } else {
            bias
        };
        logit_bias.push((id, bias));
    }
    let d = SamplingParams::default();
    Ok(SamplingParams {
        temperature: f.temperature.unwrap_or(d.temperature),
        top_p: f.top_p.unwrap_or(d.top_p),
        top_k: f.top_k.unwrap_or(d.top_k),
        min_p: f.min_p.unwrap_or(d.min_p),
        repeat_penalty: f.repeat_penalty.unwrap_or(d.repeat_penalty),
        repeat_last_n: f.repeat_last_n.unwrap_or(d.repeat_last_n),
        presence_penalty: f.presence_penalty.unwrap_or(d.presence_penalty),
        frequency_penalty: f.frequency_penalty.unwrap_or(d.frequency_penalty),
        seed,
        logit_bias,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        format: None,
    })
}

/// `n`: how many choices, 1 when absent, at most [`minerva_engine::MAX_CHOICES`].
pub fn choices(f: &SamplingFields) -> Result<usize, ApiError> {
    let max = minerva_engine::MAX_CHOICES;
    match f.n {
        None => Ok(1),
        Some(n) if n >= 1 && n <= max as i64 => Ok(n as usize),
        Some(n) => Err(ApiError::bad_request(
            format!("'n' must be between 1 and {max}, got {n}"),
            Some("n"),
        )),
    }
}

/// `max_tokens`: from 1 to `u32::MAX` when given.
pub fn max_tokens(value: Option<i64>, name: &str) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        Some(v) => Err(ApiError::bad_request(
            format!("'{name}' must be between 1 and {}, got {v}", u32::MAX),
            Some(name),
        )),
    }
}

/// Stop strings: at most 16, none empty... (empty ones are ignored as OpenAI does).
pub fn stops(f: &SamplingFields) -> Result<Vec<String>, ApiError> {
    let stops = f.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stops.len() > 16 {
        return Err(ApiError::bad_request(
            "at most 16 stop strings are allowed",
            Some("stop"),
        ));
    }
    Ok(stops)
}

/// `tools`, handed to the chat template as they are: absent, `null` or an array.
pub fn tools(value: Option<&serde_json::Value>) -> Result<Option<serde_json::Value>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(t @ serde_json::Value::Array(_)) => Ok(Some(t.clone())),
        Some(_) => Err(ApiError::bad_request(
            "'tools' must be an array",
            Some("tools"),
        )),
    }
}

pub fn wire_usage(u: &minerva_core::Usage) -> WireUsage {
    WireUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        prompt_tokens_details: Some(minerva_openai::PromptTokensDetails {
            cached_tokens: u.cached_tokens,
        }),
    }
}

/// `tools`, `tool_choice` and `parallel_tool_calls` checked together (see
/// [`minerva_engine::ToolRequest`]).
pub fn tool_request(
    tools: Option<&serde_json::Value>,
    choice: Option<&serde_json::Value>,
    parallel: Option<bool>,
) -> Result<minerva_engine::ToolRequest, ApiError> {
    let bad = |e: minerva_engine::ToolError| {
        let mut err = ApiError::bad_request(e.message, None);
        err.param = Some(e.param);
        err
    };
    minerva_engine::ToolRequest::parse(tools, choice, parallel).map_err(bad)
}
