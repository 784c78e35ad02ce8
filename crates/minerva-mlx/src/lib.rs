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
//! Python is found as `MINERVA_PYTHON` (or [`MlxBackend::with_python`]), else `python3` on
//! `PATH`, and must import `mlx_lm`. This crate depends on `minerva-core` and
//! `minerva-template` only.

pub use minerva_core::hf;
mod model;
pub mod tokenizer;
mod worker;

pub use hf::{detect, FormatError, HfConfig, ModelFormat};
pub use model::MlxModel;
pub use worker::{WorkerStats, PROTOCOL, WORKER_SOURCE};

use minerva_core::{Backend, CoreError, Model, ModelFile, ModelInfo, ModelSpec, Result, TokenId};
use minerva_template::{ChatTemplate, DEFAULT_TEMPLATE};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How Minerva finds the Python that runs mlx-lm, for error messages.
pub const PYTHON_HELP: &str = "install mlx-lm into a Python 3 (`pip install mlx-lm 'mlx[cpu]'` on Linux, `pip install mlx-lm` on macOS) and put that python3 first on PATH, or set MINERVA_PYTHON=/path/to/python (or pass --python)";

/// Context window when the spec gives none.
const DEFAULT_CTX: u32 = 4096;
/// How long mlx-lm may take to import and load a model.
const LOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Loads Hugging Face directories into MLX workers.
#[derive(Debug, Clone, Default)]
pub struct MlxBackend {
    python: Option<PathBuf>,
}

impl MlxBackend {
    /// Finds Python when a model is loaded: `MINERVA_PYTHON`, else `python3` on `PATH`.
    pub fn new() -> Self {
        MlxBackend::default()
    }

    /// Uses this Python interpreter (over `MINERVA_PYTHON` and `PATH`).
    pub fn with_python(python: impl Into<PathBuf>) -> Self {
        MlxBackend {
            python: Some(python.into()),
        }
    }

    /// Loads `spec` and returns the model with its worker-facing extras (for tests).
    pub fn load_mlx(&self, spec: &ModelSpec) -> Result<MlxModel> {
        let dir = &spec.path;
        let config = hf::read_config(dir).map_err(|e| CoreError::Load(e.to_string()))?;
        let python = find_python(self.python.as_deref())?;
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
        tracing::info!(model = %spec.id, python = %python.display(), dir = %dir.display(), "starting the MLX worker");
        let worker =
            worker::Worker::start(&python, dir, &spec.id, Arc::clone(&tokenizer), LOAD_TIMEOUT)?;
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

/// The Python that imports mlx_lm: `explicit`, else `MINERVA_PYTHON`, else `python3` on `PATH`.
pub fn find_python(explicit: Option<&Path>) -> Result<PathBuf> {
    let (python, how) = match (explicit, std::env::var_os("MINERVA_PYTHON")) {
        (Some(p), _) => (p.to_path_buf(), "--python"),
        (None, Some(p)) if !p.is_empty() => (PathBuf::from(p), "MINERVA_PYTHON"),
        _ => (PathBuf::from("python3"), "PATH"),
    };
    let output = std::process::Command::new(&python)
        .args(["-c", "import mlx_lm"])
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr.lines().last().unwrap_or("").trim().to_string();
            Err(CoreError::Load(format!(
                "the MLX backend needs Python with mlx-lm, and {} (from {how}) cannot import mlx_lm ({last}): {PYTHON_HELP}",
                python.display()
            )))
        }
        Err(e) => Err(CoreError::Load(format!(
            "the MLX backend needs Python with mlx-lm, and {} (from {how}) cannot be run ({e}): {PYTHON_HELP}",
            python.display()
        ))),
    }
}
