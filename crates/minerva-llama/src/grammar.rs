//! The grammar sampler (llama.cpp's GBNF) for an [`OutputFormat`].
//!
//! Grammar text reaching this point has been validated by the front end
//! (`minerva_grammar::validate`): llama.cpp may abort on a grammar it cannot parse.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use minerva_core::{CoreError, OutputFormat};

/// Root rule of every grammar built here.
const ROOT: &str = "root";

/// The grammar sampler for `format`: eager (constraining from the first token), or lazy when
/// a [`minerva_core::GrammarSpec`] has trigger patterns or tokens.
///
/// Errors: [`CoreError::InvalidRequest`] when llama.cpp refuses the grammar or a trigger
/// pattern: the front end's checks mirror llama.cpp's, so this is a grammar they missed, and it
/// is the request's (a 400), not the server's fault.
pub fn sampler(format: &OutputFormat, model: &LlamaModel) -> Result<LlamaSampler, CoreError> {
    let failed = |e: llama_cpp_2::GrammarError| {
        tracing::warn!(error = %e, "llama.cpp refused an output grammar that passed validation");
        CoreError::invalid(
            format!("llama.cpp refused the output grammar ({e}); simplify the schema or grammar"),
            None,
        )
    };
    match format {
        OutputFormat::JsonObject => {
            LlamaSampler::grammar(model, minerva_grammar::JSON_OBJECT, ROOT).map_err(failed)
        }
        OutputFormat::Grammar(spec) if !spec.is_lazy() => {
            LlamaSampler::grammar(model, &spec.gbnf, ROOT).map_err(failed)
        }
        OutputFormat::Grammar(spec) => {
            let tokens: Vec<LlamaToken> =
                spec.trigger_tokens.iter().map(|&t| LlamaToken(t)).collect();
            LlamaSampler::grammar_lazy_patterns(
                model,
                &spec.gbnf,
                ROOT,
                &spec.trigger_patterns,
                &tokens,
            )
            .map_err(failed)
        }
    }
}
