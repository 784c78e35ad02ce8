//! What a GGUF file says about itself (architecture, parameters, quantization, metadata), read
//! once at load for model listings.

use llama_cpp_2::model::LlamaModel;
use minerva_core::{ModelFile, ModelSpec};

/// Facts about the model's file. Metadata that cannot be read is left out, never an error:
/// listings are informative only.
pub(crate) fn model_file(model: &LlamaModel, spec: &ModelSpec) -> ModelFile {
    let fs_meta = std::fs::metadata(&spec.path).ok();
    let metadata: Vec<(String, String)> = (0..model.meta_count())
        .filter_map(|i| {
            let key = model.meta_key_by_index(i).ok()?;
            let value = model.meta_val_str_by_index(i).ok()?;
            Some((key, value))
        })
        .collect();
    let value = |key: &str| {
        metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    ModelFile {
        format: "gguf".to_string(),
        size: fs_meta.as_ref().map_or(0, |m| m.len()),
        modified: fs_meta.and_then(|m| m.modified().ok()),
        sha256: spec.sha256.clone(),
        architecture: value("general.architecture"),
        n_params: model.n_params(),
        quantization: value("general.file_type")
            .and_then(|t| t.parse().ok())
            .and_then(minerva_core::gguf::file_type_name)
            .map(str::to_string),
        metadata,
    }
}
