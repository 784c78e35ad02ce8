//! llama.cpp's sampler chain built from [`SamplingParams`], in the order llama.cpp's own
//! `common_sampler` uses: logit bias, penalties, top-k, top-p, min-p, temperature, then a
//! seeded draw (or greedy when the temperature is 0). An output format's grammar runs before
//! the chain.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{CoreError, SamplingParams};

/// llama.cpp's "pick a random seed" value.
const RANDOM_SEED: u32 = u32::MAX;

/// What one sequence samples with: the chain, and the output format's grammar, kept apart as
/// llama.cpp's own `common_sampler` does: the prompt is fed to the chain's penalties only
/// (a grammar would reject it), and the grammar masks the candidates before the chain runs.
pub struct Samplers {
    pub chain: LlamaSampler,
    pub grammar: Option<LlamaSampler>,
}

/// The samplers for `params`.
pub fn build(params: &SamplingParams, model: &LlamaModel) -> Result<Samplers, CoreError> {
    let grammar = match &params.format {
        Some(format) => Some(crate::grammar::sampler(format, model)?),
        None => None,
    };
    Ok(Samplers {
        chain: chain(params, model),
        grammar,
    })
}

fn chain(params: &SamplingParams, model: &LlamaModel) -> LlamaSampler {
    let n_vocab = model.vocab().n_tokens();
    let mut chain = Vec::new();
    if !params.logit_bias.is_empty() {
        let biases: Vec<LlamaLogitBias> = params
            .logit_bias
            .iter()
            .map(|&(id, bias)| LlamaLogitBias::new(LlamaToken(id), bias))
            .collect();
        chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
    }
    let penalised = params.repeat_penalty != 1.0
        || params.presence_penalty != 0.0
        || params.frequency_penalty != 0.0;
    if penalised {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            params.repeat_last_n,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if params.is_greedy() {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(params.top_k));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(params.seed.unwrap_or(RANDOM_SEED)));
    }
    LlamaSampler::chain_simple(chain)
}
