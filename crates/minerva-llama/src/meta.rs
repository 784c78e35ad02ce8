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
            .and_then(file_type_name)
            .map(str::to_string),
        metadata,
    }
}

/// llama.cpp's `llama_ftype` values (GGUF `general.file_type`) by the names llama.cpp's
/// quantize tool and Ollama use.
fn file_type_name(ftype: u32) -> Option<&'static str> {
    Some(match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::file_type_name;

    #[test]
    fn names_the_common_quantizations() {
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(1), Some("F16"));
        assert_eq!(file_type_name(32), Some("BF16"));
        assert_eq!(file_type_name(4), None);
    }
}
