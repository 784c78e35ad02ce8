//! JSON body extractors whose every rejection is an OpenAI-shaped error ([`JsonBody`]) or an
//! Ollama-shaped one ([`OllamaJson`]).

use crate::error::OllamaError;
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but malformed JSON, a body that is not an object, wrong field types and
/// oversized bodies all answer with `{"error": ...}` and a 400 (or 413).
pub struct JsonBody<T>(pub T);

type PathError = serde_path_to_error::Error<serde_json::Error>;

/// How a request type is read from a JSON object.
pub(crate) trait ParseBody: Sized {
    fn parse(value: serde_json::Value) -> Result<Self, PathError>;
}

fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, PathError> {
    serde_path_to_error::deserialize(value)
}

/// Completion requests: the sampling fields are read from the same object on their own, so
/// an error in one of them still names its field.
fn parse_with_sampling<T: DeserializeOwned>(
    value: serde_json::Value,
    sampling: impl FnOnce(&mut T) -> &mut minerva_openai::SamplingFields,
) -> Result<T, PathError> {
    let fields = parse(value.clone())?;
    let mut req: T = parse(value)?;
    *sampling(&mut req) = fields;
    Ok(req)
}

impl ParseBody for minerva_openai::ChatCompletionRequest {
    fn parse(value: serde_json::Value) -> Result<Self, PathError> {
        parse_with_sampling(value, |r: &mut Self| &mut r.sampling)
    }
}

impl ParseBody for minerva_openai::CompletionRequest {
    fn parse(value: serde_json::Value) -> Result<Self, PathError> {
        parse_with_sampling(value, |r: &mut Self| &mut r.sampling)
    }
}

impl ParseBody for minerva_openai::InfillRequest {
    fn parse(value: serde_json::Value) -> Result<Self, PathError> {
        parse_with_sampling(value, |r: &mut Self| &mut r.sampling)
    }
}

/// Request types read as they are.
macro_rules! parse_as_is {
    ($($t:ty),* $(,)?) => {$(
        impl ParseBody for $t {
            fn parse(value: serde_json::Value) -> Result<Self, PathError> {
                parse(value)
            }
        }
    )*};
}

parse_as_is!(
    minerva_openai::TokenizeRequest,
    minerva_openai::DetokenizeRequest,
    minerva_openai::EmbeddingRequest,
    minerva_ollama::EmbedRequest,
    minerva_ollama::EmbeddingsRequest,
    minerva_ollama::ChatRequest,
    minerva_ollama::GenerateRequest,
    minerva_ollama::ShowRequest,
    minerva_ollama::PullRequest,
    minerva_ollama::DeleteRequest,
    minerva_ollama::CopyRequest,
    minerva_ollama::CreateRequest,
    minerva_anthropic::MessagesRequest,
    minerva_anthropic::CountTokensRequest,
    minerva_responses::ResponsesRequest,
);

impl<S: Send + Sync, T: ParseBody> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(JsonBody)
    }
}

/// [`JsonBody`] for the Anthropic routes: the same checks, answered in Anthropic's shape.
pub struct AnthropicJson<T>(pub T);

impl<S: Send + Sync, T: ParseBody> FromRequest<S> for AnthropicJson<T> {
    type Rejection = crate::error::AnthropicError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AnthropicJson(read_body(req, state).await?))
    }
}

/// [`JsonBody`] for the Ollama routes: the same checks, answered as `{"error": "..."}`.
pub struct OllamaJson<T>(pub T);

impl<S: Send + Sync, T: ParseBody> FromRequest<S> for OllamaJson<T> {
    type Rejection = OllamaError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(OllamaJson(read_body(req, state).await?))
    }
}

/// The OpenAI error `code` for a body that is JSON but not of the request's shape, from serde's
/// message: `invalid_type` (a value of the wrong JSON type), `missing_required_parameter`, or
/// `invalid_value` (anything else: an unknown enum variant, a number out of range, ...), the
/// codes OpenAI's API answers such bodies with.
fn typing_error_code(serde_message: &str) -> &'static str {
    if serde_message.starts_with("invalid type") {
        "invalid_type"
    } else if serde_message.starts_with("missing field") {
        "missing_required_parameter"
    } else {
        "invalid_value"
    }
}

/// Reads, parses and types a JSON object body.
async fn read_body<S: Send + Sync, T: ParseBody>(req: Request, state: &S) -> Result<T, ApiError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        let mut err = ApiError::bad_request(format!("cannot read the request body: {e}"), None);
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            err.status = StatusCode::PAYLOAD_TOO_LARGE;
            err.message = format!(
                "the request body is larger than {} bytes",
                crate::MAX_BODY_BYTES
            );
        }
        err
    })?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        let message = if e.to_string().starts_with("recursion limit exceeded") {
            // serde_json's limit: values nested deeper than 128 arrays and objects.
            format!("the body nests arrays and objects more than 128 deep ({e}); a JSON schema in it can nest about 60 object properties")
        } else {
            format!("the body is not valid JSON: {e}")
        };
        ApiError::bad_request(message, None).with_code("invalid_json")
    })?;
    if !value.is_object() {
        return Err(
            ApiError::bad_request("the body must be a JSON object", None).with_code("invalid_type"),
        );
    }
    let parsed = T::parse(value).map_err(|e| {
        let path = e.path().to_string();
        let param = (path != ".").then_some(path);
        let inner = e.inner().to_string();
        let mut err = ApiError::bad_request(format!("invalid request: {inner}"), None)
            .with_code(typing_error_code(&inner));
        if let Some(p) = param {
            err.message = format!("invalid value for '{p}': {inner}");
            err.param = Some(p);
        }
        err
    })?;
    Ok(parsed)
}
