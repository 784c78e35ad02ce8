//! One error type for every route, mapped to a status and OpenAI's error body, or Ollama's on
//! the Ollama routes ([`OllamaError`]).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use minerva_core::CoreError;
use minerva_openai::{ErrorBody, ErrorDetail};

/// An error answered to a client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// The same error naming `to` where it named `from` (an engine error names the field of
    /// the chat API; a route with other field names renames it).
    pub fn renaming(mut self, from: &str, to: &str) -> Self {
        if self.param.as_deref() == Some(from) {
            self.param = Some(to.to_string());
        }
        self
    }

    /// The same error naming field `param`.
    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// A 500 `server_error` whose details went to the log.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The OpenAI error body, also used inside an SSE stream.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind,
                param: self.param.clone(),
                code: self.code,
            },
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match &e {
            CoreError::InvalidRequest { message, param } => {
                ApiError::bad_request(message.clone(), *param)
            }
            CoreError::ContextOverflow { .. } => {
                ApiError::bad_request(e.to_string(), Some("messages"))
                    .with_code("context_length_exceeded")
            }
            CoreError::ModelNotFound(id) => ApiError::not_found(format!(
                "The model '{id}' does not exist or is not served here"
            ))
            .with_code("model_not_found"),
            CoreError::Unsupported(_) => {
                ApiError::bad_request(e.to_string(), None).with_code("unsupported")
            }
            CoreError::Template(_) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: e.to_string(),
                kind: "invalid_request_error",
                param: Some("messages".into()),
                code: Some("template_error"),
            },
            CoreError::Busy => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The server is busy: every sequence is running and the queue is full. Retry shortly.".into(),
                kind: "server_error",
                param: None,
                code: Some("server_busy"),
            },
            CoreError::QueueTimeout { .. } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("{e}. Retry shortly."),
                kind: "server_error",
                param: None,
                code: Some("queue_timeout"),
            },
            CoreError::Unavailable(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
                kind: "server_error",
                param: None,
                code: Some("unavailable"),
            },
            CoreError::Load(_) => {
                tracing::error!(error = %e, "model load failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: e.to_string(),
                    kind: "server_error",
                    param: None,
                    code: Some("model_load_failed"),
                }
            }
            CoreError::Backend(_) => {
                tracing::error!(error = %e, "request failed in the engine");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: format!("The model failed while serving this request: {e}"),
                    kind: "server_error",
                    param: None,
                    code: None,
                }
            }
        }
    }
}

/// An error response: the status, a JSON body, and `Retry-After` when the server is busy.
fn error_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut response = (status, [(header::CONTENT_TYPE, JSON_UTF8)], body).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // The queue is full or was too slow: a client should come back shortly.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.body())
    }
}

/// An [`ApiError`] answered in Ollama's shape, `{"error": "message"}`, with the same status.
/// An unknown model reads as Ollama says it: `model "x" not found, try pulling it first`.
#[derive(Debug)]
pub struct OllamaError(pub ApiError);

impl OllamaError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        OllamaError(ApiError::bad_request(message, None))
    }

    pub fn model_not_found(name: &str) -> Self {
        OllamaError(ApiError::not_found(format!(
            "model \"{name}\" not found, try pulling it first"
        )))
    }

    /// Ollama's error body, also the last line of a stream that failed.
    pub fn body(&self) -> minerva_ollama::ErrorBody {
        minerva_ollama::ErrorBody {
            error: self.0.message.clone(),
        }
    }
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        OllamaError(e)
    }
}

impl From<CoreError> for OllamaError {
    fn from(e: CoreError) -> Self {
        if let CoreError::ModelNotFound(id) = &e {
            return OllamaError::model_not_found(id);
        }
        OllamaError(ApiError::from(e))
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        error_response(self.0.status, &self.body())
    }
}

/// An [`ApiError`] answered in Anthropic's shape, `{"type": "error", "error": {"type",
/// "message"}}`, with the same status; the error type follows the status as Anthropic's API
/// reference lists them.
#[derive(Debug)]
pub struct AnthropicError(pub ApiError);

impl AnthropicError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AnthropicError(ApiError::bad_request(message, None))
    }

    fn kind(&self) -> &'static str {
        match self.0.status.as_u16() {
            400 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// Anthropic's error body, also the `error` event of a stream that failed.
    pub fn body(&self) -> minerva_anthropic::ErrorBody {
        minerva_anthropic::ErrorBody {
            kind: "error",
            error: self.detail(),
        }
    }

    pub fn detail(&self) -> minerva_anthropic::ErrorDetail {
        minerva_anthropic::ErrorDetail {
            kind: self.kind(),
            message: self.0.message.clone(),
        }
    }
}

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

impl From<CoreError> for AnthropicError {
    fn from(e: CoreError) -> Self {
        AnthropicError(ApiError::from(e))
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        error_response(self.0.status, &self.body())
    }
}

/// `error` answered in the shape of the API `path` belongs to: Ollama's under `/api/`,
/// Anthropic's under `/v1/messages`, OpenAI's elsewhere.
pub(crate) fn for_path(path: &str, error: ApiError) -> Response {
    match Dialect::of(path) {
        Dialect::Ollama => OllamaError(error).into_response(),
        Dialect::Anthropic => AnthropicError(error).into_response(),
        Dialect::OpenAi => error.into_response(),
    }
}

/// Whose error shape a path answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `{"error": {"message", "type", "param", "code"}}`: every path not below.
    OpenAi,
    /// `{"error": "message"}`: `/api/...`.
    Ollama,
    /// `{"type": "error", "error": {"type", "message"}}`: `/v1/messages...`.
    Anthropic,
}

impl Dialect {
    pub(crate) fn of(path: &str) -> Dialect {
        if path.starts_with("/api/") {
            Dialect::Ollama
        } else if path.starts_with("/v1/messages") {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }
}

/// The content type of every JSON answer, as Ollama's (Go's gin) and llama-server's say it.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Gives a JSON answer its charset (`application/json; charset=utf-8`); others are left as
/// they are.
pub(crate) async fn json_charset(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    if json {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(JSON_UTF8),
        );
    }
    response
}
