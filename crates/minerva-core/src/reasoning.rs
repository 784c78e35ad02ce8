//! Reasoning blocks: the `<think>…</think>` text that reasoning models (DeepSeek-R1 distills,
//! Qwen3, QwQ) write before their answer.
//!
//! [`ReasoningSplitter`] reads a reply as it is generated and tells the block from the answer.
//! The rules are llama.cpp's (`common/chat-parser.cpp`, `try_parse_reasoning`):
//!
//! * a block is open from the start when the prompt opened it (templates that end the
//!   generation prompt with `<think>`), or when the reply begins — after any whitespace — with
//!   the opening tag; an opening tag later in the reply is ordinary text;
//! * the block ends at the first closing tag; whitespace around the reasoning and at the start
//!   of the answer is dropped;
//! * a block that never closes is all reasoning.
//!
//! The same splitter runs in the backend (to enforce a budget and to start a grammar only after
//! the block, see [`ReasoningSpec`]) and in the engine (to report the reasoning apart), so both
//! agree on where the block ends.

use serde::{Deserialize, Serialize};

/// How a generation's reasoning block is delimited and limited (part of a
/// [`GenerateRequest`](crate::GenerateRequest)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningSpec {
    /// The opening tag (`<think>`).
    pub open: String,
    /// The closing tag (`</think>`).
    pub close: String,
    /// The prompt ends inside an open block: the reply starts as reasoning.
    pub inside: bool,
    /// Most tokens the block may take (its opening tag included when the reply writes it).
    /// When it is spent and the block is still open, the backend generates [`Self::forced`]
    /// next instead of sampling (llama-server's `--reasoning-budget`). `None`: no limit.
    pub budget: Option<u32>,
}

impl ReasoningSpec {
    /// `<think>` … `</think>`, the tags every reasoning template Minerva recognises uses.
    pub fn think(inside: bool, budget: Option<u32>) -> Self {
        ReasoningSpec {
            open: "<think>".into(),
            close: "</think>".into(),
            inside,
            budget,
        }
    }

    /// The text that closes a block whose budget is spent: a line break, the closing tag, and
    /// the blank line templates put before the answer.
    pub fn forced(&self) -> String {
        format!("\n{}\n\n", self.close)
    }

    /// A splitter for a reply to a prompt this spec describes.
    pub fn splitter(&self) -> ReasoningSplitter {
        ReasoningSplitter::new(self)
    }
}

/// Where a reply is, as far as its reasoning block goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningState {
    /// Only whitespace so far, or a prefix of the opening tag: a block may still open.
    Undecided,
    /// Inside the block.
    Reasoning,
    /// The block ended, or the reply did not open one: the rest is answer.
    Answer,
}

/// A piece of a reply, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasoningPiece {
    Reasoning(String),
    Answer(String),
}

/// Splits a reply into its reasoning block and its answer, incrementally. Text that could
/// still be part of a tag (or whitespace that may turn out to be trailing) is held back until
/// the next push or [`ReasoningSplitter::finish`].
#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    open: String,
    close: String,
    state: ReasoningState,
    /// Text not yet classified: a possible tag prefix, or whitespace.
    held: String,
    /// Answer text started (leading whitespace of the answer is dropped until then).
    answer_started: bool,
    /// Reasoning text started (its leading whitespace is dropped until then).
    reasoning_started: bool,
}

impl ReasoningSplitter {
    /// A splitter for `spec`'s tags, starting inside the block when `spec.inside`.
    pub fn new(spec: &ReasoningSpec) -> Self {
        ReasoningSplitter {
            open: spec.open.clone(),
            close: spec.close.clone(),
            state: if spec.inside {
                ReasoningState::Reasoning
            } else {
                ReasoningState::Undecided
            },
            held: String::new(),
            answer_started: false,
            reasoning_started: false,
        }
    }

    /// The state after the text pushed so far.
    pub fn state(&self) -> ReasoningState {
        self.state
    }

    /// How many bytes of the closing tag the reply has written at its end so far, inside the
    /// block (`</thi` of `</think>`: 5); 0 outside it.
    pub fn partial_close(&self) -> usize {
        match self.state {
            ReasoningState::Reasoning => partial_suffix(&self.held, &self.close),
            _ => 0,
        }
    }

    /// The text that closes the block from where the reply is: the rest of a closing tag the
    /// reply has begun, or `spec.forced()` (see [`ReasoningSpec::forced`]).
    pub fn closing_text(&self) -> String {
        match self.partial_close() {
            0 => format!("\n{}\n\n", self.close),
            k => format!("{}\n\n", &self.close[k..]),
        }
    }

    /// Feeds the next piece of the reply; returns what can be classified now.
    pub fn push(&mut self, text: &str) -> Vec<ReasoningPiece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                ReasoningState::Undecided => {
                    let trimmed = self.held.trim_start();
                    if trimmed.len() < self.open.len() && self.open.starts_with(trimmed) {
                        break;
                    }
                    if let Some(rest) = trimmed.strip_prefix(self.open.as_str()) {
                        self.held = rest.to_string();
                        self.state = ReasoningState::Reasoning;
                    } else {
                        self.state = ReasoningState::Answer;
                    }
                }
                ReasoningState::Reasoning => {
                    if let Some(at) = self.held.find(self.close.as_str()) {
                        let reasoning = self.held[..at].trim_end().to_string();
                        self.emit_reasoning(reasoning, &mut out);
                        self.held = self.held[at + self.close.len()..].to_string();
                        self.state = ReasoningState::Answer;
                        continue;
                    }
                    // Keep back a possible start of the closing tag and trailing whitespace.
                    let keep = partial_suffix(&self.held, &self.close);
                    let body = &self.held[..self.held.len() - keep];
                    let cut = body.trim_end().len();
                    let ready = self.held[..cut].to_string();
                    self.held = self.held[cut..].to_string();
                    self.emit_reasoning(ready, &mut out);
                    break;
                }
                ReasoningState::Answer => {
                    let mut text = std::mem::take(&mut self.held);
                    if !self.answer_started {
                        text = text.trim_start().to_string();
                        self.answer_started = !text.is_empty();
                    }
                    if !text.is_empty() {
                        out.push(ReasoningPiece::Answer(text));
                    }
                    break;
                }
            }
        }
        out
    }

    /// The end of the reply: what was held back. A block that never closed is all reasoning;
    /// a reply that was only whitespace or a prefix of the opening tag is answer.
    pub fn finish(&mut self) -> Vec<ReasoningPiece> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.state {
            ReasoningState::Reasoning => {
                let text = held.trim_end().to_string();
                self.emit_reasoning(text, &mut out);
            }
            ReasoningState::Undecided | ReasoningState::Answer => {
                let text = if self.answer_started {
                    held
                } else {
                    held.trim_start().to_string()
                };
                if !text.is_empty() {
                    out.push(ReasoningPiece::Answer(text));
                }
            }
        }
        out
    }

    fn emit_reasoning(&mut self, mut text: String, out: &mut Vec<ReasoningPiece>) {
        if !self.reasoning_started {
            text = text.trim_start().to_string();
            self.reasoning_started = !text.is_empty();
        }
        if !text.is_empty() {
            out.push(ReasoningPiece::Reasoning(text));
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(spec: &ReasoningSpec, text: &str, piece: usize) -> (String, String) {
        let mut s = spec.splitter();
        let mut reasoning = String::new();
        let mut answer = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut pieces: Vec<ReasoningPiece> = Vec::new();
        for chunk in chars.chunks(piece) {
            pieces.extend(s.push(&chunk.iter().collect::<String>()));
        }
        pieces.extend(s.finish());
        for p in pieces {
            match p {
                ReasoningPiece::Reasoning(t) => reasoning.push_str(&t),
                ReasoningPiece::Answer(t) => answer.push_str(&t),
            }
        }
        (reasoning, answer)
    }

    fn check(spec: &ReasoningSpec, text: &str, reasoning: &str, answer: &str) {
        for piece in 1..=9 {
            assert_eq!(
                split(spec, text, piece),
                (reasoning.to_string(), answer.to_string()),
                "{text:?} in pieces of {piece}"
            );
        }
    }

    #[test]
    fn a_block_the_reply_opens() {
        // As DeepSeek-R1 distills write it.
        let spec = ReasoningSpec::think(false, None);
        check(
            &spec,
            "<think>\nThe user greets me.\n</think>\n\nHello!",
            "The user greets me.",
            "Hello!",
        );
        check(&spec, "  <think>a < b</think>x", "a < b", "x");
        check(&spec, "<think></think>\n\nOnly this.", "", "Only this.");
    }

    #[test]
    fn a_block_the_prompt_opened() {
        let spec = ReasoningSpec::think(true, None);
        check(
            &spec,
            "Paris is the capital.\n</think>\n\nParis.",
            "Paris is the capital.",
            "Paris.",
        );
        // Never closed: all reasoning.
        check(&spec, "still thinking </thi", "still thinking </thi", "");
    }

    #[test]
    fn no_block() {
        let spec = ReasoningSpec::think(false, None);
        check(
            &spec,
            "Hello <think>not a block</think>",
            "",
            "Hello <think>not a block</think>",
        );
        check(&spec, "\n\n<thin", "", "<thin");
        check(&spec, "<thinking>x", "", "<thinking>x");
        check(&spec, "", "", "");
    }

    #[test]
    fn tags_in_the_answer_stay() {
        let spec = ReasoningSpec::think(true, None);
        check(&spec, "r</think>a</think>b", "r", "a</think>b");
    }

    #[test]
    fn states() {
        let mut s = ReasoningSpec::think(false, None).splitter();
        s.push(" <th");
        assert_eq!(s.state(), ReasoningState::Undecided);
        s.push("ink>");
        assert_eq!(s.state(), ReasoningState::Reasoning);
        s.push("x </think");
        assert_eq!(s.state(), ReasoningState::Reasoning);
        s.push(">");
        assert_eq!(s.state(), ReasoningState::Answer);
    }

    #[test]
    fn closing_from_a_partial_tag() {
        let mut s = ReasoningSpec::think(true, None).splitter();
        s.push("so 5\n</thi");
        assert_eq!(s.partial_close(), 5);
        assert_eq!(s.closing_text(), "nk>\n\n");
        s.push("s is it");
        assert_eq!(s.partial_close(), 0);
        assert_eq!(s.closing_text(), "\n</think>\n\n");
    }

    #[test]
    fn partial_suffixes() {
        assert_eq!(partial_suffix("abc</th", "</think>"), 4);
        assert_eq!(partial_suffix("abc", "</think>"), 0);
        assert_eq!(partial_suffix("é<", "</think>"), 1);
    }
}
