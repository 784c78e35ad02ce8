use crate::{PromptImage, ReasoningSpec, TokenId};
use serde::{Deserialize, Serialize};

/// How the next token is chosen. Defaults follow llama-server's (temperature 0.8,
/// top_k 40, top_p 0.95, min_p 0.05, no penalties), which is what a user of an
/// OpenAI-compatible local server expects when a field is omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 (or below) means greedy: always the most likely token.
    pub temperature: f32,
    /// 1.0 disables nucleus sampling.
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: i32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the repetition penalty.
    pub repeat_penalty: f32,
    /// How many of the last tokens the penalties look at.
    pub repeat_last_n: i32,
    /// 0.0 disables.
    pub presence_penalty: f32,
    /// 0.0 disables.
    pub frequency_penalty: f32,
    /// None picks a random seed.
    pub seed: Option<u32>,
    /// Added to the logits of the given tokens before sampling (`f32::NEG_INFINITY` bans).
    #[serde(with = "crate::nonfinite::bias")]
    pub logit_bias: Vec<(TokenId, f32)>,
    /// Never pick an end-of-generation token: run to `max_tokens` or the context's end
    /// (llama-server's `ignore_eos`, for benchmarks).
    pub ignore_eos: bool,
    /// A shape the output must have, enforced while sampling (`None`: free text).
    pub format: Option<OutputFormat>,
}

/// A constraint on the generated text, enforced token by token by the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    /// One JSON object (Ollama's `format: "json"`, OpenAI's `json_object`).
    JsonObject,
    /// A GBNF grammar (llama.cpp's syntax) with root rule `root`, validated by the front end
    /// (`minerva_grammar::validate`) before a backend sees it: a JSON schema compiled to a
    /// grammar, a request's own `grammar`, or a tool-call grammar.
    Grammar(GrammarSpec),
}

/// A grammar and when it starts to constrain the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrammarSpec {
    /// The grammar text; its root rule is `root`.
    pub gbnf: String,
    /// Lazy grammars: with no patterns and no tokens the grammar constrains from the first
    /// token. Otherwise the output is free until one of these regular expressions (llama.cpp's
    /// trigger patterns, ECMAScript syntax) matches the whole output so far; the grammar is
    /// then fed the text from the start of the pattern's first non-empty capture group (the
    /// whole match when there is none) and constrains what follows. These come from Minerva's
    /// own code, never from a request: an invalid pattern aborts llama.cpp.
    pub trigger_patterns: Vec<String>,
    /// Or until one of these tokens is sampled; the grammar is fed from that token on.
    pub trigger_tokens: Vec<TokenId>,
}

impl GrammarSpec {
    /// A grammar that constrains from the first token.
    pub fn eager(gbnf: impl Into<String>) -> Self {
        GrammarSpec {
            gbnf: gbnf.into(),
            trigger_patterns: Vec::new(),
            trigger_tokens: Vec::new(),
        }
    }

    /// True when the grammar waits for a trigger.
    pub fn is_lazy(&self) -> bool {
        !self.trigger_patterns.is_empty() || !self.trigger_tokens.is_empty()
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            logit_bias: Vec::new(),
            ignore_eos: false,
            format: None,
        }
    }
}

impl SamplingParams {
    /// True when the sampler always takes the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// Which log-probabilities to report for each generated token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogprobRequest {
    /// How many alternatives (most likely first) to report beside the chosen token.
    pub top: usize,
}

/// One generation: the prompt as token ids and how to continue it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: Vec<TokenId>,
    pub sampling: SamplingParams,
    /// Stop after this many generated tokens (`None`: until end of generation or context).
    pub max_tokens: Option<u32>,
    /// Report log-probabilities (computed from the raw logits, before sampling).
    pub logprobs: Option<LogprobRequest>,
    /// Reuse (and leave behind) computed prompt KV: the longest cached prefix of `prompt` is not
    /// computed again. `false` computes the whole prompt (llama-server's `cache_prompt`).
    pub cache_prompt: bool,
    /// The reply's reasoning block, for a model that thinks: its budget is enforced, and
    /// `sampling.format` constrains only the answer after the block. `None`: the reply is
    /// all answer, constrained from its first token.
    #[serde(default)]
    pub reasoning: Option<ReasoningSpec>,
    /// Images among the prompt's tokens, in order of `at` (empty: a text prompt). A backend
    /// without vision refuses a request with any (`InvalidRequest`).
    #[serde(default)]
    pub images: Vec<PromptImage>,
}
