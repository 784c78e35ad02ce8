//! What a model can do, in Ollama's words (`capabilities` of `/api/show`), for every listing.

use crate::backends::backend_of;
use minerva_core::{LibraryModel, ModelInfo};

/// Ollama's `capabilities` of `model`: `completion` always; `tools` when the chat template
/// renders the tools it is given; `thinking` when it writes or strips `<think>` blocks;
/// `embedding` when the backend computes embeddings (llama.cpp does for every GGUF model,
/// mean-pooled unless the model says otherwise); `insert` (fill-in-the-middle) when the
/// vocabulary has prefix, suffix and middle tokens: the loaded model's vocabulary, else what
/// the store read from the file (a GGUF's token texts; a Hugging Face directory says once it
/// is loaded); `vision` when a projector goes with the model (loaded: when it loaded).
pub fn capabilities(model: &LibraryModel, loaded: Option<&ModelInfo>) -> Vec<&'static str> {
    let template = match loaded {
        Some(info) => info.chat_template.as_str(),
        None => model.chat_template.as_deref().unwrap_or(""),
    };
    let mut caps = vec!["completion"];
    if minerva_chat::ToolFormat::template_handles_tools(template) {
        caps.push("tools");
    }
    if minerva_chat::template_thinks(template) {
        caps.push("thinking");
    }
    let embeds = match loaded {
        Some(info) => info.embedding.is_some(),
        None => backend_of(model) == "llama.cpp",
    };
    if embeds {
        caps.push("embedding");
    }
    let inserts = match loaded {
        Some(info) => info.fim.missing().is_empty(),
        None => model.fill_in_middle,
    };
    if inserts {
        caps.push("insert");
    }
    let sees = match loaded {
        Some(info) => info.vision.is_some(),
        None => model.projector.is_some(),
    };
    if sees {
        caps.push("vision");
    }
    caps
}
