//! Several choices for one request (`n` > 1): starting them through
//! [`Engine::complete_n`], and reading them as one stream of `(index, event)` or all at once.
//! Shared by `/v1/completions` and `/v1/chat/completions`.

use crate::metrics::{Collected, Metered, Metrics};
use crate::ApiError;
use futures::stream::{self, Stream};
use minerva_core::{CoreError, Usage};
use minerva_engine::{ChatEvent, ChatStream, CompletionJob, Engine, TextEvent};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// One choice's events, tagged with its index.
type Tagged = Pin<Box<dyn Stream<Item = (usize, Result<TextEvent, CoreError>)> + Send>>;

/// Starts `n` choices of `job` (see [`Engine::complete_n`]), each metered.
pub async fn start(
    engine: &Engine,
    job: CompletionJob,
    n: usize,
    metrics: &Arc<Metrics>,
    started: Instant,
) -> Result<Vec<Metered>, ApiError> {
    let streams = if n == 1 {
        vec![engine.complete(job).await?]
    } else {
        engine.complete_n(job, n).await?
    };
    Ok(streams
        .into_iter()
        .map(|s| Metered::new(s, Arc::clone(metrics), started))
        .collect())
}

/// Every choice's events as one stream of `(choice index, event)`, in the order they come.
/// Each choice ends with its own `Done` (or an error); the stream ends when every choice has.
/// Dropping it cancels every choice still generating.
pub fn merge(
    streams: Vec<Metered>,
) -> impl Stream<Item = (usize, Result<TextEvent, CoreError>)> + Send + Unpin {
    let tagged = streams.into_iter().enumerate().map(|(index, mut s)| {
        let one: Tagged = Box::pin(async_stream::stream! {
            while let Some(event) = s.next().await {
                yield (index, event);
            }
        });
        one
    });
    stream::select_all(tagged)
}

/// One chat choice's events, tagged with its index.
type TaggedChat = Pin<Box<dyn Stream<Item = (usize, Result<ChatEvent, CoreError>)> + Send>>;

/// Each choice's generation parsed as a chat reply (content and tool calls).
pub fn chats(streams: Vec<Metered>) -> Vec<ChatStream<Metered>> {
    streams
        .into_iter()
        .map(|m| {
            let parser = m.reply_parser();
            ChatStream::new(m, parser)
        })
        .collect()
}

/// [`merge`] for chat replies.
pub fn merge_chats(
    streams: Vec<ChatStream<Metered>>,
) -> impl Stream<Item = (usize, Result<ChatEvent, CoreError>)> + Send + Unpin {
    let tagged = streams.into_iter().enumerate().map(|(index, mut s)| {
        let one: TaggedChat = Box::pin(async_stream::stream! {
            while let Some(event) = s.next().await {
                yield (index, event);
            }
        });
        one
    });
    stream::select_all(tagged)
}

/// Every choice read to its end, in index order (for responses that are not streamed).
pub async fn collect(streams: Vec<Metered>) -> Result<Vec<Collected>, CoreError> {
    futures::future::join_all(streams.into_iter().map(Metered::collect))
        .await
        .into_iter()
        .collect()
}

/// The usage of the whole request: the prompt counted once, the completions of every choice
/// (see [`minerva_engine::merged_usage`]).
pub fn usage<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Usage {
    let all: Vec<Usage> = usages.into_iter().copied().collect();
    minerva_engine::merged_usage(&all)
}
