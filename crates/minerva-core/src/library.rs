//! The model library: the models a user has pulled or imported, by name.
//!
//! The engine serves models by library name and loads them on demand; the HTTP routes list,
//! pull, copy and delete through this trait. `minerva-store` implements it on a directory of
//! manifests and content-addressed blobs; nothing here knows about files or HTTP.

use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

/// One model of the library, as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryModel {
    /// The full name with its tag, e.g. `qwen2.5-coder:0.5b` or `hf.co/owner/repo:Q4_K_M`.
    pub name: String,
    /// Where it came from: a URL, a hub reference or a local path.
    pub source: String,
    /// sha256 of the model's file (hex, 64 characters); for a directory, of its list of files
    /// and their digests.
    pub digest: String,
    /// Size of the model's files in bytes.
    pub size: u64,
    /// When the model entered the library (or was last changed).
    pub modified: SystemTime,
    /// `gguf`, `safetensors` (a Hugging Face directory) or `mlx` (one mlx-lm quantized).
    pub format: String,
    pub architecture: Option<String>,
    pub n_params: Option<u64>,
    /// Quantization in llama.cpp's naming, e.g. `Q4_K_M`.
    pub quantization: Option<String>,
    /// The context length the model was trained with.
    pub context_length: Option<u64>,
    /// The chat template the model file carries.
    pub chat_template: Option<String>,
    /// The licence text or name the model file carries.
    pub license: Option<String>,
    /// Bytes of KV cache one token takes (for memory estimates), when the metadata says.
    pub kv_bytes_per_token: Option<u64>,
    /// Whether the vocabulary has fill-in-the-middle prefix, suffix and middle tokens (by
    /// their texts or `tokenizer.ggml.fim_*_token_id`, as llama.cpp finds them).
    #[serde(default)]
    pub fill_in_middle: bool,
    /// The backend the user chose for this model (`llama.cpp`, `mlx`); `None` lets the format
    /// decide (GGUF → llama.cpp, Hugging Face directories → MLX).
    #[serde(default)]
    pub backend: Option<String>,
    /// What a backend loads: a GGUF blob inside the store, or a directory of the model's files.
    pub path: PathBuf,
    /// The multimodal projector (llama.cpp's `mmproj` GGUF) kept with a vision model.
    #[serde(default)]
    pub projector: Option<PathBuf>,
    /// What a created model (Ollama's `/api/create`, a Modelfile) adds to every request.
    #[serde(default)]
    pub settings: ModelSettings,
}

/// A created model's own settings, applied by every route to requests for it (Ollama's
/// Modelfile `SYSTEM`, `PARAMETER`, `MESSAGE`, `LICENSE`). The request's own values win.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// The system prompt when a request has no system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Default sampling options, by Ollama's option names (`temperature`, `top_k`, `stop`,
    /// `num_predict`, ...), checked when the model was created.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Messages (`{"role", "content"}`) put before a chat request's own, after its system
    /// message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<serde_json::Value>,
    /// A Jinja chat template that replaces the model file's own (checked when the model was
    /// created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Licence texts that replace the model file's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub license: Vec<String>,
}

impl ModelSettings {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.system.is_none()
            && self.parameters.is_empty()
            && self.messages.is_empty()
            && self.template.is_none()
            && self.license.is_empty()
    }

    /// `newer` on top of these settings, as a model created from another gets them: a
    /// system prompt, messages, template or licence it gives replaces this one; its
    /// parameters add to these (its value wins).
    pub fn merged(mut self, newer: ModelSettings) -> ModelSettings {
        if newer.system.is_some() {
            self.system = newer.system;
        }
        if !newer.messages.is_empty() {
            self.messages = newer.messages;
        }
        if newer.template.is_some() {
            self.template = newer.template;
        }
        if !newer.license.is_empty() {
            self.license = newer.license;
        }
        self.parameters.extend(newer.parameters);
        self
    }

    /// The context window the settings ask for (`num_ctx`), in tokens.
    pub fn num_ctx(&self) -> Option<u32> {
        self.parameters
            .get("num_ctx")
            .and_then(serde_json::Value::as_i64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
    }

    /// Puts the settings' system prompt (when `messages` does not open with a system message)
    /// and messages
    /// (after the leading system messages) into a chat request's `messages`.
    pub fn apply_to_messages(&self, messages: &mut Vec<serde_json::Value>) {
        let is_system = |m: &serde_json::Value| {
            m.get("role").and_then(serde_json::Value::as_str) == Some("system")
        };
        if let Some(system) = &self.system {
            // As Ollama (server/routes.go, ChatHandler): unless the conversation opens with a
            // system message of its own.
            if !messages.first().is_some_and(is_system) {
                messages.insert(0, serde_json::json!({"role": "system", "content": system}));
            }
        }
        let at = messages.iter().take_while(|m| is_system(m)).count();
        for (k, m) in self.messages.iter().enumerate() {
            messages.insert(at + k, m.clone());
        }
    }
}

/// One step of a pull, as Ollama's `/api/pull` streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// `pulling manifest`, `pulling <digest>`, `verifying sha256 digest`, `writing manifest`,
    /// `success`.
    pub status: String,
    /// `sha256:<hex>` of the file being downloaded, when known.
    pub digest: Option<String>,
    /// Bytes in the file being downloaded, when known.
    pub total: Option<u64>,
    /// Bytes of it on disk so far (a resumed download starts above zero).
    pub completed: Option<u64>,
}

impl PullProgress {
    /// A step that is only a status line (`writing manifest`, `success`).
    pub fn status(text: &str) -> Self {
        PullProgress {
            status: text.to_string(),
            digest: None,
            total: None,
            completed: None,
        }
    }
}

/// A file being uploaded into the library under its digest ([`Library::upload_blob`]).
pub trait BlobUpload: Send {
    /// Appends `bytes` (hashed as they go).
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// Checks the digest and keeps the blob; its size in bytes. A mismatch is
    /// `InvalidRequest`. An upload dropped before this leaves nothing behind.
    fn finish(self: Box<Self>) -> Result<u64>;
}

/// The models a user has, by name. Methods block (disk and network): call them from a blocking
/// thread when on an async runtime.
pub trait Library: Send + Sync {
    /// Every model, sorted by name.
    fn list(&self) -> Result<Vec<LibraryModel>>;

    /// The model with this name (a name without a tag means `:latest`). An invalid name is
    /// `InvalidRequest`; an unknown one `ModelNotFound`.
    fn get(&self, name: &str) -> Result<LibraryModel>;

    /// Deletes the model's manifest, and its blobs when no other model uses them.
    fn remove(&self, name: &str) -> Result<()>;

    /// Makes `to` a second name for the model `from` (no data is copied).
    fn copy(&self, from: &str, to: &str) -> Result<()>;

    /// Adds the local GGUF file or model directory at `path` under `name` (hard-linked where it
    /// can be, else copied; hashed), with the vision projector `projector` (a GGUF model's
    /// `mmproj` file) when given. The default refuses: a library that cannot take files.
    fn import(
        &self,
        path: &std::path::Path,
        projector: Option<&std::path::Path>,
        name: &str,
    ) -> Result<LibraryModel> {
        let _ = (path, projector, name);
        Err(crate::CoreError::Unsupported(
            "this library cannot add local files".into(),
        ))
    }

    /// Whether the blob `sha256:<hex>` is in the library (Ollama's `HEAD /api/blobs/...`). A
    /// malformed digest is `InvalidRequest`. The default: a library without blobs.
    fn has_blob(&self, digest: &str) -> Result<bool> {
        let _ = digest;
        Err(crate::CoreError::Unsupported(
            "this library keeps no blobs".into(),
        ))
    }

    /// Starts an upload of the blob `digest` (`sha256:<hex>`), verified as it streams.
    fn upload_blob(&self, digest: &str) -> Result<Box<dyn BlobUpload>> {
        let _ = digest;
        Err(crate::CoreError::Unsupported(
            "this library takes no uploads".into(),
        ))
    }

    /// Adds `name`, made of uploaded blobs: `files` pairs each file name with its digest
    /// (Ollama's `/api/create` `files`): one GGUF model and at most one vision projector.
    fn create_from_blobs(&self, name: &str, files: &[(String, String)]) -> Result<LibraryModel> {
        let _ = (name, files);
        Err(crate::CoreError::Unsupported(
            "this library cannot make models from blobs".into(),
        ))
    }

    /// Records a created model's own settings (replacing any it had).
    fn set_settings(&self, name: &str, settings: ModelSettings) -> Result<LibraryModel> {
        let _ = (name, settings);
        Err(crate::CoreError::Unsupported(
            "this library keeps no model settings".into(),
        ))
    }

    /// Records the backend the model is to be loaded with (`None`: by its format). The caller
    /// checks that the backend can load the model's format.
    fn set_backend(&self, name: &str, backend: Option<&str>) -> Result<LibraryModel>;

    /// Downloads a model (a hub reference or an https URL, see `minerva pull`), verifies it and
    /// adds it under `name` (default: derived from the source). Reports progress as it goes;
    /// stops with an error when `cancel` becomes true, keeping the partial download for a resume.
    fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> Result<LibraryModel>;
}

#[cfg(test)]
mod settings_tests {
    use super::ModelSettings;
    use serde_json::json;

    #[test]
    fn system_and_messages_go_where_ollama_puts_them() {
        let settings = ModelSettings {
            system: Some("S".into()),
            messages: vec![
                json!({"role": "user", "content": "m1"}),
                json!({"role": "assistant", "content": "m2"}),
            ],
            ..ModelSettings::default()
        };
        let mut plain = vec![json!({"role": "user", "content": "q"})];
        settings.apply_to_messages(&mut plain);
        let roles: Vec<&str> = plain.iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(roles, ["S", "m1", "m2", "q"]);
        // The request's own system prompt wins; the messages go after it.
        let mut own = vec![
            json!({"role": "system", "content": "mine"}),
            json!({"role": "user", "content": "q"}),
        ];
        settings.apply_to_messages(&mut own);
        let roles: Vec<&str> = own.iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(roles, ["mine", "m1", "m2", "q"]);
        // A system message later in the conversation does not replace the model's.
        let mut later = vec![
            json!({"role": "user", "content": "q"}),
            json!({"role": "system", "content": "late"}),
        ];
        settings.apply_to_messages(&mut later);
        let roles: Vec<&str> = later.iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(roles, ["S", "m1", "m2", "q", "late"]);
        assert!(ModelSettings::default().is_empty() && !settings.is_empty());
    }
}
