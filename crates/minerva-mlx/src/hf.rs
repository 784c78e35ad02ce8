//! What a Hugging Face model directory says about itself: its format, config, special tokens
//! and chat template.

use serde_json::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The formats a model path can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// One GGUF file (by its magic).
    Gguf,
    /// A Hugging Face directory of safetensors weights.
    Safetensors,
    /// A Hugging Face directory whose weights mlx-lm quantized (`quantization` in config.json).
    Mlx,
}

impl ModelFormat {
    /// The name the library and the engine's backend registry use.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::Safetensors => "safetensors",
            ModelFormat::Mlx => "mlx",
        }
    }
}

/// Why a path is not a model Minerva can load.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {found}; expected a GGUF file or a Hugging Face model directory (config.json, tokenizer.json, tokenizer_config.json, *.safetensors, model.safetensors.index.json when sharded)")]
    Unrecognised { path: PathBuf, found: String },
    #[error("{path}: {0}", path = .1.display())]
    Invalid(String, PathBuf),
}

/// Tells a GGUF file, a Hugging Face directory and an MLX-quantized one apart; anything else is
/// an error that says what was found and what was expected.
pub fn detect(path: &Path) -> Result<ModelFormat, FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        use std::io::Read;
        let mut magic = [0u8; 4];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut magic))
            .map_err(io)?;
        if n == 4 && &magic == b"GGUF" {
            return Ok(ModelFormat::Gguf);
        }
        return Err(FormatError::Unrecognised {
            path: path.to_path_buf(),
            found: format!(
                "a file starting with {:?}",
                String::from_utf8_lossy(&magic[..n])
            ),
        });
    }
    let names: Vec<String> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let shards = names.iter().filter(|n| n.ends_with(".safetensors")).count();
    let mut missing = Vec::new();
    if !has("config.json") {
        missing.push("config.json");
    }
    if !has("tokenizer.json") {
        missing.push("tokenizer.json");
    }
    if !has("tokenizer_config.json") {
        missing.push("tokenizer_config.json");
    }
    if shards == 0 {
        missing.push("*.safetensors");
    } else if shards > 1 && !has("model.safetensors.index.json") {
        missing.push("model.safetensors.index.json");
    }
    if !missing.is_empty() {
        let mut listed: Vec<&str> = names.iter().map(String::as_str).collect();
        listed.sort_unstable();
        listed.truncate(8);
        return Err(FormatError::Unrecognised {
            path: path.to_path_buf(),
            found: format!(
                "a directory holding [{}] without {}",
                listed.join(", "),
                missing.join(", ")
            ),
        });
    }
    let config = read_json(&path.join("config.json"))?;
    Ok(if config.get("quantization").is_some() {
        ModelFormat::Mlx
    } else {
        ModelFormat::Safetensors
    })
}

pub(crate) fn read_json(path: &Path) -> Result<Value, FormatError> {
    let text = std::fs::read_to_string(path).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| FormatError::Invalid(format!("not valid JSON: {e}"), path.to_path_buf()))
}

/// The parts of a Hugging Face directory's metadata that Minerva uses.
#[derive(Debug, Clone, Default)]
pub struct HfConfig {
    pub format: Option<&'static str>,
    pub architecture: Option<String>,
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub context_length: Option<u64>,
    /// e.g. `"4bit"` for an MLX-quantized model, `"BF16"` from `torch_dtype`.
    pub quantization: Option<String>,
    pub chat_template: Option<String>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub add_bos_token: bool,
    /// End-of-generation ids that config.json and generation_config.json name.
    pub eos_ids: Vec<u32>,
    /// Bytes of the weight files.
    pub size: u64,
    /// Parameters, counted from the safetensors headers.
    pub n_params: u64,
}

/// Reads config.json, tokenizer_config.json, generation_config.json and the safetensors headers.
pub fn read_config(dir: &Path) -> Result<HfConfig, FormatError> {
    let format = detect(dir)?;
    if format == ModelFormat::Gguf {
        return Err(FormatError::Invalid(
            "a GGUF file, not a Hugging Face directory".into(),
            dir.to_path_buf(),
        ));
    }
    let config = read_json(&dir.join("config.json"))?;
    let tok = read_json(&dir.join("tokenizer_config.json"))?;
    let generation = read_json(&dir.join("generation_config.json")).unwrap_or(Value::Null);
    let token_text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let mut eos_ids = Vec::new();
    for v in [config.get("eos_token_id"), generation.get("eos_token_id")]
        .into_iter()
        .flatten()
    {
        match v {
            Value::Number(n) => eos_ids.extend(n.as_u64().map(|n| n as u32)),
            Value::Array(a) => eos_ids.extend(a.iter().filter_map(Value::as_u64).map(|n| n as u32)),
            _ => {}
        }
    }
    let chat_template = match tok.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        // A list of named templates: the default one.
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(Value::as_str))
            .map(str::to_string),
        _ => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
    };
    let quantization = match config.get("quantization") {
        Some(q) => q
            .get("bits")
            .and_then(Value::as_u64)
            .map(|b| format!("{b}bit")),
        None => config
            .get("torch_dtype")
            .and_then(Value::as_str)
            .map(|d| d.replace("bfloat16", "BF16").replace("float16", "F16")),
    };
    let (size, n_params) = weights(dir)?;
    Ok(HfConfig {
        format: Some(format.as_str()),
        architecture: config
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_string),
        model_type: config
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_string),
        vocab_size: config
            .get("vocab_size")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize,
        context_length: config
            .get("max_position_embeddings")
            .and_then(Value::as_u64),
        quantization,
        chat_template,
        bos_token: token_text(tok.get("bos_token")),
        eos_token: token_text(tok.get("eos_token")),
        add_bos_token: tok
            .get("add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        eos_ids,
        size,
        n_params,
    })
}

/// Bytes of the safetensors files and the parameters their headers list.
fn weights(dir: &Path) -> Result<(u64, u64), FormatError> {
    use std::io::Read;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FormatError::Io { path, source }
    };
    let mut size = 0;
    let mut params = 0u64;
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        size += file.metadata().map_err(io(&path))?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(io(&path))?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(FormatError::Invalid(
                "safetensors header too large".into(),
                path,
            ));
        }
        let mut header = vec![0u8; len as usize];
        file.read_exact(&mut header).map_err(io(&path))?;
        let header: Value = serde_json::from_slice(&header).map_err(|e| {
            FormatError::Invalid(format!("bad safetensors header: {e}"), path.clone())
        })?;
        for (name, t) in header.as_object().into_iter().flatten() {
            if name == "__metadata__" {
                continue;
            }
            let shape = t.get("shape").and_then(Value::as_array);
            params += shape.map_or(0, |s| s.iter().filter_map(Value::as_u64).product());
        }
    }
    Ok((size, params))
}
