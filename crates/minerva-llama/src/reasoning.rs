//! A sequence's reasoning block (see [`minerva_core::ReasoningSpec`]): where the reply is, so
//! that the output grammar constrains only the answer, and the budget, past which the closing
//! tag is generated instead of sampled (llama-server's `--reasoning-budget`).

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{ReasoningSpec, ReasoningSplitter, ReasoningState};

pub struct Reasoning {
    splitter: ReasoningSplitter,
    budget: Option<usize>,
    /// Tokens generated inside the block.
    spent: usize,
    /// The closing text's tokens still to generate, once closing has begun (`None`: not
    /// closing).
    closing: Option<std::collections::VecDeque<LlamaToken>>,
}

impl Reasoning {
    pub fn new(spec: &ReasoningSpec) -> Self {
        Reasoning {
            splitter: spec.splitter(),
            budget: spec.budget.map(|b| b as usize),
            spent: 0,
            closing: None,
        }
    }

    pub fn state(&self) -> ReasoningState {
        self.splitter.state()
    }

    /// Starts closing the block now: the rest of a closing tag the reply has begun, else the
    /// whole closing text, tokenized as the model's vocabulary has it.
    pub fn close(&mut self, model: &LlamaModel) {
        if self.closing.is_none() && self.state() == ReasoningState::Reasoning {
            let text = self.splitter.closing_text();
            let tokens = model.vocab().tokenize(text.as_bytes(), false, true);
            self.closing = Some(tokens.into());
        }
    }

    /// The next token of the closing text, when the block is being closed (its budget spent,
    /// or [`Reasoning::close`]), instead of sampling one.
    pub fn forced_next(&mut self, model: &LlamaModel) -> Option<LlamaToken> {
        if self.state() != ReasoningState::Reasoning {
            return None;
        }
        if self.budget.is_some_and(|b| self.spent >= b) {
            self.close(model);
        }
        self.closing.as_mut()?.pop_front()
    }

    /// Whether a reply not yet decided stays free of the answer's grammar with this token
    /// next: whitespace, or (a part of) the opening tag.
    pub fn opens(&self, piece: &[u8]) -> bool {
        let mut next = self.splitter.clone();
        next.push(&String::from_utf8_lossy(piece));
        next.state() != ReasoningState::Answer
    }

    /// Records the text of a generated token (nothing to track once the answer has begun).
    pub fn push(&mut self, piece: &[u8]) {
        if self.state() == ReasoningState::Answer {
            return;
        }
        self.splitter.push(&String::from_utf8_lossy(piece));
        if self.state() == ReasoningState::Reasoning {
            self.spent += 1;
        }
    }
}
