//! Tokenization from a Hugging Face `tokenizer.json` (the `tokenizers` crate), with each token's
//! raw bytes the way the llama.cpp backend gives them.
//!
//! Byte-level BPE vocabularies (GPT-2, Qwen, Llama 3) spell each byte as one printable
//! character; a token's bytes are its piece mapped back through that table. Special (control)
//! tokens have no bytes unless asked for, as llama.cpp's `token_to_piece`; other added tokens
//! are their text.

use minerva_core::{CoreError, Result, TokenId};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::Tokenizer;

/// A `tokenizer.json` tokenizer and the bytes of each of its tokens.
/// Tokens llama.cpp treats as end of generation by their text (llama-vocab.cpp).
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "</s>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

pub struct HfTokenizer {
    /// Parses special tokens written in the text.
    parsing: Tokenizer,
    /// Leaves special tokens written in the text as text.
    literal: Tokenizer,
    /// Each token's bytes, by id (empty for ids the tokenizer does not know).
    bytes: Vec<Vec<u8>>,
    /// Whether each token is special (a control token).
    special: Vec<bool>,
    /// Ids of added special tokens, by content.
    special_ids: HashMap<String, u32>,
}

/// GPT-2's byte-to-character table, inverted: the character each byte is spelled as → the byte.
fn byte_level_table() -> HashMap<char, u8> {
    let mut table = HashMap::new();
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\u{FFFD}');
            extra += 1;
            c
        };
        table.insert(c, b);
    }
    table
}

impl HfTokenizer {
    /// Reads `tokenizer.json`; `n_vocab` (config.json's `vocab_size`) may exceed its vocabulary
    /// (padded embeddings): those ids have no bytes.
    pub fn load(path: &Path, n_vocab: usize) -> Result<Self> {
        let load = |_| {
            Tokenizer::from_file(path)
                .map_err(|e| CoreError::Load(format!("{}: {e}", path.display())))
        };
        let parsing = load(())?;
        let mut literal = load(())?;
        literal.set_encode_special_tokens(true);
        let byte_level = is_byte_level(path)?;
        let table = byte_level_table();
        let n = n_vocab.max(parsing.get_vocab_size(true));
        let mut bytes = vec![Vec::new(); n];
        let mut special = vec![false; n];
        for (id, piece) in parsing.get_vocab(true).into_iter().map(|(p, i)| (i, p)) {
            let Some(slot) = bytes.get_mut(id as usize) else {
                continue;
            };
            *slot = match piece.chars().map(|c| table.get(&c).copied()).collect() {
                Some(raw) if byte_level => raw,
                _ => piece.into_bytes(),
            };
        }
        let mut special_ids = HashMap::new();
        for (id, added) in parsing.get_added_tokens_decoder() {
            if let Some(slot) = bytes.get_mut(id as usize) {
                // Added tokens are matched as written, not byte-level encoded.
                *slot = added.content.clone().into_bytes();
                special[id as usize] = added.special;
            }
            if added.special {
                special_ids.insert(added.content.clone(), id);
            }
        }
        Ok(HfTokenizer {
            parsing,
            literal,
            bytes,
            special,
            special_ids,
        })
    }

    /// Ids the model has (the larger of the tokenizer's vocabulary and config.json's).
    pub fn n_vocab(&self) -> usize {
        self.bytes.len()
    }

    /// The id of a special token written as `text`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.special_ids.get(text).copied()
    }

    /// End-of-generation ids: `named` (from the config files) and the tokens llama.cpp takes for
    /// end of generation by their text. Like llama.cpp, those become control tokens (no bytes
    /// unless asked for), so that both backends stop at, and print, the same tokens.
    pub fn end_of_generation(&mut self, named: &[u32]) -> Vec<TokenId> {
        let mut ids: Vec<u32> = named.to_vec();
        ids.extend(
            EOG_NAMES
                .iter()
                .filter_map(|name| self.parsing.token_to_id(name)),
        );
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            if let Some(s) = self.special.get_mut(id as usize) {
                *s = true;
            }
        }
        ids.into_iter().map(|i| i as TokenId).collect()
    }

    /// Token ids of `text` (no BOS/EOS); `parse_special` turns special tokens written in it into
    /// their ids.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<TokenId>> {
        let tokenizer = if parse_special {
            &self.parsing
        } else {
            &self.literal
        };
        let encoding = tokenizer
            .encode(text, false)
            .map_err(|e| CoreError::Backend(format!("tokenizing: {e}")))?;
        Ok(encoding.get_ids().iter().map(|&i| i as TokenId).collect())
    }

    /// The raw bytes of `token`; special tokens are empty unless `special`.
    pub fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>> {
        let i = usize::try_from(token)
            .ok()
            .filter(|&i| i < self.bytes.len())
            .ok_or_else(|| {
                CoreError::invalid(
                    format!(
                        "token id {token} is outside the vocabulary (0..{})",
                        self.bytes.len()
                    ),
                    Some("tokens"),
                )
            })?;
        if self.special[i] && !special {
            return Ok(Vec::new());
        }
        Ok(self.bytes[i].clone())
    }
}

/// Whether the tokenizer spells bytes GPT-2 style (a ByteLevel pre-tokenizer or decoder).
fn is_byte_level(path: &Path) -> Result<bool> {
    let json = minerva_core::hf::read_json(path).map_err(|e| CoreError::Load(e.to_string()))?;
    let text = json
        .get("decoder")
        .map(|d| d.to_string())
        .unwrap_or_default();
    Ok(text.contains("\"ByteLevel\""))
}

#[cfg(test)]
mod tests {
    use super::byte_level_table;

    #[test]
    fn the_byte_table_is_a_bijection_with_gpt2_spellings() {
        let table = byte_level_table();
        assert_eq!(table.len(), 256);
        assert_eq!(table.get(&'Ġ'), Some(&b' '));
        assert_eq!(table.get(&'Ċ'), Some(&b'\n'));
        assert_eq!(table.get(&'a'), Some(&b'a'));
        let mut bytes: Vec<u8> = table.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }
}
