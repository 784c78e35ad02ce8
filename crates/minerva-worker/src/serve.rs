//! The worker's side: load one model with an in-process backend and serve it over the socket.
//!
//! The main thread reads the parent's frames. Tokenize, render and token-bytes calls run on
//! threads of their own (they may take milliseconds); each generation's stream is pumped into
//! frames by a task on a small runtime, which drops the stream (cancelling the generation in
//! the backend) when the parent sends `Cancel`. Frames are written whole under one lock, by
//! the thread that made them: a token costs no extra thread wake-up on its way out.

use crate::protocol::{
    encode, read_message, write_message, FromWorker, Reply, ToWorker, WireError, PROTOCOL_VERSION,
};
use crate::{Result, WorkerError};
use minerva_core::{Backend, CoreError, GenerationStream, Model};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;
use tracing::Instrument;

/// The socket to the parent; a frame is written whole while the lock is held.
#[derive(Clone)]
struct Outbox(Arc<Mutex<UnixStream>>);

impl Outbox {
    /// Writes one frame; false when the parent is gone.
    fn write(&self, frame: &[u8]) -> bool {
        let mut socket = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match socket.write_all(frame) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("cannot write to the parent: {e}");
                false
            }
        }
    }
}
/// The `Cancel` handle of each running generation: dropping it ends the generation's pump.
type Cancels = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

/// Connects to the parent at `socket`, loads the model it asks for with `backend` and serves it
/// until the parent says `Shutdown` or goes away.
pub fn serve_worker(socket: &Path, backend: &dyn Backend) -> Result<()> {
    let pid = std::process::id();
    let stream = UnixStream::connect(socket)?;
    let mut input = BufReader::new(stream.try_clone()?);
    let mut output = stream;
    write_message(
        &mut output,
        &FromWorker::Hello {
            version: PROTOCOL_VERSION,
            pid,
        },
    )?;
    match read_message(&mut input)? {
        ToWorker::Hello { version } if version == PROTOCOL_VERSION => {}
        ToWorker::Hello { version } => {
            return Err(WorkerError::Version {
                ours: PROTOCOL_VERSION,
                theirs: version,
            })
        }
        other => return Err(WorkerError::Protocol(format!("{other:?} before hello"))),
    }
    let spec = match read_message(&mut input)? {
        ToWorker::Load(spec) => spec,
        ToWorker::Shutdown => return Ok(()),
        other => return Err(WorkerError::Protocol(format!("{other:?} before load"))),
    };
    let span = tracing::info_span!("worker", pid, model = %spec.id);
    let _entered = span.enter();
    tracing::info!(path = %spec.path.display(), backend = backend.name(), "loading");
    let model = match backend.load(&spec) {
        Ok(model) => model,
        Err(e) => {
            tracing::error!("load failed: {e}");
            write_message(&mut output, &FromWorker::LoadFailed(WireError::from(&e)))?;
            return Err(e.into());
        }
    };
    write_message(
        &mut output,
        &FromWorker::Loaded {
            info: Box::new(model.info().clone()),
            memory_bytes: model.memory_bytes(),
        },
    )?;
    tracing::info!("loaded");

    let outbox = Outbox(Arc::new(Mutex::new(output)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("worker-pump")
        .build()?;
    let cancels: Cancels = Arc::default();

    let result = loop {
        let message = match read_message::<ToWorker>(&mut input) {
            Ok(message) => message,
            Err(WorkerError::Closed) => {
                tracing::info!("the parent went away; exiting");
                break Ok(());
            }
            Err(e) => break Err(e),
        };
        match message {
            ToWorker::Status { id } => {
                post(&outbox, id, Ok(Reply::Status(model.status())));
            }
            ToWorker::Generate { id, request } => {
                let started = model.generate(request);
                start_stream(started, id, &outbox, &cancels, &runtime, &span);
            }
            ToWorker::Embed { id, request } => {
                let started = model.embed(request);
                start_stream(started, id, &outbox, &cancels, &runtime, &span);
            }
            ToWorker::Cancel { id } => {
                let cancelled = cancels
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if cancelled.is_some() {
                    tracing::debug!(request = id, "cancelled");
                }
            }
            ToWorker::Shutdown => {
                tracing::info!("shutting down");
                break Ok(());
            }
            ToWorker::Hello { .. } | ToWorker::Load(_) => {
                tracing::warn!("ignoring a second hello or load");
            }
            rpc => answer_on_thread(&model, rpc, &outbox, &span),
        }
    };
    runtime.shutdown_background();
    result
}

/// Sends a reply frame.
fn post(outbox: &Outbox, id: u64, result: minerva_core::Result<Reply>) {
    let result = result.map_err(|e| WireError::from(&e));
    send_frame(outbox, &FromWorker::Reply { id, result });
}

/// Encodes and writes a frame; returns false when the parent is gone.
fn send_frame(outbox: &Outbox, message: &FromWorker) -> bool {
    match encode(message) {
        Ok(frame) => outbox.write(&frame),
        Err(e) => {
            tracing::error!("cannot encode a reply: {e}");
            // Tell the parent rather than leave it waiting.
            let fallback = match message {
                FromWorker::Reply { id, .. } => FromWorker::Reply {
                    id: *id,
                    result: Err(WireError::Backend(e.to_string())),
                },
                FromWorker::Event { id, .. } | FromWorker::End { id, .. } => FromWorker::End {
                    id: *id,
                    error: Some(WireError::Backend(e.to_string())),
                },
                _ => return false,
            };
            encode(&fallback).is_ok_and(|frame| outbox.write(&frame))
        }
    }
}

/// Answers a tokenize, render or token-bytes call on a thread of its own.
fn answer_on_thread(model: &Arc<dyn Model>, rpc: ToWorker, outbox: &Outbox, span: &tracing::Span) {
    let model = Arc::clone(model);
    let outbox = outbox.clone();
    let span = span.clone();
    let spawned = std::thread::Builder::new()
        .name("worker-rpc".into())
        .spawn(move || span.in_scope(|| answer(model.as_ref(), rpc, &outbox)));
    if let Err(e) = spawned {
        // The call would go unanswered and every later one too (threads or memory are gone):
        // end the worker, so that the server fails its requests now and loads the model again
        // in a new one, as after any other crash. 71 is sysexits' EX_OSERR.
        tracing::error!("cannot start a thread for a call: {e}; the worker exits");
        std::process::exit(71);
    }
}

fn answer(model: &dyn Model, rpc: ToWorker, outbox: &Outbox) {
    let (id, result) = match rpc {
        ToWorker::Tokenize {
            id,
            text,
            add_special,
            parse_special,
        } => (
            id,
            model
                .tokenize(&text, add_special, parse_special)
                .map(Reply::Tokens),
        ),
        ToWorker::TokenBytes {
            id,
            tokens,
            special,
        } => (
            id,
            model.token_bytes_many(&tokens, special).map(Reply::Bytes),
        ),
        ToWorker::RenderChat {
            id,
            messages,
            tools,
            kwargs,
            add_generation_prompt,
        } => (
            id,
            model
                .render_chat(&messages, tools.as_ref(), &kwargs, add_generation_prompt)
                .map(Reply::Text),
        ),
        other => {
            tracing::warn!("not a call: {other:?}");
            return;
        }
    };
    post(outbox, id, result);
}

/// Answers a started (or refused) generation or embeddings request: the reply goes out
/// before any of its events.
fn start_stream(
    started: minerva_core::Result<GenerationStream>,
    id: u64,
    outbox: &Outbox,
    cancels: &Cancels,
    runtime: &tokio::runtime::Runtime,
    span: &tracing::Span,
) {
    let stream = match started {
        Ok(stream) => stream,
        Err(e) => {
            post(outbox, id, Err(e));
            return;
        }
    };
    let (cancel, cancelled) = oneshot::channel();
    cancels
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, cancel);
    post(outbox, id, Ok(Reply::Started));
    let pump = pump(id, stream, cancelled, outbox.clone(), Arc::clone(cancels));
    runtime.spawn(pump.instrument(tracing::debug_span!(parent: span, "generation", request = id)));
}

/// Forwards one generation's events until it ends or is cancelled.
async fn pump(
    id: u64,
    mut stream: GenerationStream,
    mut cancelled: oneshot::Receiver<()>,
    outbox: Outbox,
    cancels: Cancels,
) {
    loop {
        tokio::select! {
            _ = &mut cancelled => return,
            item = stream.recv() => {
                let (message, last) = match item {
                    Some(Ok(event)) => (FromWorker::Event { id, event }, false),
                    Some(Err(e)) => (end(id, Some(&e)), true),
                    None => (end(id, None), true),
                };
                if !send_frame(&outbox, &message) || last {
                    break;
                }
            }
        }
    }
    cancels
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
}

fn end(id: u64, error: Option<&CoreError>) -> FromWorker {
    FromWorker::End {
        id,
        error: error.map(WireError::from),
    }
}
