//! A generation as text: whole characters, cut at stop strings, with the tokens behind each piece.

use minerva_core::text::TextAssembler;
use minerva_core::{
    CoreError, FinishReason, GenEvent, GenerationStream, Result, TokenId, TokenOut, Usage,
};
use std::time::Instant;

/// What a [`CompletionStream`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum TextEvent {
    /// New text, and the tokens whose bytes it completes (for log-probabilities).
    Delta { text: String, tokens: Vec<TokenOut> },
    /// The end: why, and the counts.
    Done { reason: FinishReason, usage: Usage },
}

/// Text of one generation. Dropping it cancels the generation in the backend.
pub struct CompletionStream {
    inner: Option<GenerationStream>,
    text: TextAssembler,
    held_tokens: Vec<TokenOut>,
    prompt_tokens: usize,
    generated: usize,
    started: Instant,
    first_token: Option<Instant>,
    queued: Option<TextEvent>,
    /// The backend's first event, read ahead by [`CompletionStream::prompt_read`].
    first: Option<Option<Result<GenEvent>>>,
    /// Keeps the model loaded while the stream lives.
    lease: Option<crate::Lease>,
    /// The tool-call format and the tools the reply may call.
    tools: (minerva_chat::ToolFormat, Vec<String>),
    /// The reasoning block to split off the reply.
    reasoning: Option<minerva_core::ReasoningSpec>,
    /// The stop string that ended the generation, if one did.
    stop_sequence: Option<String>,
    /// The prompt's token ids, then those generated ([`CompletionStream::context`]).
    context: Vec<TokenId>,
}

impl CompletionStream {
    pub(crate) fn new(inner: GenerationStream, stop: Vec<String>, prompt_tokens: usize) -> Self {
        CompletionStream {
            inner: Some(inner),
            text: TextAssembler::new(stop),
            held_tokens: Vec::new(),
            prompt_tokens,
            generated: 0,
            started: Instant::now(),
            first_token: None,
            queued: None,
            first: None,
            lease: None,
            tools: (minerva_chat::ToolFormat::Generic, Vec::new()),
            reasoning: None,
            stop_sequence: None,
            context: Vec::new(),
        }
    }

    /// Sets the prompt's token ids, which [`CompletionStream::context`] starts with.
    pub(crate) fn with_prompt_ids(mut self, ids: Vec<TokenId>) -> Self {
        self.context = ids;
        self
    }

    /// The prompt's token ids and those generated so far, stop strings included: Ollama's
    /// `context`, which a later request sends back to continue ([`crate::Prompt::Continue`]).
    pub fn context(&self) -> &[TokenId] {
        &self.context
    }

    /// Sets the tool-call format of the model's template and the tools the reply may call.
    pub(crate) fn with_tools(
        mut self,
        format: minerva_chat::ToolFormat,
        names: Vec<String>,
    ) -> Self {
        self.tools = (format, names);
        self
    }

    /// The reply's reasoning block, to be split off (`None`: the reply is all answer, or the
    /// request asked for the raw text).
    pub(crate) fn with_reasoning(mut self, reasoning: Option<minerva_core::ReasoningSpec>) -> Self {
        self.reasoning = reasoning;
        self
    }

    /// The stop string that ended the generation (known once `Done` came with
    /// [`FinishReason::Stop`]); `None` when it ended otherwise.
    pub fn stop_sequence(&self) -> Option<&str> {
        self.stop_sequence.as_deref()
    }

    /// A parser for this generation's reply: its reasoning block split off, then its model's
    /// tool-call format and the tools the request offered (none when `tool_choice` was
    /// `none`).
    pub fn reply_parser(&self) -> minerva_chat::ChatParser {
        minerva_chat::ChatParser::new(
            self.reasoning.as_ref(),
            minerva_chat::ReplyParser::new(self.tools.0, self.tools.1.clone()),
        )
    }

    /// Holds `lease` (the model stays loaded) for as long as the stream lives.
    pub(crate) fn holding(mut self, lease: crate::Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The name of the model generating, as it was requested.
    pub fn model_name(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.name())
    }

    /// Prompt length in tokens.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// The next event; `None` after `Done` or an error.
    pub async fn next(&mut self) -> Option<Result<TextEvent>> {
        if let Some(event) = self.queued.take() {
            return Some(Ok(event));
        }
        loop {
            let read = match self.first.take() {
                Some(read) => read,
                None => self.inner.as_mut()?.recv().await,
            };
            let event = match read {
                Some(event) => event,
                None => {
                    self.inner = None;
                    return Some(Err(CoreError::Backend(
                        "the generation ended without a result".into(),
                    )));
                }
            };
            match event {
                Err(e) => {
                    self.inner = None;
                    return Some(Err(e));
                }
                Ok(GenEvent::Embedding { .. }) => {
                    self.inner = None;
                    return Some(Err(CoreError::Backend(
                        "the backend sent an embedding for a generation".into(),
                    )));
                }
                Ok(GenEvent::Token(token)) => {
                    self.generated += 1;
                    self.context.push(token.id);
                    self.first_token.get_or_insert_with(Instant::now);
                    let pushed = self.text.push(&token.bytes);
                    self.held_tokens.push(token);
                    if pushed.stopped {
                        // Dropping the backend's stream stops it at the next token.
                        self.inner = None;
                        self.stop_sequence = pushed.matched;
                        self.held_tokens.clear();
                        let done = TextEvent::Done {
                            reason: FinishReason::Stop,
                            usage: self.own_usage(),
                        };
                        if pushed.text.is_empty() {
                            return Some(Ok(done));
                        }
                        self.queued = Some(done);
                        return Some(Ok(TextEvent::Delta {
                            text: pushed.text,
                            tokens: Vec::new(),
                        }));
                    }
                    if !pushed.text.is_empty() {
                        return Some(Ok(TextEvent::Delta {
                            text: pushed.text,
                            tokens: std::mem::take(&mut self.held_tokens),
                        }));
                    }
                }
                Ok(GenEvent::Done { reason, usage }) => {
                    self.inner = None;
                    let done = TextEvent::Done { reason, usage };
                    let rest = self.text.finish();
                    if rest.is_empty() && self.held_tokens.is_empty() {
                        return Some(Ok(done));
                    }
                    self.queued = Some(done);
                    return Some(Ok(TextEvent::Delta {
                        text: rest,
                        tokens: std::mem::take(&mut self.held_tokens),
                    }));
                }
            }
        }
    }

    /// Waits until the backend has read the prompt: its first event (the first token, or the
    /// end) has come, so the prompt's KV is in the model's cache. The event is kept for
    /// [`CompletionStream::next`]. An error before that (a queue timeout) is returned.
    pub(crate) async fn prompt_read(&mut self) -> Result<()> {
        if self.first.is_none() {
            let Some(inner) = self.inner.as_mut() else {
                return Ok(());
            };
            match inner.recv().await {
                Some(Err(e)) => {
                    self.inner = None;
                    return Err(e);
                }
                read => self.first = Some(read),
            }
        }
        Ok(())
    }

    /// Usage when the engine itself ended the generation (a stop string).
    fn own_usage(&self) -> Usage {
        let first = self.first_token.unwrap_or(self.started);
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.generated,
            cached_tokens: 0,
            prompt_ms: first.duration_since(self.started).as_secs_f64() * 1e3,
            generation_ms: first.elapsed().as_secs_f64() * 1e3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn token(id: i32, bytes: &[u8]) -> Result<GenEvent> {
        Ok(GenEvent::Token(TokenOut {
            id,
            bytes: bytes.to_vec(),
            logprob: None,
            top_logprobs: Vec::new(),
        }))
    }

    #[tokio::test]
    async fn stop_string_ends_stream_and_cancels_backend() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(token(1, b"Hello")).ok();
        tx.send(token(2, b" wor")).ok();
        tx.send(token(3, b"ld!")).ok();
        let mut s = CompletionStream::new(rx, vec!["world".into()], 3);
        let mut text = String::new();
        let mut reason = None;
        while let Some(ev) = s.next().await {
            match ev.unwrap() {
                TextEvent::Delta { text: t, .. } => text.push_str(&t),
                TextEvent::Done { reason: r, usage } => {
                    reason = Some(r);
                    assert_eq!(usage.completion_tokens, 3);
                }
            }
        }
        assert_eq!(text, "Hello ");
        assert_eq!(reason, Some(FinishReason::Stop));
        assert!(tx.is_closed(), "the backend must see the cancellation");
    }

    #[tokio::test]
    async fn split_character_tokens_travel_with_the_completed_text() {
        let (tx, rx) = mpsc::unbounded_channel();
        let bytes = "é".as_bytes();
        tx.send(token(1, &bytes[..1])).ok();
        tx.send(token(2, &bytes[1..])).ok();
        tx.send(Ok(GenEvent::Done {
            reason: FinishReason::Length,
            usage: Usage::default(),
        }))
        .ok();
        let mut s = CompletionStream::new(rx, vec![], 1);
        match s.next().await.unwrap().unwrap() {
            TextEvent::Delta { text, tokens } => {
                assert_eq!(text, "é");
                assert_eq!(tokens.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            s.next().await.unwrap().unwrap(),
            TextEvent::Done {
                reason: FinishReason::Length,
                ..
            }
        ));
        assert!(s.next().await.is_none());
    }
}
