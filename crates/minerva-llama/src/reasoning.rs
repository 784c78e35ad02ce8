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
    /// The closing text's tokens, generated in order once the budget is spent.
    forced: Vec<LlamaToken>,
    /// How many of `forced` were generated (`None`: not forcing).
    forcing: Option<usize>,
}

impl Reasoning {
    pub fn new(spec: &ReasoningSpec, model: &LlamaModel) -> Self {
        let forced = model
            .vocab()
            .tokenize(spec.forced().as_bytes(), false, true);
        Reasoning {
            splitter: spec.splitter(),
            budget: spec.budget.map(|b| b as usize),
            spent: 0,
            forced,
            forcing: None,
        }
    }

    pub fn state(&self) -> ReasoningState {
        self.splitter.state()
    }

    /// The next token when the budget is spent inside the block (a token of the closing text),
    /// instead of sampling one.
    pub fn forced_next(&mut self) -> Option<LlamaToken> {
        if self.state() != ReasoningState::Reasoning {
            return None;
        }
        let done = match self.forcing {
            Some(done) => done,
            None if self.budget.is_some_and(|b| self.spent >= b) => 0,
            None => return None,
        };
        let token = *self.forced.get(done)?;
        self.forcing = Some(done + 1);
        Some(token)
    }

    /// Whether a reply not yet decided stays free of the answer's grammar with this token
    /// next: whitespace, or (a part of) the opening tag.
    pub fn opens(&self, piece: &[u8]) -> bool {
        let mut next = self.splitter.clone();
        next.push(&String::from_utf8_lossy(piece));
        next.state() != ReasoningState::Answer
    }

    /// Records the text of a generated token.
    pub fn push(&mut self, piece: &[u8]) {
        self.splitter.push(&String::from_utf8_lossy(piece));
        if self.state() == ReasoningState::Reasoning {
            self.spent += 1;
        }
    }
}
