//! Resolving `--model` and loading it with the right backend.

use crate::{catalog, library, LoadArgs, ModelArgs};
use anyhow::{bail, Context, Result};
use minerva_core::{Backend, LibraryModel, Model, ModelSpec};
use minerva_engine::{Backends, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A model file to load, the id to serve it under and its sha256 when known.
pub struct Resolved {
    pub path: PathBuf,
    pub id: String,
    pub sha256: Option<String>,
}

/// A path to a GGUF file or a Hugging Face model directory, a known model's name (fetched when
/// missing), or a model in the store.
pub fn resolve(model: &str, root: &Path) -> Result<Resolved> {
    let as_path = PathBuf::from(model);
    if as_path.is_dir() {
        // A Hugging Face directory, served under its directory name.
        let name = as_path.file_name().and_then(|f| f.to_str());
        return Ok(Resolved {
            id: name.unwrap_or("model").to_string(),
            sha256: None,
            path: as_path,
        });
    }
    if as_path.is_file() {
        return Ok(Resolved {
            id: catalog::model_id(&as_path),
            sha256: catalog::stamped_sha256(&as_path),
            path: as_path,
        });
    }
    let known = |entry: &catalog::Entry| -> Result<Resolved> {
        let path = catalog::ensure(entry, &catalog::cache_dir(root))?;
        Ok(Resolved {
            id: entry.name.to_string(),
            sha256: catalog::stamped_sha256(&path),
            path,
        })
    };
    if let Some(entry) = catalog::find_exact(model) {
        return known(entry);
    }
    // A model in the store wins over a catalog name without its tag (`gemma3` may be the
    // user's own `gemma3:latest`).
    match library::open(root)?.get(model) {
        Ok(m) => Ok(Resolved {
            id: m.name,
            sha256: Some(m.digest),
            path: m.path,
        }),
        Err(minerva_store::StoreError::NotFound(_) | minerva_store::StoreError::Invalid(_)) => {
            match catalog::find(model) {
                Some(entry) => known(entry),
                None => bail!(
                    "'{model}' is neither a model file, a known model name (known: {}) nor a model in the store (minerva list)",
                    catalog::known_names()
                ),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The load options every model gets from the command line.
pub fn options(args: &LoadArgs) -> Result<LoadOptions> {
    let chat_template = match &args.chat_template {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading chat template {}", file.display()))?,
        ),
        None => None,
    };
    Ok(LoadOptions {
        ctx_size: Some(args.ctx_size),
        threads: args.threads,
        parallel: args.parallel,
        kv_size: args.kv_size,
        kv_unified: args.no_kv_unified.then_some(false),
        flash_attn: Some(args.flash_attn.into()),
        queue: Some(args.queue),
        chat_template,
        queue_timeout: Some(std::time::Duration::from_secs(args.queue_timeout)),
        cache_bytes: Some(args.cache_ram.saturating_mul(1 << 20)),
    })
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In this process: a native crash in the model takes the process down.
    InProcess,
    /// In a worker process of its own (this binary's `worker` mode).
    Worker,
}

/// The backends for each model format: GGUF with llama.cpp where `placement` says, Hugging Face
/// directories with MLX (always in a Python worker process of their own).
pub fn backends(placement: Placement, python: Option<&Path>) -> Result<Backends> {
    let mlx: Arc<dyn Backend> = Arc::new(crate::mlx::backend(python));
    Ok(Backends::new()
        .with("gguf", backend(placement)?)
        .with(
            minerva_mlx::ModelFormat::Safetensors.as_str(),
            Arc::clone(&mlx),
        )
        .with(minerva_mlx::ModelFormat::Mlx.as_str(), mlx))
}

/// The backend that loads GGUF models where `placement` says.
pub fn backend(placement: Placement) -> Result<Arc<dyn Backend>> {
    Ok(match placement {
        Placement::InProcess => Arc::new(minerva_llama::LlamaCppBackend::new()),
        Placement::Worker => {
            let exe = std::env::current_exe().context("finding the minerva binary")?;
            Arc::new(minerva_worker::ProcessBackend::new(exe))
        }
    })
}

pub fn load(args: &ModelArgs, root: &Path, placement: Placement) -> Result<Arc<dyn Model>> {
    let model = describe(
        &args.model,
        args.load.backend.as_deref(),
        args.load.mmproj.as_deref(),
        root,
    )?;
    let backend = backends(placement, None)?.for_model(&model)?;
    let o = options(&args.load)?;
    let spec = ModelSpec {
        id: model.name,
        sha256: Some(model.digest).filter(|d| !d.is_empty()),
        path: model.path,
        ctx_size: o.ctx_size,
        threads: o.threads,
        parallel: o.parallel,
        kv_size: o.kv_size,
        kv_unified: o.kv_unified,
        flash_attn: o.flash_attn,
        queue: o.queue,
        chat_template: o.chat_template,
        queue_timeout: o.queue_timeout,
        cache_bytes: o.cache_bytes,
        projector: model.projector,
    };
    tracing::info!(model = %spec.id, backend = backend.name(), ?placement, "loading");
    Ok(backend.load(&spec)?)
}

/// The library entry for `--model`: the store's manifest for a stored name, else what the
/// GGUF file or Hugging Face directory says about itself. `backend` (the `--backend` flag)
/// replaces the model's choice, and must be able to load its format. `mmproj` (the `--mmproj`
/// flag) is the vision projector to load with it, replacing any the library keeps.
pub fn describe(
    model: &str,
    backend: Option<&str>,
    mmproj: Option<&Path>,
    root: &Path,
) -> Result<LibraryModel> {
    let resolved = resolve(model, root)?;
    let mut described = match library::open(root)?.get(&resolved.id) {
        Ok(stored) if stored.path == resolved.path => stored,
        _ if resolved.path.is_dir() => describe_hf(resolved)?,
        _ => describe_gguf(resolved)?,
    };
    if let Some(backend) = backend {
        minerva_engine::check_backend(backend, &described.format)
            .with_context(|| format!("--backend {backend} for {model}"))?;
        described.backend = Some(backend.to_string());
    }
    if let Some(mmproj) = mmproj {
        if described.format != "gguf" {
            bail!(
                "--mmproj goes with a GGUF model; {model} is {}",
                described.format
            );
        }
        if !mmproj.is_file() {
            bail!("--mmproj {}: no such file", mmproj.display());
        }
        described.projector = Some(mmproj.to_path_buf());
    }
    Ok(described)
}

fn describe_gguf(resolved: Resolved) -> Result<LibraryModel> {
    let format = minerva_core::hf::detect(&resolved.path)?;
    if format != minerva_core::hf::ModelFormat::Gguf {
        bail!("{} is not a GGUF file", resolved.path.display());
    }
    let info = minerva_store::gguf::read(&resolved.path)
        .with_context(|| format!("reading {}", resolved.path.display()))?;
    let meta = std::fs::metadata(&resolved.path)?;
    Ok(LibraryModel {
        name: resolved.id,
        source: resolved.path.display().to_string(),
        digest: resolved.sha256.unwrap_or_default(),
        size: meta.len(),
        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        format: "gguf".into(),
        architecture: info.architecture,
        n_params: Some(info.n_params),
        quantization: info.quantization,
        context_length: info.context_length,
        chat_template: info.chat_template,
        license: info.license,
        kv_bytes_per_token: info.kv_bytes_per_token,
        fill_in_middle: info.fill_in_middle,
        backend: None,
        path: resolved.path,
        projector: None,
        settings: Default::default(),
    })
}

/// The library entry for a Hugging Face directory (format `safetensors`, or `mlx` when
/// mlx-lm quantized it).
fn describe_hf(resolved: Resolved) -> Result<LibraryModel> {
    let config = minerva_core::hf::read_config(&resolved.path)?;
    let modified = std::fs::metadata(resolved.path.join("config.json"))
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH);
    Ok(config.library_model(
        resolved.id,
        resolved.path.display().to_string(),
        String::new(),
        resolved.path,
        modified,
    ))
}
