//! Which backend loads which model format.

use minerva_core::{Backend, CoreError, LibraryModel, Result};
use std::sync::Arc;

/// The backends an engine loads models with, by model format (`gguf` → llama.cpp,
/// `safetensors`/`mlx` → MLX). A format without a backend is refused when a model of it is
/// loaded, naming the format.
#[derive(Clone, Default)]
pub struct Backends {
    by_format: Vec<(String, Arc<dyn Backend>)>,
}

impl Backends {
    /// No backend: only models handed over already loaded can be served.
    pub fn new() -> Self {
        Backends::default()
    }

    /// Loads models of `format` with `backend` (replacing any backend registered for it).
    pub fn with(mut self, format: &str, backend: Arc<dyn Backend>) -> Self {
        self.by_format.retain(|(f, _)| f != format);
        self.by_format.push((format.to_string(), backend));
        self
    }

    /// The backend registered for `format`.
    pub fn get(&self, format: &str) -> Option<&Arc<dyn Backend>> {
        self.by_format
            .iter()
            .find(|(f, _)| f == format)
            .map(|(_, b)| b)
    }

    /// The backend that loads `model`, or why none does.
    pub fn for_model(&self, model: &LibraryModel) -> Result<Arc<dyn Backend>> {
        if let Some(backend) = self.get(&model.format) {
            return Ok(Arc::clone(backend));
        }
        if self.by_format.is_empty() {
            return Err(CoreError::Load(format!(
                "model '{}' is not loaded and cannot be loaded here",
                model.name
            )));
        }
        let known: Vec<&str> = self.by_format.iter().map(|(f, _)| f.as_str()).collect();
        Err(CoreError::Unsupported(format!(
            "model '{}' is in the '{}' format, which no backend here loads (loaded: {})",
            model.name,
            model.format,
            known.join(", ")
        )))
    }
}

/// One backend for GGUF models, as engines had before formats were told apart.
impl From<Arc<dyn Backend>> for Backends {
    fn from(backend: Arc<dyn Backend>) -> Self {
        Backends::new().with("gguf", backend)
    }
}

/// The name of the backend a format goes to (GGUF → llama.cpp, Hugging Face safetensors and
/// MLX-quantized directories → MLX), for listings of models not loaded yet.
pub fn backend_for_format(format: &str) -> &'static str {
    match format {
        "gguf" => "llama.cpp",
        "safetensors" | "mlx" => "mlx",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minerva_core::{Model, ModelSpec};

    struct Named(&'static str);
    impl Backend for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn load(&self, _: &ModelSpec) -> Result<Arc<dyn Model>> {
            Err(CoreError::Load("not in this test".into()))
        }
    }

    fn model(format: &str) -> LibraryModel {
        LibraryModel {
            name: "m".into(),
            source: String::new(),
            digest: String::new(),
            size: 0,
            modified: std::time::UNIX_EPOCH,
            format: format.into(),
            architecture: None,
            n_params: None,
            quantization: None,
            context_length: None,
            chat_template: None,
            license: None,
            kv_bytes_per_token: None,
            path: "m".into(),
        }
    }

    #[test]
    fn each_format_goes_to_its_backend() {
        let backends = Backends::new()
            .with("gguf", Arc::new(Named("llama.cpp")))
            .with("safetensors", Arc::new(Named("mlx")));
        let name = |f: &str| backends.for_model(&model(f)).map(|b| b.name());
        assert_eq!(name("gguf").ok(), Some("llama.cpp"));
        assert_eq!(name("safetensors").ok(), Some("mlx"));
        match name("onnx") {
            Err(CoreError::Unsupported(m)) => {
                assert!(
                    m.contains("'onnx'") && m.contains("gguf, safetensors"),
                    "{m}"
                )
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert_eq!(backend_for_format("mlx"), "mlx");
        assert_eq!(backend_for_format("gguf"), "llama.cpp");
    }
}
