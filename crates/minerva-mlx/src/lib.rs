//! # minerva-mlx: Hugging Face models on MLX
//!
//! A [`Backend`] for Hugging Face model directories (safetensors weights, MLX-quantized or not)
//! that runs mlx-lm in a supervised Python child process, one per loaded model. Minerva keeps
//! the front end: the chat template (rendered by `minerva-template`, as for GGUF models), the
//! tokenizer (`tokenizer.json`, through the `tokenizers` crate: the same ids mlx-lm would make)
//! and each token's bytes; the child turns prompt ids into generated ids with mlx-lm's own
//! sampler. Requests are served one at a time, in order (the others wait in the child's queue).
//!
//! The child speaks a versioned JSON-lines protocol on its stdin/stdout (see
//! `python/minerva_mlx_worker.py`); its stderr is re-emitted through `tracing`. When it dies,
//! its in-flight requests end with an error and [`Model::failure`] says why, so that the
//! engine's manager drops the model and loads it again (a fresh child) on the next request.
//!
//! Once ready, the child is pinged every few seconds; one that stops answering for the health
//! timeout (`MINERVA_MLX_HEALTH_TIMEOUT`, 30 s by default) is killed and fails the same way.
//!
//! Python is found as [`MlxBackend::with_python`], else `MINERVA_PYTHON`, else `python3` on
//! `PATH` if it imports `mlx_lm`, else the managed environment (see [`python`]). This crate
//! depends on `minerva-core` and `minerva-template` only.

pub use minerva_core::hf;
mod model;
pub mod python;
pub mod tokenizer;
mod worker;

pub use hf::{detect, FormatError, HfConfig, ModelFormat};
pub use model::MlxModel;
pub use python::{find_python, FoundPython, PythonSource, PYTHON_HELP};
pub use worker::{WorkerStats, PROTOCOL, WORKER_SOURCE};

use minerva_core::{Backend, CoreError, Model, ModelFile, ModelInfo, ModelSpec, Result, TokenId};
use minerva_template::{ChatTemplate, DEFAULT_TEMPLATE};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Context window when the spec gives none.
const DEFAULT_CTX: u32 = 4096;
/// How long mlx-lm may take to import and load a model.
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Seconds a ready worker may go without answering a health check before it is killed
/// (0: no health checks).
pub const HEALTH_TIMEOUT_ENV: &str = "MINERVA_MLX_HEALTH_TIMEOUT";
/// The health timeout when neither [`MlxBackend::health_timeout`] nor the variable sets one.
/// A healthy worker answers within a fraction of a second, also while it computes a long
/// prompt (mlx releases the GIL), so this only has to outlast a machine that is very busy.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// Loads Hugging Face directories into MLX workers.
#[derive(Debug, Clone, Default)]
pub struct MlxBackend {
    python: Option<PathBuf>,
    managed_venv: Option<PathBuf>,
    health_timeout: Option<Duration>,
}

impl MlxBackend {
    /// Finds Python when a model is loaded: `MINERVA_PYTHON`, else `python3` on `PATH` (see
    /// [`python`]).
    pub fn new() -> Self {
        MlxBackend::default()
    }

    /// Uses this Python interpreter (over `MINERVA_PYTHON` and `PATH`).
    pub fn with_python(python: impl Into<PathBuf>) -> Self {
        MlxBackend {
            python: Some(python.into()),
            ..MlxBackend::default()
        }
    }

    /// Falls back to the virtual environment in `dir` (made by `minerva mlx setup`) when
    /// neither `MINERVA_PYTHON` nor `python3` on `PATH` gives a Python with mlx-lm.
    pub fn managed_venv(mut self, dir: impl Into<PathBuf>) -> Self {
        self.managed_venv = Some(dir.into());
        self
    }

    /// Kills a worker that answers no health check for `timeout` (zero: never), over
    /// `MINERVA_MLX_HEALTH_TIMEOUT`.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = Some(timeout);
        self
    }

    /// Loads `spec` and returns the model with its worker-facing extras (for tests).
    pub fn load_mlx(&self, spec: &ModelSpec) -> Result<MlxModel> {
        let dir = &spec.path;
        let config = hf::read_config(dir).map_err(|e| CoreError::Load(e.to_string()))?;
        if config.vision {
            // mlx-vlm would serve these, but its releases pull in transformers 5 and more beside
            // mlx-lm's pins; until it is set up (issue 13), refuse rather than serve the text half.
            return Err(CoreError::Load(format!(
                "{}: a vision-language model (config.json has vision_config); the MLX backend serves text models only. For images, serve a GGUF of the model with its mmproj file (minerva serve --model MODEL.gguf --mmproj MMPROJ.gguf)",
                dir.display()
            )));
        }
        let health = resolve_health_timeout(self.health_timeout)?;
        let found = find_python(self.python.as_deref(), self.managed_venv.as_deref())?;
        let python = found.python;
        let n_ctx_train = config.context_length.unwrap_or(0) as usize;
        let n_ctx = spec.ctx_size.unwrap_or(DEFAULT_CTX).max(16) as usize;
        let mut tokenizer =
            tokenizer::HfTokenizer::load(&dir.join("tokenizer.json"), config.vocab_size)?;
        let mut named = config.eos_ids.clone();
        named.extend(
            config
                .eos_token
                .as_deref()
                .and_then(|t| tokenizer.special_id(t)),
        );
        let eog = tokenizer.end_of_generation(&named);
        let tokenizer = Arc::new(tokenizer);
        let (source, default_template) = match (&spec.chat_template, &config.chat_template) {
            (Some(over), _) => (over.clone(), false),
            (None, Some(own)) => (own.clone(), false),
            (None, None) => (DEFAULT_TEMPLATE.to_string(), true),
        };
        let bos_text = config.bos_token.clone().unwrap_or_default();
        let eos_text = config.eos_token.clone().unwrap_or_default();
        let template = ChatTemplate::new(&source, &bos_text, &eos_text)
            .map_err(|e| CoreError::Template(e.to_string()))?;
        let bos = config
            .bos_token
            .as_deref()
            .and_then(|b| tokenizer.special_id(b))
            .map(|i| i as TokenId);
        tracing::info!(model = %spec.id, python = %python.display(), from = %found.source, dir = %dir.display(), "starting the MLX worker");
        let timeouts = worker::Timeouts {
            load: LOAD_TIMEOUT,
            health,
        };
        let worker =
            worker::Worker::start(&python, dir, &spec.id, Arc::clone(&tokenizer), timeouts)?;
        let file = ModelFile {
            format: config.format.unwrap_or("safetensors").to_string(),
            size: config.size,
            modified: std::fs::metadata(dir.join("config.json"))
                .and_then(|m| m.modified())
                .ok(),
            sha256: spec.sha256.clone(),
            architecture: config.model_type.clone(),
            n_params: config.n_params,
            quantization: config.quantization.clone(),
            metadata: Vec::new(),
        };
        Ok(MlxModel {
            info: ModelInfo {
                id: spec.id.clone(),
                backend: "mlx".to_string(),
                path: dir.clone(),
                n_ctx,
                n_ctx_train,
                n_vocab: tokenizer.n_vocab(),
                add_bos: config.add_bos_token && bos.is_some(),
                chat_template: source,
                default_template,
                file,
                embedding: None,
                fim: minerva_core::FimTokens::find(|text| {
                    tokenizer
                        .special_id(text)
                        .and_then(|id| TokenId::try_from(id).ok())
                }),
                // Vision models on MLX (mlx-vlm) are not served.
                vision: None,
                cpu_variant: None,
            },
            tokenizer,
            template,
            bos,
            eog,
            worker,
        })
    }
}

impl Backend for MlxBackend {
    fn name(&self) -> &'static str {
        "mlx"
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Model>> {
        Ok(Arc::new(self.load_mlx(spec)?))
    }
}

/// The health timeout: `explicit`, else `MINERVA_MLX_HEALTH_TIMEOUT` seconds, else the default;
/// `None` when it is zero (no health checks).
fn resolve_health_timeout(explicit: Option<Duration>) -> Result<Option<Duration>> {
    let timeout = match (explicit, std::env::var(HEALTH_TIMEOUT_ENV)) {
        (Some(t), _) => t,
        (None, Ok(v)) if !v.trim().is_empty() => parse_seconds(&v).ok_or_else(|| {
            CoreError::Load(format!(
                "{HEALTH_TIMEOUT_ENV}={v:?} is not a number of seconds (0 turns health checks off)"
            ))
        })?,
        _ => DEFAULT_HEALTH_TIMEOUT,
    };
    Ok((!timeout.is_zero()).then_some(timeout))
}

/// A non-negative number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds = text.trim().parse::<f64>().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_timeouts_are_seconds_and_zero_is_off() {
        assert_eq!(parse_seconds(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("2.5"), Some(Duration::from_millis(2500)));
        for bad in ["-1", "ten", "inf", "NaN", "30s"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
        let off = resolve_health_timeout(Some(Duration::ZERO));
        assert!(matches!(off, Ok(None)), "{off:?}");
        let set = resolve_health_timeout(Some(Duration::from_secs(3)));
        assert!(
            matches!(set, Ok(Some(t)) if t == Duration::from_secs(3)),
            "{set:?}"
        );
    }
}
