//! Which backend loads which model format.

use minerva_core::{Backend, CoreError, LibraryModel, Result};
use std::sync::Arc;

/// Which backend loads which formats: the documented policy. A format's default backend is the
/// first that lists it; a model may name another (`minerva serve --backend`, `minerva config
/// NAME --backend`) when that one loads its format too.
pub const POLICY: [(&str, &[&str]); 2] =
    [("llama.cpp", &["gguf"]), ("mlx", &["safetensors", "mlx"])];

/// The backends an engine loads models with, by model format (`gguf` → llama.cpp,
/// `safetensors`/`mlx` → MLX). A format without a backend is refused when a model of it is
/// loaded, naming the format; so is a model whose chosen backend cannot load its format.
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

    /// The backend that loads `model` (the one it names, else its format's), or why none does.
    pub fn for_model(&self, model: &LibraryModel) -> Result<Arc<dyn Backend>> {
        if let Some(chosen) = &model.backend {
            check_backend(chosen, &model.format).map_err(|e| with_model(e, &model.name))?;
            return self
                .by_format
                .iter()
                .map(|(_, b)| b)
                .find(|b| b.name() == chosen)
                .cloned()
                .ok_or_else(|| {
                    CoreError::Unsupported(format!(
                        "model '{}' is to be loaded with the {chosen} backend, which this server does not have",
                        model.name
                    ))
                });
        }
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
    POLICY
        .iter()
        .find(|(_, formats)| formats.contains(&format))
        .map_or("unknown", |(name, _)| name)
}

/// The backend a library model is (or would be) loaded with: its own choice, else its
/// format's.
pub fn backend_of(model: &LibraryModel) -> String {
    model
        .backend
        .clone()
        .unwrap_or_else(|| backend_for_format(&model.format).to_string())
}

/// Whether `backend` can load models in `format`: an unknown backend is an invalid request, a
/// known one that cannot load the format is unsupported; both say what would.
pub fn check_backend(backend: &str, format: &str) -> Result<()> {
    let known: Vec<&str> = POLICY.iter().map(|(n, _)| *n).collect();
    let Some((_, formats)) = POLICY.iter().find(|(n, _)| *n == backend) else {
        return Err(CoreError::invalid(
            format!(
                "unknown backend '{backend}' (the backends are: {})",
                known.join(", ")
            ),
            Some("backend"),
        ));
    };
    if formats.contains(&format) {
        return Ok(());
    }
    Err(CoreError::Unsupported(format!(
        "the {backend} backend cannot load '{format}' models (it loads: {}); {} does",
        formats.join(", "),
        backend_for_format(format)
    )))
}

fn with_model(e: CoreError, model: &str) -> CoreError {
    match e {
        CoreError::Unsupported(m) => CoreError::Unsupported(format!("model '{model}': {m}")),
        other => other,
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
            fill_in_middle: false,
            backend: None,
            path: "m".into(),
            projector: None,
            settings: Default::default(),
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

    #[test]
    fn a_model_may_name_its_backend_when_that_backend_loads_its_format() {
        let backends = Backends::new()
            .with("gguf", Arc::new(Named("llama.cpp")))
            .with("safetensors", Arc::new(Named("mlx")));
        let mut hf = model("safetensors");
        hf.backend = Some("mlx".into());
        assert_eq!(backends.for_model(&hf).map(|b| b.name()).ok(), Some("mlx"));
        assert_eq!(backend_of(&hf), "mlx");
        hf.backend = Some("llama.cpp".into());
        match backends.for_model(&hf) {
            Err(CoreError::Unsupported(m)) => assert!(
                m.contains("model 'm'")
                    && m.contains("llama.cpp backend cannot load 'safetensors'")
                    && m.contains("mlx does"),
                "{m}"
            ),
            other => panic!("expected Unsupported, got {:?}", other.map(|b| b.name())),
        }
        hf.backend = Some("candle".into());
        assert!(matches!(
            backends.for_model(&hf),
            Err(CoreError::InvalidRequest { .. })
        ));
        let mut gguf = model("gguf");
        gguf.backend = Some("mlx".into());
        assert!(matches!(
            backends.for_model(&gguf),
            Err(CoreError::Unsupported(_))
        ));
        assert_eq!(backend_of(&model("gguf")), "llama.cpp");
        // A backend the policy allows but this server lacks.
        let gguf_only = Backends::new().with("gguf", Arc::new(Named("llama.cpp")));
        assert!(
            matches!(gguf_only.for_model(&hf_with("mlx")), Err(CoreError::Unsupported(m)) if m.contains("does not have"))
        );
    }

    fn hf_with(backend: &str) -> LibraryModel {
        let mut m = model("safetensors");
        m.backend = Some(backend.into());
        m
    }
}
