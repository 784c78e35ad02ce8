//! A small GGUF reader: checks that a file is a complete GGUF model and extracts the facts the
//! store records (architecture, parameters, quantization, context length, chat template,
//! licence, KV bytes per token).
//!
//! The file may be hostile: every count and length it declares is checked against the bytes
//! that are left before anything is allocated, strings and arrays the store does not keep are
//! skipped without being read into memory, and all arithmetic is checked. Every tensor's data
//! (its offset plus the size its type and dimensions imply) must lie inside the file, so a
//! truncated download is rejected.

use crate::gguf_types::tensor_type;
use crate::{Result, StoreError};
use minerva_core::gguf::file_type_name;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

/// Longest string value kept (chat templates, licences); longer ones are skipped.
const MAX_KEPT_STRING: u64 = 1 << 20;
/// Longest metadata key.
const MAX_KEY: u64 = 1 << 16;
/// Longest numeric array kept (per-layer values); longer ones are skipped.
const MAX_KEPT_ARRAY: u64 = 1 << 16;
/// Longest tensor name ggml takes (`GGML_MAX_NAME` is 64, with the terminating NUL).
const MAX_TENSOR_NAME: u64 = 63;
/// Most dimensions a ggml tensor has.
const MAX_DIMS: u32 = 4;
/// Nesting depth of arrays of arrays accepted.
const MAX_DEPTH: u32 = 4;
/// Longest vocabulary entry compared with the FIM token texts (the longest is 20 bytes).
const MAX_FIM_TEXT: u64 = 32;

/// What the store learns from a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// GGUF version (2 or 3).
    pub version: u32,
    pub architecture: Option<String>,
    /// Sum of the tensors' element counts.
    pub n_params: u64,
    /// In llama.cpp's naming (`Q4_K_M`), from `general.file_type` or the most common tensor type.
    pub quantization: Option<String>,
    pub context_length: Option<u64>,
    pub chat_template: Option<String>,
    pub license: Option<String>,
    pub kv_bytes_per_token: Option<u64>,
    /// The vocabulary has fill-in-the-middle prefix, suffix and middle tokens.
    pub fill_in_middle: bool,
    /// `clip.has_vision_encoder`: a multimodal projector (`general.architecture` `clip`, llama.cpp's
    /// `mmproj` file) that holds a vision encoder.
    pub has_vision_encoder: bool,
    /// `clip.projector_type` of a multimodal projector (`mlp`, `qwen2vl_merger`, ...).
    pub projector_type: Option<String>,
    /// A model's `<arch>.embedding_length`: the width of its token embeddings.
    pub embedding_length: Option<u64>,
    /// A projector's `clip.vision.projection_dim`: the width of the embeddings it makes, which
    /// llama.cpp's converter sets to its language model's `embedding_length`.
    pub projection_dim: Option<u64>,
    pub n_tensors: u64,
    /// Where the tensor data starts (the header's length, aligned).
    pub data_start: u64,
    /// Where the last tensor's data ends.
    pub data_end: u64,
}

/// A metadata value, as far as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Uint(u64),
    Int(i64),
    Str(String),
    Bool(bool),
    /// A numeric array (each element as u64 where it is a non-negative integer).
    Ints(Vec<u64>),
    /// A value the store does not keep (floats, long strings, string arrays, ...).
    Skipped,
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

/// Reads and validates the GGUF file at `path`.
pub fn read(path: &Path) -> Result<GgufInfo> {
    let file =
        File::open(path).map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?
        .len();
    read_from(BufReader::with_capacity(1 << 16, file), len, path)
}

/// Reads and validates a GGUF file held in memory (a fuzz target's input, a test's bytes);
/// `path` only names it in errors.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<GgufInfo> {
    read_from(Cursor::new(bytes), bytes.len() as u64, path)
}

/// Reads and validates a GGUF file of `len` bytes from `inner`, positioned at its start;
/// `path` only names it in errors. [`read`] and [`read_bytes`] call it.
pub fn read_from(inner: impl Read + Seek, len: u64, path: &Path) -> Result<GgufInfo> {
    let mut r = Reader {
        inner,
        pos: 0,
        len,
        path: path.to_path_buf(),
        fim_seen: [false; 3],
    };
    parse(&mut r)
}

/// The architecture of llama.cpp's multimodal projectors (`mmproj` files).
pub const PROJECTOR_ARCHITECTURE: &str = "clip";

/// Reads and validates a model's GGUF file: a complete GGUF ([`read`]) that is not a
/// multimodal projector.
pub fn read_model(path: &Path) -> Result<GgufInfo> {
    let info = read(path)?;
    check_model(&info, path)?;
    Ok(info)
}

/// Fails when `info` (read from `path`) describes a multimodal projector rather than a model.
pub(crate) fn check_model(info: &GgufInfo, path: &Path) -> Result<()> {
    if info.architecture.as_deref() == Some(PROJECTOR_ARCHITECTURE) {
        return Err(StoreError::InvalidGguf {
            path: path.to_path_buf(),
            reason: "it is a multimodal projector (an mmproj file, general.architecture clip), not a model: give it with --mmproj beside its model".into(),
        });
    }
    Ok(())
}

/// Reads and validates a vision projector (llama.cpp's `mmproj` GGUF): a complete GGUF
/// ([`read`]) whose `general.architecture` is `clip` and which has a vision encoder
/// (`clip.has_vision_encoder`). Anything else is [`StoreError::NotAProjector`].
pub fn read_projector(path: &Path) -> Result<GgufInfo> {
    let info = read(path)?;
    check_projector(&info, path)?;
    Ok(info)
}

/// Fails unless `info` (read from `path`) describes a vision projector (see [`read_projector`]).
pub(crate) fn check_projector(info: &GgufInfo, path: &Path) -> Result<()> {
    let reason = match info.architecture.as_deref() {
        Some(PROJECTOR_ARCHITECTURE) if info.has_vision_encoder => return Ok(()),
        Some(PROJECTOR_ARCHITECTURE) => {
            "it has no vision encoder (clip.has_vision_encoder is not true; an audio-only projector?)".to_string()
        }
        Some(other) => format!(
            "its general.architecture is '{other}', a projector's is '{PROJECTOR_ARCHITECTURE}' (is it the model itself?)"
        ),
        None => "it has no general.architecture".to_string(),
    };
    Err(StoreError::NotAProjector {
        path: path.to_path_buf(),
        reason,
    })
}

/// Fails when the projector (read from `path`) makes embeddings of another width than the
/// model takes: it was made for another model (llama.cpp would refuse to load the pair).
pub fn check_pair(model: &GgufInfo, projector: &GgufInfo, path: &Path) -> Result<()> {
    match (model.embedding_length, projector.projection_dim) {
        (Some(model_width), Some(width)) if model_width != width => {
            Err(StoreError::NotAProjector {
                path: path.to_path_buf(),
                reason: format!(
                    "it makes {width}-wide embeddings and the model takes {model_width}-wide ones (clip.vision.projection_dim against {}.embedding_length): it is another model's projector",
                    model.architecture.as_deref().unwrap_or("the model")
                ),
            })
        }
        _ => Ok(()),
    }
}

/// True when the file starts with the GGUF magic.
pub fn has_magic(path: &Path) -> Result<bool> {
    let mut file =
        File::open(path).map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(StoreError::io(format!("reading {}", path.display()), e)),
    }
}

struct Reader<R> {
    inner: R,
    pos: u64,
    len: u64,
    path: PathBuf,
    /// FIM token kinds seen among `tokenizer.ggml.tokens` (see `minerva_core::fim_token_kind`).
    fim_seen: [bool; 3],
}

impl<R: Read + Seek> Reader<R> {
    fn bad(&self, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidGguf {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Fails unless `n` more bytes exist.
    fn need(&self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {} left",
                self.pos,
                self.remaining()
            )));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.need(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| StoreError::io(format!("reading {}", self.path.display()), e))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        self.need(n, what)?;
        let offset =
            i64::try_from(n).map_err(|_| self.bad(format!("{what}: length {n} is too large")))?;
        self.inner
            .seek_relative(offset)
            .map_err(|e| StoreError::io(format!("reading {}", self.path.display()), e))?;
        self.pos += n;
        Ok(())
    }

    /// A string of at most `max` bytes, or `None` (skipped) when it is longer.
    fn string(&mut self, max: u64, what: &str) -> Result<Option<String>> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        if n > max {
            self.skip(n, what)?;
            return Ok(None);
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| StoreError::io(format!("reading {}", self.path.display()), e))?;
        self.pos += n;
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| self.bad(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, kind: u32, depth: u32, what: &str) -> Result<Value> {
        Ok(match kind {
            0 => Value::Uint(u64::from(self.bytes::<1>(what)?[0])),
            1 => Value::Int(i64::from(i8::from_le_bytes(self.bytes(what)?))),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes(what)?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.bytes(what)?))),
            4 => Value::Uint(u64::from(self.u32(what)?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.bytes(what)?))),
            6 => {
                self.bytes::<4>(what)?;
                Value::Skipped
            }
            7 => match self.bytes::<1>(what)?[0] {
                b @ (0 | 1) => Value::Bool(b == 1),
                b => return Err(self.bad(format!("{what}: bool byte {b}"))),
            },
            8 => self
                .string(MAX_KEPT_STRING, what)?
                .map_or(Value::Skipped, Value::Str),
            9 => self.array(depth, what)?,
            10 => Value::Uint(self.u64(what)?),
            11 => Value::Int(i64::from_le_bytes(self.bytes(what)?)),
            12 => {
                self.bytes::<8>(what)?;
                Value::Skipped
            }
            other => return Err(self.bad(format!("{what}: unknown value type {other}"))),
        })
    }

    /// Reads one vocabulary string of `n` bytes and notes whether it is a FIM token.
    fn note_fim_token(&mut self, n: u64, what: &str) -> Result<()> {
        self.need(n, what)?;
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.bad(format!("{what}: {e}")))?;
        self.pos += n;
        if let Some(kind) = std::str::from_utf8(&buf)
            .ok()
            .and_then(minerva_core::fim_token_kind)
        {
            if let Some(seen) = self.fim_seen.get_mut(kind) {
                *seen = true;
            }
        }
        Ok(())
    }

    fn array(&mut self, depth: u32, what: &str) -> Result<Value> {
        if depth >= MAX_DEPTH {
            return Err(self.bad(format!("{what}: arrays nested too deep")));
        }
        let kind = self.u32(what)?;
        let count = self.u64(what)?;
        let fixed = match kind {
            0 | 1 | 7 => Some(1u64),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            8 | 9 => None,
            other => return Err(self.bad(format!("{what}: unknown array element type {other}"))),
        };
        match fixed {
            Some(size) => {
                let total = count.checked_mul(size).ok_or_else(|| {
                    self.bad(format!("{what}: array of {count} elements overflows"))
                })?;
                self.need(total, what)?;
                if count > MAX_KEPT_ARRAY || matches!(kind, 6 | 7 | 12) {
                    self.skip(total, what)?;
                    return Ok(Value::Skipped);
                }
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    // Negative integers are kept as 0: the store only reads counts.
                    out.push(self.value(kind, depth + 1, what)?.as_u64().unwrap_or(0));
                }
                Ok(Value::Ints(out))
            }
            None => {
                // Each element is at least 8 bytes (a length or a header): a bound before looping.
                let least = count.checked_mul(8).ok_or_else(|| {
                    self.bad(format!("{what}: array of {count} elements overflows"))
                })?;
                self.need(least, what)?;
                let vocabulary = what == "tokenizer.ggml.tokens";
                for _ in 0..count {
                    if kind == 8 {
                        let n = self.u64(what)?;
                        if vocabulary && n <= MAX_FIM_TEXT {
                            self.note_fim_token(n, what)?;
                        } else {
                            self.skip(n, what)?;
                        }
                    } else {
                        self.array(depth + 1, what)?;
                    }
                }
                Ok(Value::Skipped)
            }
        }
    }
}

struct TensorInfo {
    elements: u64,
    kind: u32,
    offset: u64,
    bytes: u64,
}

fn parse<R: Read + Seek>(r: &mut Reader<R>) -> Result<GgufInfo> {
    if &r.bytes::<4>("the magic")? != b"GGUF" {
        return Err(r.bad("not a GGUF file (the magic is not 'GGUF')"));
    }
    let version = r.u32("the version")?;
    if version != 2 && version != 3 {
        return Err(r.bad(format!("GGUF version {version} is not supported (2 or 3)")));
    }
    let n_tensors = r.u64("the tensor count")?;
    if n_tensors == 0 {
        return Err(r.bad("it holds no tensors: a header without weights is not a model"));
    }
    let n_kv = r.u64("the metadata count")?;
    // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 4 + 8.
    r.need(n_kv.saturating_mul(13), "the metadata")?;
    r.need(n_tensors.saturating_mul(24), "the tensor infos")?;

    let mut meta: HashMap<String, Value> = HashMap::new();
    for i in 0..n_kv {
        let key = r
            .string(MAX_KEY, "a metadata key")?
            .ok_or_else(|| r.bad(format!("metadata key {i} is too long")))?;
        let kind = r.u32("a metadata type")?;
        let value = r.value(kind, 0, &key)?;
        if meta.contains_key(&key) {
            return Err(r.bad(format!("duplicate metadata key '{}'", shorten(&key))));
        }
        meta.insert(key, value);
    }

    if !matches!(meta.get("general.architecture"), Some(Value::Str(a)) if !a.is_empty()) {
        return Err(r.bad(
            "it has no general.architecture: without it no backend knows what model this is",
        ));
    }

    let mut tensors = Vec::with_capacity(n_tensors.min(1 << 14) as usize);
    let mut names = HashSet::with_capacity(n_tensors.min(1 << 14) as usize);
    for i in 0..n_tensors {
        let name = r.string(MAX_TENSOR_NAME, "a tensor name")?.ok_or_else(|| {
            r.bad(format!(
                "tensor {i}: its name is longer than {MAX_TENSOR_NAME} bytes (ggml's limit)"
            ))
        })?;
        if !names.insert(name.clone()) {
            return Err(r.bad(format!("duplicate tensor name '{name}'")));
        }
        let n_dims = r.u32("a tensor's dimension count")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(r.bad(format!("tensor {i} has {n_dims} dimensions")));
        }
        let mut elements = 1u64;
        let mut first = 0u64;
        for d in 0..n_dims {
            let dim = r.u64("a tensor dimension")?;
            if d == 0 {
                first = dim;
            }
            elements = elements
                .checked_mul(dim)
                .ok_or_else(|| r.bad(format!("tensor {i}: element count overflows")))?;
        }
        if elements == 0 {
            return Err(r.bad(format!("tensor {i} has no elements (a dimension is 0)")));
        }
        let kind = r.u32("a tensor type")?;
        let offset = r.u64("a tensor offset")?;
        let ty = tensor_type(kind)
            .ok_or_else(|| r.bad(format!("tensor {i}: unknown ggml type {kind}")))?;
        if !first.is_multiple_of(ty.block) {
            return Err(r.bad(format!(
                "tensor {i}: first dimension {first} is not a multiple of the {} block size {}",
                ty.name, ty.block
            )));
        }
        let bytes = (elements / ty.block)
            .checked_mul(ty.bytes)
            .ok_or_else(|| r.bad(format!("tensor {i}: size overflows")))?;
        tensors.push(TensorInfo {
            elements,
            kind,
            offset,
            bytes,
        });
    }

    let alignment = match meta.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
            _ => return Err(r.bad("general.alignment is not a power of two")),
        },
    };
    let data_start = r
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| r.bad("the data offset overflows"))?;
    let mut data_end = data_start;
    let mut n_params = 0u64;
    // Where the next tensor's data must start: ggml lays tensors one after another, each
    // padded to the alignment, and llama.cpp refuses any other layout.
    let mut expected = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        if !t.offset.is_multiple_of(alignment) {
            return Err(r.bad(format!(
                "tensor {i}: offset {} is not aligned to {alignment}",
                t.offset
            )));
        }
        if t.offset != expected {
            return Err(r.bad(format!(
                "tensor {i}: offset {} where the data before it ends at {expected} (tensors overlap or leave gaps)",
                t.offset
            )));
        }
        expected = t
            .offset
            .checked_add(t.bytes)
            .and_then(|end| end.checked_next_multiple_of(alignment))
            .ok_or_else(|| r.bad(format!("tensor {i}: data range overflows")))?;
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.bytes))
            .ok_or_else(|| r.bad(format!("tensor {i}: data range overflows")))?;
        if end > r.len {
            return Err(r.bad(format!(
                "truncated: tensor {i} ends at byte {end}, the file has {} bytes",
                r.len
            )));
        }
        data_end = data_end.max(end);
        n_params = n_params.saturating_add(t.elements);
    }

    let mut info = facts(&meta, &tensors, version, n_params, (data_start, data_end));
    let by_id = ["pre", "suf", "mid"]
        .iter()
        .all(|k| meta.contains_key(&format!("tokenizer.ggml.fim_{k}_token_id")));
    info.fill_in_middle = by_id || r.fim_seen.iter().all(|&seen| seen);
    Ok(info)
}

fn facts(
    meta: &HashMap<String, Value>,
    tensors: &[TensorInfo],
    version: u32,
    n_params: u64,
    (data_start, data_end): (u64, u64),
) -> GgufInfo {
    let string = |key: &str| match meta.get(key) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let number = |key: &str| meta.get(key).and_then(Value::as_u64);
    let architecture = string("general.architecture");
    let arch_key = |suffix: &str| format!("{}.{suffix}", architecture.as_deref().unwrap_or(""));

    let quantization = number("general.file_type")
        .and_then(file_type_name)
        .map(str::to_string)
        .or_else(|| most_common_type(tensors));
    let license = string("general.license").or_else(|| string("general.license.name"));
    let embedding_length = architecture
        .as_ref()
        .and_then(|_| number(&arch_key("embedding_length")));

    GgufInfo {
        version,
        context_length: architecture
            .as_ref()
            .and_then(|_| number(&arch_key("context_length"))),
        kv_bytes_per_token: architecture
            .as_ref()
            .and_then(|_| kv_bytes_per_token(meta, &arch_key(""))),
        architecture,
        n_params,
        quantization,
        chat_template: string("tokenizer.chat_template"),
        license,
        fill_in_middle: false,
        has_vision_encoder: matches!(meta.get("clip.has_vision_encoder"), Some(Value::Bool(true))),
        projector_type: string("clip.projector_type"),
        embedding_length,
        projection_dim: number("clip.vision.projection_dim"),
        n_tensors: tensors.len() as u64,
        data_start,
        data_end,
    }
}

/// The name of the ggml type most tensors (by element count) use.
fn most_common_type(tensors: &[TensorInfo]) -> Option<String> {
    let mut by_type: HashMap<u32, u64> = HashMap::new();
    for t in tensors {
        *by_type.entry(t.kind).or_default() += t.elements;
    }
    by_type
        .into_iter()
        .max_by_key(|(kind, n)| (*n, *kind))
        .and_then(|(kind, _)| tensor_type(kind))
        .map(|t| t.name.to_string())
}

/// `layers × (kv heads × key length + kv heads × value length) × 2 bytes` (an f16 KV cache);
/// `prefix` is `<arch>.`.
fn kv_bytes_per_token(meta: &HashMap<String, Value>, prefix: &str) -> Option<u64> {
    let number = |key: &str| meta.get(&format!("{prefix}{key}")).and_then(Value::as_u64);
    let layers = number("block_count")?;
    let heads = number("attention.head_count").filter(|h| *h > 0);
    let embedding = number("embedding_length");
    let default_len = match (embedding, heads) {
        (Some(e), Some(h)) => Some(e / h),
        _ => None,
    };
    let key_len = number("attention.key_length").or(default_len)?;
    let value_len = number("attention.value_length").or(default_len)?;
    let per_head = key_len.checked_add(value_len)?.checked_mul(2)?;
    match meta.get(&format!("{prefix}attention.head_count_kv")) {
        Some(Value::Ints(per_layer)) => {
            let heads: u64 = per_layer
                .iter()
                .take(layers as usize)
                .try_fold(0u64, |a, h| a.checked_add(*h))?;
            heads.checked_mul(per_head)
        }
        Some(v) => layers.checked_mul(v.as_u64()?)?.checked_mul(per_head),
        None => layers.checked_mul(heads?)?.checked_mul(per_head),
    }
}

/// The start of a possibly huge string from the file, for messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
#[path = "gguf_tests.rs"]
pub(crate) mod tests;
