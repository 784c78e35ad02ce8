//! Several choices for one prompt (`n` > 1): the prompt is rendered and tokenized once, the
//! first generation reads it, and the others start once its KV is in the model's cache, so a
//! backend with a prompt cache (llama.cpp) copies it instead of computing it again.

use crate::{start, CompletionJob, CompletionStream, Engine};
use minerva_core::{CoreError, Result, Usage};

/// The most choices one request may ask for.
pub const MAX_CHOICES: usize = 16;

/// The seed of choice `index` when the request gave `seed`: `seed + index`, wrapping below
/// `u32::MAX`, so that choices differ when sampling and a request is reproducible.
pub fn choice_seed(seed: Option<u32>, index: usize) -> Option<u32> {
    seed.map(|s| ((u64::from(s) + index as u64) % u64::from(u32::MAX)) as u32)
}

/// The usage of a request answered with several choices, as OpenAI counts it: the prompt once
/// (its tokens and cached tokens as the first choice computed it), the completion tokens of
/// every choice.
pub fn merged_usage(usages: &[Usage]) -> Usage {
    let Some(first) = usages.first() else {
        return Usage::default();
    };
    Usage {
        completion_tokens: usages.iter().map(|u| u.completion_tokens).sum(),
        generation_ms: usages.iter().map(|u| u.generation_ms).fold(0.0, f64::max),
        ..*first
    }
}

impl Engine {
    /// `n` generations of the same prompt (choices `0..n`, in order). The prompt is prepared
    /// once; choice 0 starts first, and the others start when it has read the prompt (its
    /// first token came), so that their prompt comes from choice 0's KV. With a `seed`,
    /// choice `i` samples with [`choice_seed`]. Choices beyond the model's free sequences wait
    /// for one, as separate requests do. An error before choice 0's first token (a queue
    /// timeout) is returned, and the started choices are dropped (cancelled).
    pub async fn complete_n(&self, job: CompletionJob, n: usize) -> Result<Vec<CompletionStream>> {
        if n == 0 || n > MAX_CHOICES {
            return Err(CoreError::invalid(
                format!("'n' must be between 1 and {MAX_CHOICES}, got {n}"),
                Some("n"),
            ));
        }
        let (lease, prepared) = self.prepare(&job).await?;
        let prompt_tokens = prepared.tokens.len();
        let mut streams = Vec::with_capacity(n);
        let leases: Vec<_> = (1..n).map(|_| lease.share()).collect();
        let mut first = start(lease, prepared.clone(), &job, job.sampling.seed).await?;
        if n > 1 {
            first.prompt_read().await?;
        }
        streams.push(first);
        for (i, lease) in leases.into_iter().enumerate() {
            let seed = choice_seed(job.sampling.seed, i + 1);
            streams.push(start(lease, prepared.clone(), &job, seed).await?);
        }
        tracing::debug!(model = %job.model, n, prompt_tokens, "choices started");
        Ok(streams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Prompt, TextEvent};
    use minerva_core::{
        GenEvent, GenerateRequest, GenerationStream, Model, ModelFile, ModelInfo, SamplingParams,
        TokenId, TokenOut,
    };
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

    type Sender = UnboundedSender<Result<GenEvent>>;

    /// A model whose generations the test drives by hand, recording each request's seed.
    struct Fake {
        info: ModelInfo,
        calls: Mutex<Vec<(Option<u32>, Sender)>>,
    }

    impl Model for Fake {
        fn info(&self) -> &ModelInfo {
            &self.info
        }
        fn tokenize(&self, _: &str, _: bool, _: bool) -> Result<Vec<TokenId>> {
            Ok(vec![1])
        }
        fn token_bytes(&self, _: TokenId, _: bool) -> Result<Vec<u8>> {
            Ok(Vec::new())
        }
        fn render_chat(
            &self,
            _: &[serde_json::Value],
            _: Option<&serde_json::Value>,
            _: &serde_json::Map<String, serde_json::Value>,
            _: bool,
        ) -> Result<String> {
            Ok(String::new())
        }
        fn generate(&self, request: GenerateRequest) -> Result<GenerationStream> {
            let (tx, rx) = unbounded_channel();
            let mut calls = self
                .calls
                .lock()
                .map_err(|_| CoreError::Backend("lock".into()))?;
            calls.push((request.sampling.seed, tx));
            Ok(rx)
        }
    }

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            info: ModelInfo {
                id: "fake".into(),
                backend: "fake".into(),
                path: "fake".into(),
                n_ctx: 64,
                n_ctx_train: 64,
                n_vocab: 8,
                add_bos: false,
                chat_template: String::new(),
                default_template: false,
                file: ModelFile::default(),
                embedding: None,
                fim: Default::default(),
                vision: None,
                cpu_variant: None,
            },
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(model: &Fake) -> Vec<(Option<u32>, Sender)> {
        model.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn later_choices_start_once_the_first_read_the_prompt() {
        let model = fake();
        let engine = Engine::new([Arc::clone(&model) as Arc<dyn Model>]);
        let job = CompletionJob {
            model: "fake".into(),
            prompt: Prompt::Tokens(vec![1, 2, 3]),
            sampling: SamplingParams {
                seed: Some(7),
                ..SamplingParams::default()
            },
            max_tokens: Some(4),
            stop: Vec::new(),
            logprobs: None,
            cache_prompt: true,
            tools: Default::default(),
            reasoning: Default::default(),
            keep_alive: None,
            images: Vec::new(),
        };
        let task = tokio::spawn(async move { engine.complete_n(job, 3).await });
        for _ in 0..200 {
            if !calls(&model).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            calls(&model).len(),
            1,
            "choice 1 must wait for choice 0's prompt"
        );
        let token = TokenOut {
            id: 5,
            bytes: b"a".to_vec(),
            logprob: None,
            top_logprobs: Vec::new(),
        };
        calls(&model)[0].1.send(Ok(GenEvent::Token(token))).ok();
        let mut streams = task.await.unwrap().unwrap();
        assert_eq!(streams.len(), 3);
        let seeds: Vec<_> = calls(&model).iter().map(|(s, _)| *s).collect();
        assert_eq!(seeds, [Some(7), Some(8), Some(9)]);
        // The event read ahead is not lost.
        match streams[0].next().await {
            Some(Ok(TextEvent::Delta { text, .. })) => assert_eq!(text, "a"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn n_out_of_range_is_refused() {
        let engine = Engine::new([fake() as Arc<dyn Model>]);
        let job = CompletionJob {
            model: "fake".into(),
            prompt: Prompt::Tokens(vec![1]),
            sampling: SamplingParams::default(),
            max_tokens: None,
            stop: Vec::new(),
            logprobs: None,
            cache_prompt: true,
            tools: Default::default(),
            reasoning: Default::default(),
            keep_alive: None,
            images: Vec::new(),
        };
        assert!(engine.complete_n(job.clone(), 0).await.is_err());
        assert!(engine.complete_n(job, MAX_CHOICES + 1).await.is_err());
    }

    #[test]
    fn seeds_and_usage() {
        assert_eq!(choice_seed(None, 3), None);
        assert_eq!(choice_seed(Some(u32::MAX - 1), 1), Some(0));
        let usage = |completion, cached| Usage {
            prompt_tokens: 10,
            completion_tokens: completion,
            cached_tokens: cached,
            prompt_ms: 1.0,
            generation_ms: completion as f64,
        };
        let merged = merged_usage(&[usage(3, 0), usage(5, 9)]);
        assert_eq!(merged.prompt_tokens, 10);
        assert_eq!(merged.completion_tokens, 8);
        assert_eq!(merged.cached_tokens, 0);
        assert_eq!(merged.generation_ms, 5.0);
    }
}
