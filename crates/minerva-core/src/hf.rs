//! What a Hugging Face model directory says about itself: its format, config, special tokens,
//! chat template and weights, and which of its files make up the model.
//!
//! Used by the store (to import and pull such directories), by the MLX backend (to load them)
//! and by the CLI (to describe `--model DIR`). Every safetensors header is checked against its
//! file (bounded header, known dtypes, each tensor's bytes inside the file and matching its
//! shape), so a truncated or corrupt download is refused before anything loads it.

use crate::LibraryModel;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
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

pub fn read_json(path: &Path) -> Result<Value, FormatError> {
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
    /// Parameters, counted from the safetensors headers (packed quantized weights unpacked).
    pub n_params: u64,
    /// Bytes of K and V one token takes in every layer, in the model's activation dtype.
    pub kv_bytes_per_token: Option<u64>,
    /// The `license:` of README.md's front matter (the hub's model card).
    pub license: Option<String>,
    /// config.json describes a vision encoder (`vision_config`): a vision-language model.
    pub vision: bool,
}

impl HfConfig {
    /// The library's description of the directory at `path`.
    pub fn library_model(
        &self,
        name: String,
        source: String,
        digest: String,
        path: PathBuf,
        modified: SystemTime,
    ) -> LibraryModel {
        LibraryModel {
            name,
            source,
            digest,
            size: self.size,
            modified,
            format: self.format.unwrap_or("safetensors").to_string(),
            architecture: self
                .model_type
                .clone()
                .or_else(|| self.architecture.clone()),
            n_params: Some(self.n_params).filter(|&n| n > 0),
            quantization: self.quantization.clone(),
            context_length: self.context_length,
            chat_template: self.chat_template.clone(),
            license: self.license.clone(),
            kv_bytes_per_token: self.kv_bytes_per_token,
            // Known once loaded (the tokenizer's special tokens).
            fill_in_middle: false,
            backend: None,
            path,
            projector: None,
            settings: Default::default(),
        }
    }
}

/// True for the files of a Hugging Face repository that make up a model Minerva loads: weights
/// (`*.safetensors`), configs and tokenizers (`*.json`, `*.txt`, `*.model`, `*.tiktoken`),
/// chat templates (`*.jinja`), and the model card and licence. Other weight formats (`.bin`,
/// `.pt`, `.gguf`, `.onnx`), code and anything in a subdirectory are left out.
pub fn is_model_file(name: &str) -> bool {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    const EXTENSIONS: [&str; 6] = [
        ".safetensors",
        ".json",
        ".txt",
        ".model",
        ".tiktoken",
        ".jinja",
    ];
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
        || matches!(lower.as_str(), "readme.md" | "license" | "license.md")
}

/// The model files ([`is_model_file`]) of a directory, sorted.
pub fn model_files(dir: &Path) -> Result<Vec<String>, FormatError> {
    let io = |source| FormatError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Symbolic links count when they lead to a file (the store's snapshots are links).
        if is_model_file(&name) && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Reads config.json, tokenizer_config.json, generation_config.json, README.md's front matter
/// and the safetensors headers (checking each against its file).
pub fn read_config(dir: &Path) -> Result<HfConfig, FormatError> {
    let format = detect(dir)?;
    if format == ModelFormat::Gguf {
        return Err(FormatError::Invalid(
            "a GGUF file, not a Hugging Face directory".into(),
            dir.to_path_buf(),
        ));
    }
    let config = read_json(&dir.join("config.json"))?;
    if !config.is_object() {
        return Err(FormatError::Invalid(
            "config.json is not a JSON object".into(),
            dir.join("config.json"),
        ));
    }
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
    let bits = config
        .get("quantization")
        .and_then(|q| q.get("bits"))
        .and_then(Value::as_u64);
    let dtype = config.get("torch_dtype").and_then(Value::as_str);
    let quantization = match (config.get("quantization"), dtype) {
        (Some(_), _) => bits.map(|b| format!("{b}bit")),
        (None, d) => d.map(|d| {
            d.replace("bfloat16", "BF16")
                .replace("float16", "F16")
                .replace("float32", "F32")
        }),
    };
    let (size, n_params) = weights(dir, bits)?;
    check_index(dir)?;
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
        context_length: text_config(&config, "max_position_embeddings"),
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
        kv_bytes_per_token: kv_bytes_per_token(&config, dtype),
        license: card_license(&dir.join("README.md")),
        vision: config.get("vision_config").is_some_and(|v| !v.is_null()),
    })
}

/// A number from config.json, or from its `text_config` (multimodal models nest it there).
fn text_config(config: &Value, key: &str) -> Option<u64> {
    config
        .get(key)
        .or_else(|| config.get("text_config").and_then(|t| t.get(key)))
        .and_then(Value::as_u64)
}

/// layers × KV heads × head size × 2 (K and V) × bytes per element (2 unless float32).
fn kv_bytes_per_token(config: &Value, dtype: Option<&str>) -> Option<u64> {
    let layers = text_config(config, "num_hidden_layers")?;
    let heads = text_config(config, "num_attention_heads")?;
    let kv_heads = text_config(config, "num_key_value_heads").unwrap_or(heads);
    let head_dim = match text_config(config, "head_dim") {
        Some(d) => d,
        None => text_config(config, "hidden_size")?.checked_div(heads)?,
    };
    let element = if dtype == Some("float32") { 4 } else { 2 };
    layers
        .checked_mul(kv_heads)?
        .checked_mul(head_dim)?
        .checked_mul(2 * element)
}

/// `license: NAME` in the YAML front matter of a model card.
fn card_license(readme: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(readme)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    lines
        .take_while(|l| l.trim() != "---")
        .find_map(|l| l.strip_prefix("license:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
}

/// Every file a sharded model's index names must be in the directory.
fn check_index(dir: &Path) -> Result<(), FormatError> {
    let path = dir.join("model.safetensors.index.json");
    if !path.is_file() {
        return Ok(());
    }
    let index = read_json(&path)?;
    let Some(map) = index.get("weight_map").and_then(Value::as_object) else {
        return Err(FormatError::Invalid("no weight_map".into(), path));
    };
    for file in map.values().filter_map(Value::as_str) {
        if !is_model_file(file) || !dir.join(file).is_file() {
            return Err(FormatError::Invalid(
                format!("the index names '{file}', which is not in the directory"),
                path,
            ));
        }
    }
    Ok(())
}

/// Bytes of one element of a safetensors dtype (`None`: a dtype the reader does not know).
pub fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Bytes of the safetensors files and the parameters their headers list. `bits` is the MLX
/// quantization width: packed `U32` weights hold 32/bits parameters each, and the
/// quantization's scales and biases are not parameters.
fn weights(dir: &Path, bits: Option<u64>) -> Result<(u64, u64), FormatError> {
    let mut size = 0u64;
    let mut params = 0u64;
    for entry in std::fs::read_dir(dir)
        .map_err(|source| FormatError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
    {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let (bytes, tensors) = safetensors_header(&path)?;
        size = size.saturating_add(bytes);
        for t in tensors {
            let quantized = bits.filter(|b| (1..=32).contains(b));
            match quantized {
                Some(_) if t.name.ends_with(".scales") || t.name.ends_with(".biases") => {}
                // Saturating: an unknown dtype's shape is not checked against its bytes.
                Some(b) if t.dtype == "U32" => {
                    params = params.saturating_add(t.elements.saturating_mul(32 / b));
                }
                _ => params = params.saturating_add(t.elements),
            }
        }
    }
    Ok((size, params))
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// `BF16`, `F32`, `U32` (packed quantized weights), ...
    pub dtype: String,
    pub elements: u64,
}

/// Checks a safetensors file's header against the file; returns the file's size and its
/// tensors.
pub fn safetensors_header(path: &Path) -> Result<(u64, Vec<TensorInfo>), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let file_size = file.metadata().map_err(io)?.len();
    safetensors_header_from(file, file_size, path)
}

/// Like [`safetensors_header`] for a file of `file_size` bytes read from `file`, positioned at
/// its start (a fuzz target's input, a test's bytes); `path` only names it in errors.
pub fn safetensors_header_from(
    mut file: impl std::io::Read,
    file_size: u64,
    path: &Path,
) -> Result<(u64, Vec<TensorInfo>), FormatError> {
    let io = |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |why: String| {
        FormatError::Invalid(
            format!("not a valid safetensors file: {why}"),
            path.to_path_buf(),
        )
    };
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 || 8 + len > file_size {
        return Err(bad(format!(
            "a header of {len} bytes in a file of {file_size}"
        )));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: Value = serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let Some(entries) = header.as_object() else {
        return Err(bad("the header is not a JSON object".into()));
    };
    let data = file_size - 8 - len;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t.get("dtype").and_then(Value::as_str).unwrap_or("");
        let shape: Option<Vec<u64>> = t
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().map(Value::as_u64).collect());
        let offsets: Option<Vec<Option<u64>>> = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|o| o.iter().map(Value::as_u64).collect());
        let (Some(shape), Some([Some(begin), Some(end)])) = (shape, offsets.as_deref()) else {
            return Err(bad(format!("tensor '{name}' has no shape or data_offsets")));
        };
        let (begin, end) = (*begin, *end);
        let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let Some(elements) = elements else {
            return Err(bad(format!("tensor '{name}' has an impossible shape")));
        };
        if begin > end || end > data {
            return Err(bad(format!(
                "tensor '{name}' lies at bytes {begin}..{end} of {data} (the file is truncated or corrupt)"
            )));
        }
        if let Some(size) = dtype_size(dtype) {
            if elements.checked_mul(size) != Some(end - begin) {
                return Err(bad(format!(
                    "tensor '{name}' ({dtype} {shape:?}) has {} bytes",
                    end - begin
                )));
            }
        }
        tensors.push(TensorInfo {
            name: name.clone(),
            dtype: dtype.to_string(),
            elements,
        });
    }
    Ok((file_size, tensors))
}
