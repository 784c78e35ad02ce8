use serde::Deserialize;
use serde_json::{Map, Value};

/// `POST /api/chat`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::ChatRequest)]
pub struct ChatRequest {
    /// The model; a request without one is refused with "model is required", as Ollama.
    #[serde(default)]
    pub model: String,
    /// Kept as JSON: checked by the server, handed to the chat template.
    #[serde(default)]
    pub messages: Vec<Value>,
    /// Ollama streams unless told not to (`None` means true).
    pub stream: Option<bool>,
    /// `"json"` or a JSON schema (structured output).
    pub format: Option<Value>,
    /// How long the model stays loaded (a duration string or seconds).
    pub keep_alive: Option<Value>,
    pub tools: Option<Value>,
    pub options: Option<Map<String, Value>>,
    /// `true`/`false` or a level (`"high"`, ...).
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::GenerateRequest)]
pub struct GenerateRequest {
    /// The model; a request without one is refused with "model is required".
    #[serde(default)]
    pub model: String,
    pub prompt: Option<String>,
    /// Text after the insertion point (fill-in-the-middle).
    pub suffix: Option<String>,
    pub system: Option<String>,
    /// A Go template replacing the model's prompt template.
    pub template: Option<String>,
    /// Token ids returned by an earlier generate (deprecated by Ollama).
    pub context: Option<Vec<i64>>,
    pub stream: Option<bool>,
    /// Send the prompt as it is, without the chat template.
    #[serde(default)]
    pub raw: bool,
    pub format: Option<Value>,
    pub keep_alive: Option<Value>,
    /// Base64 images for multimodal models.
    pub images: Option<Value>,
    pub options: Option<Map<String, Value>>,
    pub think: Option<Value>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<i64>,
}

/// `POST /api/show`: `model`, or the older `name`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::ShowRequest)]
pub struct ShowRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub verbose: bool,
}

/// `POST /api/pull`: `model`, or the older `name`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::PullRequest)]
pub struct PullRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
    /// Allow plain-HTTP registries (accepted; the source's scheme decides).
    #[serde(default)]
    pub insecure: bool,
    pub stream: Option<bool>,
}

/// `POST /api/create`: Ollama's current JSON fields, or its older form, the text of a
/// Modelfile in `modelfile` (the JSON fields given beside it win).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::CreateRequest)]
pub struct CreateRequest {
    /// The new model's name (`name` in older clients).
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
    /// An existing model to start from.
    pub from: Option<String>,
    /// File name → `sha256:<hex>` of a blob uploaded with `POST /api/blobs/...`.
    #[schema(value_type = Option<Object>)]
    pub files: Option<std::collections::BTreeMap<String, String>>,
    /// LoRA adapters, as `files`.
    #[schema(value_type = Option<Object>)]
    pub adapters: Option<std::collections::BTreeMap<String, String>>,
    pub template: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub license: Option<serde_json::Value>,
    pub system: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Vec<serde_json::Value>>,
    pub quantize: Option<String>,
    /// A Modelfile's text (Ollama's API before 0.5).
    pub modelfile: Option<String>,
    pub stream: Option<bool>,
}

/// `DELETE /api/delete`: `model`, or the older `name`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::DeleteRequest)]
pub struct DeleteRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
}

/// `POST /api/copy`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::CopyRequest)]
pub struct CopyRequest {
    pub source: String,
    pub destination: String,
}

/// `input` of `/api/embed`: one string or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::EmbedInput)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::EmbedRequest)]
pub struct EmbedRequest {
    pub model: String,
    /// Absent, `""` or `[]`: load the model only (as Ollama).
    pub input: Option<EmbedInput>,
    /// Cut inputs over the context to fit (`None` means true, as Ollama); `false` refuses them.
    pub truncate: Option<bool>,
    /// The vector length asked for.
    pub dimensions: Option<i64>,
    pub keep_alive: Option<Value>,
    pub options: Option<Map<String, Value>>,
}

/// `POST /api/embeddings` (Ollama's older, single-input form).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = ollama::EmbeddingsRequest)]
pub struct EmbeddingsRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub keep_alive: Option<Value>,
    pub options: Option<Map<String, Value>>,
}
