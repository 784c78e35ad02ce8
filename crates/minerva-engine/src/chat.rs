//! A chat reply as content and tool calls: [`CompletionStream`] text run through the reply
//! parser of the model's tool-call format.

use crate::{CompletionStream, TextEvent};
use minerva_chat::{ChatParser, ReplyEvent};
use minerva_core::{FinishReason, Result, TokenOut, Usage};
use std::collections::VecDeque;
use std::future::Future;

/// Something that yields a generation's text events: a [`CompletionStream`], or a wrapper
/// around one (the server's metering).
pub trait TextSource: Send {
    /// The next event; `None` after `Done` or an error.
    fn next_text(&mut self) -> impl Future<Output = Option<Result<TextEvent>>> + Send;
}

impl TextSource for CompletionStream {
    fn next_text(&mut self) -> impl Future<Output = Option<Result<TextEvent>>> + Send {
        self.next()
    }
}

/// What a [`ChatStream`] yields, in the order the model wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Text for the user, and the tokens whose bytes it completes (for log-probabilities;
    /// tokens of tool-call and reasoning text are not reported).
    Content { text: String, tokens: Vec<TokenOut> },
    /// Text of the reasoning block (`<think>`…`</think>`, tags and surrounding whitespace
    /// left out).
    Reasoning { text: String },
    /// A tool call begins: its index in this reply, its id (`call_…`) and the function name.
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// A piece of the call's arguments (raw JSON text; the pieces joined are the whole).
    ToolCallArgs { index: usize, delta: String },
    /// The call is complete.
    ToolCallEnd { index: usize },
    /// Tokens whose text went into a tool call or the reasoning, not the content: only for
    /// APIs that give every token's log-probability (Ollama's); others skip it.
    Hidden { tokens: Vec<TokenOut> },
    /// The end. `reason` is [`FinishReason::ToolCalls`] when the reply made calls and ended
    /// normally.
    Done { reason: FinishReason, usage: Usage },
}

/// A chat reply, parsed for tool calls as it streams. Dropping it cancels the generation.
pub struct ChatStream<S = CompletionStream> {
    inner: S,
    parser: ChatParser,
    queued: VecDeque<ChatEvent>,
    finished: bool,
}

impl<S: TextSource> ChatStream<S> {
    /// Parses `inner` with `parser` (see [`CompletionStream::reply_parser`]).
    pub fn new(inner: S, parser: ChatParser) -> Self {
        ChatStream {
            inner,
            parser,
            queued: VecDeque::new(),
            finished: false,
        }
    }

    /// The source underneath.
    pub fn source(&self) -> &S {
        &self.inner
    }

    /// Mutable access to the source underneath (e.g. to wait for its start).
    pub fn source_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The next event; `None` after `Done` or an error.
    pub async fn next(&mut self) -> Option<Result<ChatEvent>> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            match self.inner.next_text().await? {
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Ok(TextEvent::Delta { text, tokens }) => {
                    let events = self.parser.push(&text);
                    self.queue(events, tokens);
                }
                Ok(TextEvent::Done { reason, usage }) => {
                    let events = self.parser.finish();
                    self.queue(events, Vec::new());
                    let reason = if reason == FinishReason::Stop && self.parser.calls() > 0 {
                        FinishReason::ToolCalls
                    } else {
                        reason
                    };
                    self.queued.push_back(ChatEvent::Done { reason, usage });
                    self.finished = true;
                }
            }
        }
    }

    fn queue(&mut self, events: Vec<ReplyEvent>, mut tokens: Vec<TokenOut>) {
        for event in events {
            self.queued.push_back(match event {
                ReplyEvent::Content(text) => ChatEvent::Content {
                    text,
                    tokens: std::mem::take(&mut tokens),
                },
                ReplyEvent::ToolCallStart { index, id, name } => {
                    ChatEvent::ToolCallStart { index, id, name }
                }
                ReplyEvent::ToolCallArgs { index, delta } => {
                    ChatEvent::ToolCallArgs { index, delta }
                }
                ReplyEvent::ToolCallEnd { index } => ChatEvent::ToolCallEnd { index },
                ReplyEvent::Reasoning(text) => ChatEvent::Reasoning { text },
            });
        }
        if !tokens.is_empty() {
            self.queued.push_back(ChatEvent::Hidden { tokens });
        }
    }

    /// Reads the whole reply.
    pub async fn collect(&mut self) -> Result<ChatReply> {
        let mut reply = ChatReply::default();
        while let Some(event) = self.next().await {
            match event? {
                ChatEvent::Content { text, tokens } => {
                    reply.content.push_str(&text);
                    reply.all_tokens.extend(tokens.iter().cloned());
                    reply.tokens.extend(tokens);
                }
                ChatEvent::Hidden { tokens } => reply.all_tokens.extend(tokens),
                ChatEvent::Reasoning { text } => reply.reasoning.push_str(&text),
                ChatEvent::ToolCallStart { id, name, .. } => reply.tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: String::new(),
                }),
                ChatEvent::ToolCallArgs { index, delta } => {
                    if let Some(call) = reply.tool_calls.get_mut(index) {
                        call.arguments.push_str(&delta);
                    }
                }
                ChatEvent::ToolCallEnd { .. } => {}
                ChatEvent::Done { reason, usage } => {
                    reply.reason = Some(reason);
                    reply.usage = usage;
                }
            }
        }
        Ok(reply)
    }
}

/// One complete tool call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as generated (JSON text).
    pub arguments: String,
}

/// A whole chat reply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatReply {
    pub content: String,
    /// The reasoning block's text (empty when there was none, or it was not split off).
    pub reasoning: String,
    /// The tokens behind `content` (for log-probabilities).
    pub tokens: Vec<TokenOut>,
    /// Every token of the reply in order, those behind tool calls and reasoning too.
    pub all_tokens: Vec<TokenOut>,
    pub tool_calls: Vec<ToolCall>,
    /// Always set once the reply is read.
    pub reason: Option<FinishReason>,
    pub usage: Usage,
}
