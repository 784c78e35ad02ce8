//! Embeddings and fill-in-the-middle: what a model can do besides chat, and how it is asked.

use crate::TokenId;
use serde::{Deserialize, Serialize};

/// How the hidden states of one input's tokens become one vector (llama.cpp's
/// `llama_pooling_type`; the names of llama-server's `--pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// The average over the input's tokens.
    Mean,
    /// The first token's state (BERT's `[CLS]`).
    Cls,
    /// The last token's state (decoder embedding models such as Qwen3-Embedding).
    Last,
}

impl Pooling {
    /// llama-server's name for it: `"mean"`, `"cls"`, `"last"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Last => "last",
        }
    }
}

/// What a model can embed, when it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingInfo {
    /// Length of each vector (llama.cpp's `n_embd_out`).
    pub dimensions: usize,
    /// How tokens are pooled: what the model's GGUF metadata says (`{arch}.pooling_type`),
    /// else [`Pooling::Mean`] (llama-server's `--pooling mean`).
    pub pooling: Pooling,
    /// Most tokens one input may have.
    pub n_ctx: usize,
}

/// The fill-in-the-middle tokens of a model's vocabulary (llama.cpp's `llama_vocab_fim_*`,
/// which it finds from the metadata or, failing that, from the token texts such as
/// `<|fim_prefix|>`). A model can fill in the middle when `pre`, `suf` and `mid` are all
/// present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FimTokens {
    pub pre: Option<TokenId>,
    pub suf: Option<TokenId>,
    pub mid: Option<TokenId>,
    pub pad: Option<TokenId>,
    /// Starts the repository name in a repository-level prompt.
    pub rep: Option<TokenId>,
    /// Separates files in a repository-level prompt.
    pub sep: Option<TokenId>,
}

/// The token texts llama.cpp recognises as each fill-in-the-middle token when the metadata
/// names none (`llama_vocab::impl::load`, llama.cpp `src/llama-vocab.cpp`).
const FIM_TEXTS: [&[&str]; 6] = [
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
    ],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &[
        "<|file_sep|>",
        "<|fim_sep|>",
        "<fim-sep>",
        "<file_sep>",
        "<SEP>",
    ],
];

/// Which of the FIM tokens (0 prefix, 1 suffix, 2 middle, 3 pad, 4 repository, 5 file
/// separator) a token text is, by llama.cpp's lists; `None` for any other text.
pub fn fim_token_kind(text: &str) -> Option<usize> {
    FIM_TEXTS.iter().position(|texts| texts.contains(&text))
}

impl FimTokens {
    /// Finds the tokens by their texts, as llama.cpp does for a vocabulary whose metadata
    /// names none; `lookup` gives the id of a special token's exact text.
    pub fn find(lookup: impl Fn(&str) -> Option<TokenId>) -> Self {
        let first = |texts: &[&str]| texts.iter().find_map(|t| lookup(t));
        FimTokens {
            pre: first(FIM_TEXTS[0]),
            suf: first(FIM_TEXTS[1]),
            mid: first(FIM_TEXTS[2]),
            pad: first(FIM_TEXTS[3]),
            rep: first(FIM_TEXTS[4]),
            sep: first(FIM_TEXTS[5]),
        }
    }

    /// The names of the tokens fill-in-the-middle needs and the model lacks, in llama-server's
    /// words (`"prefix"`, `"suffix"`, `"middle"`); empty when it has all three.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("prefix", self.pre),
            ("suffix", self.suf),
            ("middle", self.mid),
        ]
        .into_iter()
        .filter(|(_, t)| t.is_none())
        .map(|(name, _)| name)
        .collect()
    }
}

/// One embeddings request: several inputs, each already tokenized and within the model's
/// [`EmbeddingInfo::n_ctx`] (the engine truncates or refuses longer ones). The backend answers
/// with one [`GenEvent::Embedding`](crate::GenEvent::Embedding) per input (in any order, each
/// naming its index) and then `Done` with the token count as `prompt_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Vec<Vec<TokenId>>,
}
