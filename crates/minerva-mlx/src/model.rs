//! A Hugging Face model served by the MLX worker: tokenizer and chat template on Minerva's
//! side (the same front end as GGUF models), generation in the child.

use crate::tokenizer::HfTokenizer;
use crate::worker::{Worker, WorkerStats};
use minerva_core::{
    CoreError, GenerateRequest, GenerationStream, Model, ModelInfo, ModelStatus, OutputFormat,
    Result, SamplingParams, SlotState, SlotStatus, TokenId,
};
use minerva_template::{ChatTemplate, RenderOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub struct MlxModel {
    pub(crate) info: ModelInfo,
    pub(crate) tokenizer: Arc<HfTokenizer>,
    pub(crate) template: ChatTemplate,
    pub(crate) bos: Option<TokenId>,
    pub(crate) eog: Vec<TokenId>,
    pub(crate) worker: Worker,
}

/// mlx-lm's sampler settings for `s`, or the parameter it cannot honour.
pub(crate) fn sampling_json(s: &SamplingParams) -> Result<Value> {
    // No grammar-constrained sampling in mlx-lm: JSON mode, schemas and grammars are refused.
    match &s.format {
        None => {}
        Some(OutputFormat::JsonObject) => {
            return Err(CoreError::invalid(
                "the MLX backend cannot constrain output to JSON (response_format/format)",
                Some("response_format"),
            ))
        }
        Some(OutputFormat::Grammar(_)) => {
            return Err(CoreError::invalid(
                "the MLX backend cannot constrain output to a JSON schema or grammar (response_format/json_schema/grammar/format)",
                Some("response_format"),
            ))
        }
    }
    let greedy = s.is_greedy();
    let opt = |on: bool, v: f32| if on { json!(v) } else { Value::Null };
    // llama.cpp's -1 is "the whole context"; mlx-lm takes a count.
    let window = if s.repeat_last_n < 0 {
        1 << 20
    } else {
        s.repeat_last_n.max(1)
    };
    Ok(json!({
        "temperature": if greedy { 0.0 } else { s.temperature },
        "top_p": if greedy { 1.0 } else { s.top_p },
        "top_k": if greedy { 0 } else { s.top_k.max(0) },
        "min_p": if greedy { 0.0 } else { s.min_p },
        "repetition_penalty": opt(s.repeat_penalty != 1.0, s.repeat_penalty),
        "repetition_context_size": window,
        "presence_penalty": opt(s.presence_penalty != 0.0, s.presence_penalty),
        "frequency_penalty": opt(s.frequency_penalty != 0.0, s.frequency_penalty),
        "seed": s.seed,
        // JSON has no infinity: a large negative bias bans as well.
        "logit_bias": s.logit_bias.iter()
            .map(|&(t, b)| json!([t, if b.is_finite() { b } else { -1e9 }]))
            .collect::<Vec<_>>(),
    }))
}

impl MlxModel {
    /// What the worker reports: tokens generated so far (over all requests) and its queue.
    pub fn worker_stats(&self) -> Result<WorkerStats> {
        self.worker.stats(Duration::from_secs(10))
    }
}

impl Model for MlxModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<TokenId>> {
        let mut tokens = Vec::new();
        if add_special && self.info.add_bos {
            tokens.extend(self.bos);
        }
        tokens.extend(self.tokenizer.encode(text, parse_special)?);
        Ok(tokens)
    }

    fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>> {
        self.tokenizer.token_bytes(token, special)
    }

    fn render_chat(
        &self,
        messages: &[Value],
        tools: Option<&Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let opts = RenderOptions {
            add_generation_prompt,
            tools,
            extra: Some(kwargs).filter(|k| !k.is_empty()),
        };
        self.template
            .render(messages, &opts)
            .map_err(|e| CoreError::Template(e.to_string()))
    }

    /// One sequence (requests run one at a time); the others wait in the worker's queue.
    fn status(&self) -> ModelStatus {
        let in_flight = self.worker.in_flight();
        ModelStatus {
            slots: vec![SlotStatus {
                id: 0,
                state: if in_flight > 0 {
                    SlotState::Generating
                } else {
                    SlotState::Idle
                },
                ..SlotStatus::default()
            }],
            queued: in_flight.saturating_sub(1),
            cache: Default::default(),
            kv: Default::default(),
        }
    }

    fn generate(&self, request: GenerateRequest) -> Result<GenerationStream> {
        let n_vocab = self.info.n_vocab;
        if let Some(&bad) = request
            .prompt
            .iter()
            .find(|&&t| t < 0 || t as usize >= n_vocab)
        {
            return Err(CoreError::invalid(
                format!("token id {bad} is outside the vocabulary (0..{n_vocab})"),
                Some("prompt"),
            ));
        }
        if request.prompt.is_empty() {
            return Err(CoreError::invalid("the prompt is empty", Some("prompt")));
        }
        if request.prompt.len() >= self.info.n_ctx {
            return Err(CoreError::ContextOverflow {
                prompt_tokens: request.prompt.len(),
                n_ctx: self.info.n_ctx,
            });
        }
        if request.logprobs.is_some() {
            return Err(CoreError::invalid(
                "the MLX backend does not report log-probabilities",
                Some("logprobs"),
            ));
        }
        let sampling = sampling_json(&request.sampling)?;
        // The context's end is a length stop, as with llama.cpp.
        let room = (self.info.n_ctx - request.prompt.len()) as u32;
        let max_tokens = request.max_tokens.map_or(room, |m| m.min(room));
        let eos: &[TokenId] = if request.sampling.ignore_eos {
            &[]
        } else {
            &self.eog
        };
        // A reasoning budget is enforced by the worker (a logits processor), which needs the
        // closing text's tokens.
        let reasoning = match request.reasoning.as_ref().filter(|r| r.budget.is_some()) {
            Some(spec) => json!({
                "open": spec.open,
                "close": spec.close,
                "inside": spec.inside,
                "budget": spec.budget,
                "forced": self.tokenizer.encode(&spec.forced(), true)?,
            }),
            None => Value::Null,
        };
        // `cache_prompt` is a speed hint only: the worker computes every prompt in full.
        self.worker.generate(json!({
            "prompt": request.prompt,
            "max_tokens": max_tokens,
            "eos": eos,
            "sampling": sampling,
            "reasoning": reasoning,
        }))
    }

    fn process_id(&self) -> Option<u32> {
        Some(self.worker.pid())
    }

    fn supports_grammar(&self) -> bool {
        false
    }

    fn failure(&self) -> Option<String> {
        self.worker.failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_mlx_cannot_do_is_refused_by_name() {
        for format in [
            OutputFormat::JsonObject,
            OutputFormat::Grammar(minerva_core::GrammarSpec::eager("root ::= \"a\"")),
        ] {
            let s = SamplingParams {
                format: Some(format),
                ..SamplingParams::default()
            };
            match sampling_json(&s) {
                Err(CoreError::InvalidRequest { param, .. }) => {
                    assert_eq!(param, Some("response_format"))
                }
                other => panic!("expected InvalidRequest, got {other:?}"),
            }
        }
    }

    #[test]
    fn sampling_maps_to_mlx_lm_names() {
        let s = SamplingParams {
            temperature: 0.7,
            top_k: 20,
            repeat_penalty: 1.1,
            seed: Some(7),
            logit_bias: vec![(5, f32::NEG_INFINITY)],
            ..SamplingParams::default()
        };
        let j = sampling_json(&s).ok();
        let j = j.as_ref();
        assert_eq!(j.map(|j| j["top_k"].clone()), Some(json!(20)));
        assert_eq!(j.map(|j| j["seed"].clone()), Some(json!(7)));
        assert_eq!(j.map(|j| j["presence_penalty"].clone()), Some(Value::Null));
        assert_eq!(j.map(|j| j["logit_bias"].clone()), Some(json!([[5, -1e9]])));
        let greedy = sampling_json(&SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        })
        .ok();
        assert_eq!(greedy.map(|g| g["top_k"].clone()), Some(json!(0)));
    }
}
