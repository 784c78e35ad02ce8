//! Fill-in-the-middle prompts, built from the vocabulary's FIM tokens.
//!
//! Two layouts:
//! * [`InfillLayout::Plain`]: `[BOS] <PRE> prefix <SUF> suffix <MID>`, the prefix-suffix-middle
//!   order Ollama's templates use for `suffix` (on `/v1/completions` and `/api/generate`).
//! * [`InfillLayout::Repository`]: llama-server's `/infill` (`format_prompt_infill` in
//!   llama.cpp `tools/server/server-common.cpp`): the repository-level pattern of Qwen2.5-Coder's
//!   report (arXiv 2409.12186), `<REP>myproject\n`, then each extra file as
//!   `<SEP>filename\n text` (a `--- snippet ---` line where the model has no separator token),
//!   `<SEP>filename\n`, then `[BOS] <PRE> prefix prompt <SUF> suffix <MID>`; the prefix keeps
//!   its last `3/4` of a batch of tokens, the suffix its first `1/4` of a batch less the prompt
//!   and two, and the extra files whatever the context leaves, keeping their end (and, unlike
//!   llama-server, always 64 tokens for the reply: its budget can fill the whole context).
//!
//! Prefix, suffix and extra text are tokenized without parsing special tokens (code may
//! contain `<|endoftext|>` as text); `prompt` is parsed as llama-server does.

use minerva_core::{CoreError, Model, Result, TokenId};

/// llama-server's default logical batch size, which its `/infill` layout budgets against.
const N_BATCH: usize = 2048;
/// Tokens the other files always leave for the reply: llama-server's budget for them can fill
/// the context to its last token (a 400 there); here they keep their end and shrink instead.
const REPLY_ROOM: usize = 64;

/// How an infill prompt is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfillLayout {
    Plain,
    Repository,
}

/// Another file given as context (llama-server's `input_extra` chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfillFile {
    /// `None`: llama-server's `"tmp"`.
    pub filename: Option<String>,
    pub text: String,
}

/// Text before and after the cursor, and what else the model may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infill {
    pub prefix: String,
    pub suffix: String,
    /// Other files ([`InfillLayout::Repository`] only).
    pub extra: Vec<InfillFile>,
    /// Text the middle starts with, after the prefix ([`InfillLayout::Repository`] only:
    /// llama-server's `prompt`).
    pub prompt: String,
    pub layout: InfillLayout,
}

/// The prompt's token ids for `model`. A model whose vocabulary lacks a prefix, suffix or
/// middle token is refused, naming them.
pub(crate) fn infill_tokens(model: &dyn Model, infill: &Infill) -> Result<Vec<TokenId>> {
    let info = model.info();
    let fim = info.fim;
    let (Some(pre), Some(suf), Some(mid)) = (fim.pre, fim.suf, fim.mid) else {
        return Err(CoreError::invalid(
            format!(
                "model '{}' does not support insert (fill in the middle): its vocabulary has no {} token",
                info.id,
                fim.missing().join(", no ")
            ),
            Some("suffix"),
        ));
    };
    let plain = |text: &str| model.tokenize(text, false, false);
    let bos = model.tokenize("", true, false)?;
    let mut prefix = plain(&infill.prefix)?;
    let mut suffix = plain(&infill.suffix)?;
    let mut out = Vec::new();
    match infill.layout {
        InfillLayout::Plain => {
            out.extend(bos);
            out.push(pre);
            out.extend(prefix);
            out.push(suf);
            out.extend(suffix);
            out.push(mid);
        }
        InfillLayout::Repository => {
            let prompt = model.tokenize(&infill.prompt, false, true)?;
            let mut extra = Vec::new();
            if let Some(rep) = fim.rep {
                extra.push(rep);
                extra.extend(plain("myproject\n")?);
            }
            for file in &infill.extra {
                match fim.sep {
                    Some(sep) => {
                        extra.push(sep);
                        let name = file.filename.as_deref().unwrap_or("tmp");
                        extra.extend(plain(&format!("{name}\n"))?);
                    }
                    None => extra.extend(plain("\n\n--- snippet ---\n\n")?),
                }
                extra.extend(plain(&file.text)?);
            }
            if let Some(sep) = fim.sep {
                extra.push(sep);
                extra.extend(plain("filename\n")?);
            }
            let prefix_take = prefix.len().min(3 * (N_BATCH / 4));
            let suffix_take = suffix
                .len()
                .min((N_BATCH / 4).saturating_sub(2 + prompt.len()));
            prefix.drain(..prefix.len() - prefix_take);
            suffix.truncate(suffix_take);
            let rest = bos.len() + prefix.len() + prompt.len() + suffix.len() + 3;
            // llama-server's `n_ctx - n_batch - 2 * n_predict` with its default n_predict of -1,
            // within what the rest leaves.
            let extra_take = (info.n_ctx + 2)
                .saturating_sub(N_BATCH)
                .min(info.n_ctx.saturating_sub(rest + REPLY_ROOM))
                .min(extra.len());
            out.extend_from_slice(&extra[extra.len() - extra_take..]);
            out.extend(bos);
            out.push(pre);
            out.extend(prefix);
            out.extend(prompt);
            out.push(suf);
            out.extend(suffix);
            out.push(mid);
        }
    }
    Ok(out)
}
