//! Embeddings: tokenize, truncate or refuse, compute on the model's embedding context, and
//! normalise as the API asks.

use crate::{blocking, Engine, KeepAlive};
use minerva_core::{CoreError, EmbedRequest, GenEvent, Result, TokenId};
use std::sync::Arc;

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// Text, tokenized as llama-server does for embeddings: special tokens parsed, BOS/EOS
    /// added as the model's metadata asks.
    Text(String),
    /// Token ids, used as they are (checked against the vocabulary).
    Tokens(Vec<TokenId>),
}

/// An embeddings request, free of any wire format.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    pub model: String,
    pub inputs: Vec<EmbedInput>,
    /// An input longer than the model's embedding window keeps its first tokens (`true`, as
    /// Ollama's `truncate`) or is refused with [`CoreError::ContextOverflow`] (`false`).
    pub truncate: bool,
    /// Scale each vector to unit Euclidean length (as OpenAI's and Ollama's `/api/embed`
    /// vectors are; llama-server's `embd_normalize: 2`).
    pub normalize: bool,
    /// The vector length the client asked for. Only the model's own length is accepted: no
    /// GGUF says a model was trained for shortened (Matryoshka) vectors, and cutting the
    /// vector of a model that was not gives vectors that compare badly.
    pub dimensions: Option<usize>,
    /// How long the model stays loaded after this request (`None`: the server's default).
    pub keep_alive: Option<KeepAlive>,
}

/// The vectors, in input order, and the tokens they took.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of all inputs, after truncation.
    pub prompt_tokens: usize,
}

impl Engine {
    /// Computes one embedding per input. Refuses (before computing anything) an empty input
    /// list, an empty input, token ids outside the vocabulary, a `dimensions` other than the
    /// model's and, without `truncate`, an input over the window; a model that cannot embed
    /// is [`CoreError::Unsupported`].
    pub async fn embed(&self, job: EmbedJob) -> Result<Embeddings> {
        if job.inputs.is_empty() {
            return Err(CoreError::invalid(
                "'input' must contain at least one input",
                Some("input"),
            ));
        }
        let lease = self.model_with(Some(&job.model), job.keep_alive).await?;
        let model = Arc::clone(lease.model());
        let Some(info) = model.info().embedding else {
            return Err(CoreError::Unsupported(format!(
                "model '{}' ({} backend) does not compute embeddings",
                lease.name(),
                model.info().backend
            )));
        };
        if let Some(asked) = job.dimensions {
            if asked != info.dimensions {
                return Err(CoreError::invalid(
                    format!(
                        "model '{}' gives {}-dimensional embeddings ({asked} asked for); 'dimensions' must be {} or left out (nothing says the model was trained for shortened vectors)",
                        lease.name(),
                        info.dimensions,
                        info.dimensions
                    ),
                    Some("dimensions"),
                ));
            }
        }
        let inputs = job.inputs;
        let truncate = job.truncate;
        let m = Arc::clone(&model);
        let request = blocking(move || {
            let mut tokenized = Vec::with_capacity(inputs.len());
            for input in inputs {
                let mut tokens = match input {
                    EmbedInput::Text(text) => m.tokenize(&text, true, true)?,
                    EmbedInput::Tokens(tokens) => tokens,
                };
                if tokens.is_empty() {
                    return Err(CoreError::invalid(
                        "an input to embed is empty",
                        Some("input"),
                    ));
                }
                if tokens.len() > info.n_ctx {
                    if !truncate {
                        return Err(CoreError::ContextOverflow {
                            prompt_tokens: tokens.len(),
                            n_ctx: info.n_ctx,
                        });
                    }
                    tokens.truncate(info.n_ctx);
                }
                tokenized.push(tokens);
            }
            Ok(EmbedRequest { inputs: tokenized })
        })
        .await?;
        let n = request.inputs.len();
        let m = Arc::clone(&model);
        let mut stream = blocking(move || m.embed(request)).await?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n];
        let usage = loop {
            match stream.recv().await {
                Some(Ok(GenEvent::Embedding { index, vector })) => {
                    let slot = vectors.get_mut(index).ok_or_else(|| {
                        CoreError::Backend(format!("the backend sent embedding {index} of {n}"))
                    })?;
                    *slot = Some(vector);
                }
                Some(Ok(GenEvent::Done { usage, .. })) => break usage,
                Some(Ok(GenEvent::Token(_))) => {
                    return Err(CoreError::Backend(
                        "the backend sent a token for an embeddings request".into(),
                    ))
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(CoreError::Backend(
                        "the embeddings request ended without a result".into(),
                    ))
                }
            }
        };
        let mut out = Vec::with_capacity(n);
        for (i, v) in vectors.into_iter().enumerate() {
            let mut v = v.ok_or_else(|| {
                CoreError::Backend(format!("the backend sent no embedding for input {i}"))
            })?;
            if job.normalize {
                normalize(&mut v);
            }
            out.push(v);
        }
        Ok(Embeddings {
            vectors: out,
            prompt_tokens: usage.prompt_tokens,
        })
    }
}

/// Scales `v` to unit Euclidean length (a zero vector stays zero), as llama.cpp's
/// `common_embd_normalize(.., 2)`.
pub fn normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
