//! Wire types of Anthropic's Messages API (`POST /v1/messages`,
//! `POST /v1/messages/count_tokens`), as documented at docs.anthropic.com (API reference,
//! "Messages" and "Streaming Messages"). Serde only: the server checks and translates them.

mod request;
mod response;

pub use request::{CountTokensRequest, MessagesRequest};
pub use response::{
    Block, BlockDelta, ErrorBody, ErrorDetail, Message, MessageDelta, StreamEvent, TokenCount,
    Usage, UsageDelta,
};
