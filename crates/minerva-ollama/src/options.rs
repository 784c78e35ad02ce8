//! Ollama's `options` object, typed the way Ollama types it (`api.Options.FromMap`): integers
//! accept any JSON number (a fraction is cut off), floats any number, `stop` an array of
//! strings; `null` means "not given". A value of the wrong type is an error; a key Ollama does
//! not know is reported back, not an error (Ollama logs and ignores it).

use serde_json::{Map, Value};
use std::fmt;

/// The options that change a generation. Load-time options (`num_gpu`, `num_thread`, ...)
/// are checked for their type and listed in [`ParsedOptions::load_time`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub num_predict: Option<i64>,
    pub num_ctx: Option<i64>,
    pub temperature: Option<f32>,
    pub top_k: Option<i64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub typical_p: Option<f32>,
    pub repeat_last_n: Option<i64>,
    pub repeat_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<Vec<String>>,
    pub mirostat: Option<i64>,
}

/// [`Options`] and the keys that have no effect on a generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedOptions {
    pub options: Options,
    /// Known options that only matter when a model is loaded (`num_gpu`, `use_mmap`, ...) or
    /// that Ollama itself no longer uses (`tfs_z`, `penalize_newline`, ...).
    pub load_time: Vec<String>,
    /// Keys Ollama does not know.
    pub unknown: Vec<String>,
}

/// An option of the wrong type, with Ollama's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub key: String,
    /// What the value must be, as Ollama words it: `"type integer"`, `"an array of strings"`.
    pub expected: &'static str,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "option \"{}\" must be of {}", self.key, self.expected)
    }
}

impl std::error::Error for OptionError {}

fn wrong(key: &str, expected: &'static str) -> OptionError {
    OptionError {
        key: key.to_string(),
        expected,
    }
}

fn int(key: &str, value: &Value) -> Result<i64, OptionError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| wrong(key, "type integer")),
        _ => Err(wrong(key, "type integer")),
    }
}

fn float(key: &str, value: &Value) -> Result<f32, OptionError> {
    value
        .as_f64()
        .map(|f| f as f32)
        .ok_or_else(|| wrong(key, "type float32"))
}

fn boolean(key: &str, value: &Value) -> Result<bool, OptionError> {
    value.as_bool().ok_or_else(|| wrong(key, "type boolean"))
}

fn strings(key: &str, value: &Value) -> Result<Vec<String>, OptionError> {
    let items = value.as_array().ok_or_else(|| wrong(key, "type array"))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| wrong(key, "an array of strings"))
        })
        .collect()
}

/// The type Ollama gives an option (`api.Options`' field types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    Int,
    Float,
    Bool,
    /// A list of strings (`stop`).
    Strings,
}

/// The type of the option `key`, for every option Ollama knows (`None`: not an option).
pub fn kind(key: &str) -> Option<OptionKind> {
    use OptionKind::*;
    Some(match key {
        "num_predict" | "num_ctx" | "top_k" | "repeat_last_n" | "seed" | "mirostat"
        | "num_keep" | "num_batch" | "num_gpu" | "main_gpu" | "num_thread"
        | "draft_num_predict" => Int,
        "temperature" | "top_p" | "min_p" | "typical_p" | "repeat_penalty" | "presence_penalty"
        | "frequency_penalty" | "tfs_z" | "mirostat_tau" | "mirostat_eta" => Float,
        "use_mmap" | "use_mlock" | "numa" | "low_vram" | "f16_kv" | "logits_all" | "vocab_only"
        | "embedding_only" | "penalize_newline" => Bool,
        "stop" => Strings,
        _ => return None,
    })
}

impl OptionKind {
    fn check(self, key: &str, value: &Value) -> Result<(), OptionError> {
        match self {
            OptionKind::Int => int(key, value).map(drop),
            OptionKind::Float => float(key, value).map(drop),
            OptionKind::Bool => boolean(key, value).map(drop),
            OptionKind::Strings => strings(key, value).map(drop),
        }
    }
}

impl Options {
    /// Reads `options` as Ollama does. `None` (the field omitted or `null`) is no options.
    pub fn from_map(map: Option<&Map<String, Value>>) -> Result<ParsedOptions, OptionError> {
        let mut parsed = ParsedOptions::default();
        let o = &mut parsed.options;
        for (key, value) in map.into_iter().flatten() {
            if value.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "num_predict" => o.num_predict = Some(int(k, value)?),
                "num_ctx" => o.num_ctx = Some(int(k, value)?),
                "temperature" => o.temperature = Some(float(k, value)?),
                "top_k" => o.top_k = Some(int(k, value)?),
                "top_p" => o.top_p = Some(float(k, value)?),
                "min_p" => o.min_p = Some(float(k, value)?),
                "typical_p" => o.typical_p = Some(float(k, value)?),
                "repeat_last_n" => o.repeat_last_n = Some(int(k, value)?),
                "repeat_penalty" => o.repeat_penalty = Some(float(k, value)?),
                "presence_penalty" => o.presence_penalty = Some(float(k, value)?),
                "frequency_penalty" => o.frequency_penalty = Some(float(k, value)?),
                "seed" => o.seed = Some(int(k, value)?),
                "stop" => o.stop = Some(strings(k, value)?),
                "mirostat" => o.mirostat = Some(int(k, value)?),
                _ => match kind(k) {
                    Some(kind) => {
                        kind.check(k, value)?;
                        parsed.load_time.push(key.clone());
                    }
                    None => parsed.unknown.push(key.clone()),
                },
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ParsedOptions, OptionError> {
        Options::from_map(v.as_object())
    }

    #[test]
    fn types_values_as_ollama_does() {
        let p = parse(json!({
            "num_predict": 5.9, "temperature": 1, "top_k": 40, "stop": ["a", "b"],
            "seed": null, "num_gpu": 0, "bogus": 1
        }))
        .unwrap();
        assert_eq!(p.options.num_predict, Some(5));
        assert_eq!(p.options.temperature, Some(1.0));
        assert_eq!(p.options.top_k, Some(40));
        assert_eq!(p.options.stop, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p.options.seed, None);
        assert_eq!(p.load_time, vec!["num_gpu".to_string()]);
        assert_eq!(p.unknown, vec!["bogus".to_string()]);
    }

    #[test]
    fn wrong_types_name_the_option() {
        let e = parse(json!({"temperature": "hot"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option \"temperature\" must be of type float32"
        );
        let e = parse(json!({"num_predict": true})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option \"num_predict\" must be of type integer"
        );
        let e = parse(json!({"stop": "x"})).unwrap_err();
        assert_eq!(e.expected, "type array");
        let e = parse(json!({"stop": [1]})).unwrap_err();
        assert_eq!(e.expected, "an array of strings");
        let e = parse(json!({"use_mmap": 1})).unwrap_err();
        assert_eq!(e.expected, "type boolean");
    }

    #[test]
    fn no_options_is_empty() {
        assert_eq!(Options::from_map(None).unwrap(), ParsedOptions::default());
    }
}
