//! Resolving `--model` and loading it with the right backend.

use crate::{catalog, ModelArgs};
use anyhow::{bail, Context, Result};
use minerva_core::{Backend, Model, ModelSpec};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A path to a GGUF file, or a known model's name (fetched when missing).
pub fn resolve(model: &str, models_dir: &Path) -> Result<PathBuf> {
    let as_path = PathBuf::from(model);
    if as_path.is_file() {
        return Ok(as_path);
    }
    if let Some(entry) = catalog::find(model) {
        return catalog::ensure(entry, models_dir);
    }
    let known: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
    bail!(
        "'{model}' is neither a model file nor a known model name (known: {})",
        known.join(", ")
    )
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In this process: a native crash in the model takes the process down.
    InProcess,
    /// In a worker process of its own (this binary's `worker` mode).
    Worker,
}

pub fn load(args: &ModelArgs, models_dir: &Path, placement: Placement) -> Result<Arc<dyn Model>> {
    let path = resolve(&args.model, models_dir)?;
    let chat_template = match &args.chat_template {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading chat template {}", file.display()))?,
        ),
        None => None,
    };
    let spec = ModelSpec {
        id: catalog::model_id(&path),
        sha256: catalog::stamped_sha256(&path),
        path,
        ctx_size: Some(args.ctx_size),
        threads: args.threads,
        parallel: args.parallel,
        queue: Some(args.queue),
        chat_template,
        queue_timeout: Some(std::time::Duration::from_secs(args.queue_timeout)),
        cache_bytes: Some(args.cache_ram.saturating_mul(1 << 20)),
    };
    let backend: Box<dyn Backend> = match placement {
        Placement::InProcess => Box::new(minerva_llama::LlamaCppBackend::new()),
        Placement::Worker => {
            let exe = std::env::current_exe().context("finding the minerva binary")?;
            Box::new(minerva_worker::ProcessBackend::new(exe))
        }
    };
    tracing::info!(model = %spec.id, backend = backend.name(), ?placement, "loading");
    Ok(backend.load(&spec)?)
}
