//! Wire types of OpenAI's Responses API (`POST /v1/responses`), as documented in OpenAI's API
//! reference ("Responses" and "Streaming events") and the `openai` Python package's types.
//! Serde only: the server checks the request and translates it into a chat completion.

mod event;
mod request;
mod response;

pub use event::StreamEvent;
pub use request::ResponsesRequest;
pub use response::{
    ContentPart, IncompleteDetails, InputTokensDetails, OutputItem, OutputTokensDetails,
    ReasoningContent, Response, ResponseError, Usage,
};
