//! Ollama's `options` turned into engine parameters, with Ollama's defaults (`api.DefaultOptions`)
//! for what is omitted, checked by the same range checks as the OpenAI routes.

use crate::error::OllamaError;
use crate::routes::params;
use minerva_core::{LogprobRequest, ModelInfo, SamplingParams};
use minerva_engine::{CompletionJob, Prompt};
use minerva_ollama::Options;
use minerva_openai::{SamplingFields, StopField};
use serde_json::{Map, Value};

/// Ollama's defaults: temperature 0.8, top_k 40, top_p 0.9, min_p 0, repeat_penalty 1
/// (off), repeat_last_n 64, no presence or frequency penalty, a random seed, no token limit.
const TEMPERATURE: f32 = 0.8;
const TOP_K: i32 = 40;
const TOP_P: f32 = 0.9;
const MIN_P: f32 = 0.0;
const REPEAT_PENALTY: f32 = 1.0;
const REPEAT_LAST_N: i32 = 64;

/// How to generate, from a request's `options`.
#[derive(Debug)]
pub(crate) struct Generation {
    pub sampling: SamplingParams,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
}

impl Generation {
    /// The engine job for `prompt` on the model `info` describes.
    pub fn job(
        self,
        info: &ModelInfo,
        prompt: Prompt,
        logprobs: Option<LogprobRequest>,
    ) -> CompletionJob {
        CompletionJob {
            model: info.id.clone(),
            prompt,
            sampling: self.sampling,
            max_tokens: self.max_tokens,
            stop: self.stop,
            logprobs,
            cache_prompt: true,
            tools: Default::default(),
            keep_alive: None,
            reasoning: Default::default(),
            images: Vec::new(),
        }
    }
}

pub(crate) fn generation(
    options: Option<&Map<String, Value>>,
    info: &ModelInfo,
) -> Result<Generation, OllamaError> {
    let parsed = Options::from_map(options).map_err(|e| OllamaError::bad_request(e.to_string()))?;
    if !parsed.unknown.is_empty() {
        tracing::warn!(options = ?parsed.unknown, "ignoring options Ollama does not know");
    }
    if !parsed.load_time.is_empty() {
        tracing::debug!(options = ?parsed.load_time, "ignoring load-time options: the model is loaded");
    }
    let o = parsed.options;
    if o.mirostat.is_some_and(|m| m != 0) {
        return Err(OllamaError::bad_request(
            "mirostat sampling is not supported (only mirostat 0)",
        ));
    }
    if o.typical_p.is_some_and(|p| p != 1.0) {
        return Err(OllamaError::bad_request(
            "typical_p sampling is not supported (only typical_p 1.0, the default)",
        ));
    }
    if let Some(n_ctx) = o.num_ctx {
        if n_ctx != info.n_ctx as i64 {
            // The context window is fixed when the model is loaded (`--ctx-size`); a prompt
            // that does not fit the served window is still refused with a 400.
            tracing::warn!(
                requested = n_ctx,
                served = info.n_ctx,
                "ignoring num_ctx: the context window is set by --ctx-size"
            );
        }
    }
    let repeat_last_n = match o.repeat_last_n {
        None => REPEAT_LAST_N,
        // Ollama: -1 looks back over the whole context.
        Some(-1) => i32::try_from(info.n_ctx).unwrap_or(i32::MAX),
        Some(n) => i32::try_from(n).ok().filter(|&n| n >= 0).ok_or_else(|| {
            OllamaError::bad_request(format!("'repeat_last_n' must be -1 or more, got {n}"))
        })?,
    };
    let fields = SamplingFields {
        temperature: Some(o.temperature.unwrap_or(TEMPERATURE)),
        top_k: Some(o.top_k.map_or(TOP_K, clamp_i32)),
        top_p: Some(o.top_p.unwrap_or(TOP_P)),
        min_p: Some(o.min_p.unwrap_or(MIN_P)),
        repeat_penalty: Some(o.repeat_penalty.unwrap_or(REPEAT_PENALTY)),
        repeat_last_n: Some(repeat_last_n),
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        // Ollama: a negative seed (its default is -1) draws a random one.
        seed: o.seed.filter(|&s| s >= 0),
        stop: o.stop.map(StopField::Many),
        ..SamplingFields::default()
    };
    let sampling = params::sampling(&fields, info.n_vocab)?;
    let stop = params::stops(&fields)?;
    let max_tokens = match o.num_predict {
        None => None,
        Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        // -1: no limit; -2: fill the context; 0: Ollama sets no limit either. Generation
        // always stops when the context window is full.
        Some(-2..=0) => None,
        Some(n) => {
            return Err(OllamaError::bad_request(format!(
                "'num_predict' must be positive, -1 (no limit) or -2 (fill the context), got {n}"
            )))
        }
    };
    Ok(Generation {
        sampling,
        max_tokens,
        stop,
    })
}

/// Checks `options` as [`generation`] does for a loaded model, before any model is loaded (a
/// created model's parameters): ranges and supported samplers. Model-specific bounds use a
/// context of `num_ctx` (or 4096) tokens and a vocabulary large enough for any model.
pub(crate) fn check_unloaded(options: &Map<String, Value>) -> Result<(), OllamaError> {
    let n_ctx = options
        .get("num_ctx")
        .and_then(Value::as_i64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(4096);
    let probe = stand_in(n_ctx, i32::MAX as usize);
    generation(Some(options), &probe).map(drop)
}

/// A model of `n_ctx` tokens of context and `n_vocab` tokens of vocabulary, for checks made
/// without a loaded model.
fn stand_in(n_ctx: usize, n_vocab: usize) -> ModelInfo {
    ModelInfo {
        id: String::new(),
        backend: String::new(),
        path: Default::default(),
        n_ctx,
        n_ctx_train: n_ctx,
        n_vocab,
        add_bos: false,
        chat_template: String::new(),
        default_template: false,
        file: Default::default(),
        embedding: None,
        fim: Default::default(),
        vision: None,
        cpu_variant: None,
    }
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info() -> ModelInfo {
        stand_in(2048, 1000)
    }

    fn run(options: Value) -> Result<Generation, OllamaError> {
        generation(options.as_object(), &info())
    }

    #[test]
    fn omitted_options_take_ollamas_defaults() {
        let g = generation(None, &info()).unwrap();
        let s = g.sampling;
        assert_eq!(
            (s.temperature, s.top_k, s.top_p, s.min_p),
            (0.8, 40, 0.9, 0.0)
        );
        assert_eq!((s.repeat_penalty, s.repeat_last_n), (1.0, 64));
        assert_eq!(s.seed, None);
        assert_eq!(g.max_tokens, None);
        assert!(g.stop.is_empty());
    }

    #[test]
    fn options_map_to_the_engine() {
        let g = run(json!({
            "num_predict": 5, "temperature": 0, "seed": 7, "repeat_last_n": -1,
            "stop": ["\n"], "top_k": 3, "min_p": 0.1
        }))
        .unwrap();
        assert_eq!(g.max_tokens, Some(5));
        assert!(g.sampling.is_greedy());
        assert_eq!(g.sampling.seed, Some(7));
        assert_eq!(g.sampling.repeat_last_n, 2048);
        assert_eq!(g.sampling.top_k, 3);
        assert_eq!(g.sampling.min_p, 0.1);
        assert_eq!(g.stop, vec!["\n".to_string()]);
        for unlimited in [-1, -2, 0] {
            assert_eq!(
                run(json!({"num_predict": unlimited})).unwrap().max_tokens,
                None
            );
        }
        assert_eq!(run(json!({"seed": -1})).unwrap().sampling.seed, None);
    }

    #[test]
    fn bad_options_are_400s() {
        for bad in [
            json!({"num_predict": -3}),
            json!({"repeat_last_n": -2}),
            json!({"temperature": "hot"}),
            json!({"top_p": 2}),
            json!({"mirostat": 1}),
            json!({"typical_p": 0.5}),
        ] {
            let e = run(bad.clone()).unwrap_err();
            assert_eq!(e.0.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        // Accepted and without effect.
        assert!(run(json!({"num_ctx": 99999, "num_gpu": 1, "unknown": true})).is_ok());
    }
}
