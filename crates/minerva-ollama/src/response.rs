use serde::Serialize;
use serde_json::{Map, Value};

/// Ollama's error body: `{"error": "message"}`, also the last line of a stream that failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ErrorBody)]
pub struct ErrorBody {
    pub error: String,
}

/// What the last object of a generation adds: why it ended, and counts and durations
/// (nanoseconds).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = ollama::DoneFields)]
pub struct DoneFields {
    /// `"stop"`, `"length"`, or `"load"` for a request that only loads the model.
    pub done_reason: &'static str,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: usize,
    pub prompt_eval_duration: u64,
    pub eval_count: usize,
    pub eval_duration: u64,
}

/// A message in a chat response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::MessageOut)]
pub struct MessageOut {
    pub role: &'static str,
    pub content: String,
    /// The reasoning block's text, for a model that thinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
}

/// A tool call in a chat response: `{"id", "function": {"index", "name", "arguments"}}`, the
/// arguments a JSON object (Ollama's `api.ToolCall`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ToolCallOut)]
pub struct ToolCallOut {
    pub id: String,
    pub function: ToolCallFunction,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ToolCallFunction)]
pub struct ToolCallFunction {
    pub index: usize,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One log-probability (`logprobs`, per generated token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::TokenLogprob)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// A generated token's log-probability and, when asked, the most likely alternatives.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::Logprob)]
pub struct Logprob {
    #[serde(flatten)]
    pub token: TokenLogprob,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TokenLogprob>,
}

/// One object of `/api/chat` (a piece of the reply while streaming, or the whole reply).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ChatResponse)]
pub struct ChatResponse {
    pub model: String,
    pub created_at: String,
    pub message: MessageOut,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    #[serde(flatten)]
    pub end: Option<DoneFields>,
}

/// One object of `/api/generate`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::GenerateResponse)]
pub struct GenerateResponse {
    pub model: String,
    pub created_at: String,
    pub response: String,
    /// The reasoning block's text, for a model that thinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Logprob>>,
    #[serde(flatten)]
    pub end: Option<DoneFields>,
    /// On the last object: the token ids of the prompt and the reply, which a later request
    /// sends back as its `context` to continue (deprecated by Ollama, still sent and read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i32>>,
}

/// `details` of a model in listings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ModelDetails)]
pub struct ModelDetails {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    /// e.g. `"494.03M"`, see [`parameter_size`].
    pub parameter_size: String,
    pub quantization_level: String,
}

/// A model in `GET /api/tags`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ListedModel)]
pub struct ListedModel {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    /// As in `/api/show` (`completion`, `tools`, `thinking`, `embedding`, `insert`).
    pub capabilities: Vec<&'static str>,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ListResponse)]
pub struct ListResponse {
    pub models: Vec<ListedModel>,
}

/// A model in `GET /api/ps`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::RunningModel)]
pub struct RunningModel {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub digest: String,
    pub details: ModelDetails,
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: usize,
    /// Minerva's additions: the backend, the model's state, its worker process and the
    /// llama.cpp CPU variant it runs on (`zen4`, `haswell`, …; absent for other backends).
    pub backend: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_variant: Option<String>,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ProcessResponse)]
pub struct ProcessResponse {
    pub models: Vec<RunningModel>,
}

/// `POST /api/show`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ShowResponse)]
pub struct ShowResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Modelfile-style `PARAMETER` lines: name padded to 30 columns, then the value.
    pub parameters: String,
    pub template: String,
    /// A created model's system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A created model's messages (`{"role", "content"}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub messages: Option<Vec<Value>>,
    /// The model as a Modelfile (`FROM` its file, `SYSTEM`, `PARAMETER`, `MESSAGE`).
    pub modelfile: String,
    pub details: ModelDetails,
    pub model_info: Map<String, Value>,
    /// A vision model's projector (Ollama's `projector_info`): `clip.projector_type` when the
    /// file names it, and Minerva's `minerva.projector.path` and `minerva.projector.size`
    /// (bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projector_info: Option<Map<String, Value>>,
    pub capabilities: Vec<&'static str>,
    pub modified_at: String,
}

/// `GET /api/version`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::VersionResponse)]
pub struct VersionResponse {
    pub version: &'static str,
}

/// A parameter count the way Ollama writes it: `"494.03M"`, `"1.5B"`, `"7B"`, `"270K"`.
pub fn parameter_size(n: u64) -> String {
    const THOUSAND: u64 = 1_000;
    const MILLION: u64 = 1_000_000;
    const BILLION: u64 = 1_000_000_000;
    let whole = |unit: u64| n % unit == 0;
    match n {
        n if n >= BILLION && whole(BILLION) => format!("{}B", n / BILLION),
        n if n >= BILLION => format!("{:.1}B", n as f64 / BILLION as f64),
        n if n >= MILLION && whole(MILLION) => format!("{}M", n / MILLION),
        n if n >= MILLION => format!("{:.2}M", n as f64 / MILLION as f64),
        n if n >= THOUSAND => format!("{:.0}K", n as f64 / THOUSAND as f64),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameter_sizes_read_like_ollamas() {
        assert_eq!(parameter_size(494_032_768), "494.03M");
        assert_eq!(parameter_size(7_000_000_000), "7B");
        assert_eq!(parameter_size(1_543_714_304), "1.5B");
        assert_eq!(parameter_size(268_098_176), "268.10M");
        assert_eq!(parameter_size(12_000), "12K");
        assert_eq!(parameter_size(999), "999");
    }

    #[test]
    fn the_last_chunk_carries_the_counts_and_others_do_not() {
        let mut chunk = GenerateResponse {
            model: "m".into(),
            created_at: "t".into(),
            response: "hi".into(),
            thinking: None,
            done: false,
            logprobs: None,
            end: None,
            context: None,
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"model": "m", "created_at": "t", "response": "hi", "done": false})
        );
        chunk.done = true;
        chunk.end = Some(DoneFields {
            done_reason: "length",
            total_duration: 9,
            load_duration: 1,
            prompt_eval_count: 3,
            prompt_eval_duration: 4,
            eval_count: 5,
            eval_duration: 6,
        });
        chunk.context = Some(vec![1, 2]);
        let v = serde_json::to_value(&chunk).unwrap();
        assert_eq!(v["context"], json!([1, 2]));
        assert_eq!(v["done_reason"], "length");
        assert_eq!(v["eval_count"], 5);
        assert_eq!(v["total_duration"], 9);
    }
}

/// One status object of `POST /api/pull`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::ProgressResponse)]
pub struct ProgressResponse {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

/// The answer of `POST /api/embed`: unit-length vectors, durations in nanoseconds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::EmbedResponse)]
pub struct EmbedResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: usize,
}

/// The answer of `POST /api/embeddings`: the vector as the model gives it (not normalised,
/// as Ollama's older endpoint).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ollama::EmbeddingResponse)]
pub struct EmbeddingResponse {
    pub embedding: Vec<f32>,
}
