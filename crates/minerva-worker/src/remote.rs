//! The server's side of a loaded worker: [`RemoteModel`] implements [`Model`] over the socket.
//!
//! One reader thread routes the worker's frames by request id: RPC replies to the caller that
//! waits for them, generation events to their stream. A watcher thread notices dropped streams
//! (a client that went away) and tells the worker to cancel them, even while no token flows.
//! When the connection ends without the parent asking, the worker is dead: the reason (its exit
//! status) goes to every waiter and stream, and every later call fails with it.

use crate::process::{describe_exit, wait_for_exit};
use crate::protocol::{read_message, FromWorker, Reply, ToWorker};
use crate::{protocol, WorkerError};
use minerva_core::{
    CoreError, EmbedRequest, GenEvent, GenerateRequest, GenerationStream, Model, ModelInfo,
    ModelStatus, Result, TokenId,
};
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How often the watcher looks for dropped streams.
const WATCH_INTERVAL: Duration = Duration::from_millis(25);
/// How long a worker gets to exit after `Shutdown` before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long the reader waits for a worker whose socket closed to report its exit status.
const EXIT_WAIT: Duration = Duration::from_secs(2);

type EventSender = UnboundedSender<std::result::Result<GenEvent, CoreError>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct State {
    /// Callers waiting for the reply to an RPC, by request id.
    rpcs: HashMap<u64, SyncSender<Result<Reply>>>,
    /// Generations in flight, by request id.
    streams: HashMap<u64, EventSender>,
    /// Set once: why the worker can no longer serve.
    failure: Option<String>,
}

/// The connection to one worker process, shared by the model, the reader and the watcher.
pub(crate) struct Link {
    writer: Mutex<UnixStream>,
    state: Mutex<State>,
    next_id: AtomicU64,
    child: Mutex<Child>,
    pid: u32,
    model_id: String,
    /// Set when the parent unloads the model: the connection's end is then expected.
    stopping: AtomicBool,
}

impl Link {
    fn failure(&self) -> Option<String> {
        lock(&self.state).failure.clone()
    }

    fn send(&self, message: &ToWorker) -> Result<()> {
        let frame = protocol::encode(message).map_err(|e| CoreError::Backend(e.to_string()))?;
        let mut writer = lock(&self.writer);
        writer.write_all(&frame).map_err(|e| {
            let reason = self.failure().unwrap_or_else(|| {
                format!(
                    "cannot write to the model's worker process (pid {}): {e}",
                    self.pid
                )
            });
            CoreError::Backend(reason)
        })
    }

    /// Sends a request and waits for its reply. A generation's `events` are registered under
    /// the same id before the request leaves, so that no event can arrive unrouted.
    fn call(
        &self,
        make: impl FnOnce(u64) -> ToWorker,
        events: Option<EventSender>,
        timeout: Duration,
    ) -> Result<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(1);
        {
            let mut state = lock(&self.state);
            if let Some(reason) = &state.failure {
                return Err(CoreError::Backend(reason.clone()));
            }
            state.rpcs.insert(id, tx);
            if let Some(events) = events {
                state.streams.insert(id, events);
            }
        }
        let mut timed_out = false;
        let result = match self.send(&make(id)) {
            Ok(()) => match rx.recv_timeout(timeout) {
                Ok(result) => result,
                Err(RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    Err(CoreError::Backend(format!(
                        "the model's worker process (pid {}) did not answer within {} s",
                        self.pid,
                        timeout.as_secs()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    Err(CoreError::Backend(self.failure().unwrap_or_else(|| {
                        "the model's worker process went away".into()
                    })))
                }
            },
            Err(e) => Err(e),
        };
        if result.is_err() {
            let mut state = lock(&self.state);
            state.rpcs.remove(&id);
            let registered = state.streams.remove(&id).is_some();
            drop(state);
            if registered && timed_out {
                // It may have started after all.
                let _ = self.send(&ToWorker::Cancel { id });
            }
        }
        result
    }

    /// Marks the worker failed (first reason wins) and ends every waiter and stream with it.
    fn fail(&self, reason: String) {
        let (rpcs, streams, reason) = {
            let mut state = lock(&self.state);
            let reason = state.failure.get_or_insert(reason).clone();
            (
                std::mem::take(&mut state.rpcs),
                std::mem::take(&mut state.streams),
                reason,
            )
        };
        for (_, tx) in rpcs {
            let _ = tx.send(Err(CoreError::Backend(reason.clone())));
        }
        for (_, tx) in streams {
            let _ = tx.send(Err(CoreError::Backend(reason.clone())));
        }
    }

    /// Why the connection ended: the worker's exit status when it exited.
    fn death_reason(&self, error: &WorkerError) -> String {
        let mut child = lock(&self.child);
        match wait_for_exit(&mut child, EXIT_WAIT) {
            Some(status) => format!(
                "the model's worker process (pid {}) {}",
                self.pid,
                describe_exit(status)
            ),
            None => {
                // Alive but unreachable: it cannot serve, and must not hold its memory.
                let _ = child.kill();
                let _ = child.wait();
                format!(
                    "the connection to the model's worker process (pid {}) failed: {error}",
                    self.pid
                )
            }
        }
    }

    /// Asks the worker to exit, kills it after a grace period, reaps it.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.send(&ToWorker::Shutdown);
        let mut child = lock(&self.child);
        let status = match wait_for_exit(&mut child, SHUTDOWN_GRACE) {
            Some(status) => Some(status),
            None => {
                tracing::warn!(pid = self.pid, model = %self.model_id, "worker did not exit; killing it");
                let _ = child.kill();
                child.wait().ok()
            }
        };
        drop(child);
        if let Some(status) = status {
            tracing::info!(pid = self.pid, model = %self.model_id, "worker process {}", describe_exit(status));
        }
        self.fail("the model was unloaded".into());
    }
}

/// Routes the worker's frames until the connection ends.
fn read_loop(link: Arc<Link>, mut input: BufReader<UnixStream>) {
    loop {
        let message = match read_message::<FromWorker>(&mut input) {
            Ok(message) => message,
            Err(e) => {
                if !link.stopping.load(Ordering::SeqCst) {
                    let reason = link.death_reason(&e);
                    tracing::error!(pid = link.pid, model = %link.model_id, "{reason}");
                    link.fail(reason);
                }
                return;
            }
        };
        match message {
            FromWorker::Reply { id, result } => {
                if let Some(tx) = lock(&link.state).rpcs.remove(&id) {
                    let _ = tx.send(result.map_err(CoreError::from));
                }
            }
            FromWorker::Event { id, event } => {
                let mut state = lock(&link.state);
                let gone = match state.streams.get(&id) {
                    Some(tx) => tx.send(Ok(event)).is_err(),
                    None => false,
                };
                if gone {
                    state.streams.remove(&id);
                    drop(state);
                    let _ = link.send(&ToWorker::Cancel { id });
                }
            }
            FromWorker::End { id, error } => {
                let tx = lock(&link.state).streams.remove(&id);
                if let (Some(tx), Some(error)) = (tx, error) {
                    let _ = tx.send(Err(error.into()));
                }
            }
            other => {
                tracing::warn!(
                    pid = link.pid,
                    "unexpected message from the worker: {other:?}"
                );
            }
        }
    }
}

/// Cancels, in the worker, the generations whose streams were dropped.
fn watch_loop(link: Weak<Link>) {
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let Some(link) = link.upgrade() else { return };
        let dropped: Vec<u64> = {
            let mut state = lock(&link.state);
            if state.failure.is_some() {
                return;
            }
            let dropped: Vec<u64> = state
                .streams
                .iter()
                .filter(|(_, tx)| tx.is_closed())
                .map(|(&id, _)| id)
                .collect();
            for id in &dropped {
                state.streams.remove(id);
            }
            dropped
        };
        for id in dropped {
            tracing::debug!(pid = link.pid, request = id, "stream dropped; cancelling");
            let _ = link.send(&ToWorker::Cancel { id });
        }
    }
}

/// A model served by a worker process.
pub struct RemoteModel {
    info: ModelInfo,
    reported_memory: u64,
    link: Arc<Link>,
    rpc_timeout: Duration,
    /// Token bytes already fetched, by (token, special): the vocabulary never changes.
    pieces: Mutex<HashMap<(TokenId, bool), Vec<u8>>>,
}

/// What [`crate::ProcessBackend`] hands over once the worker reported `Loaded`.
pub(crate) struct Connected {
    pub stream: UnixStream,
    pub child: Child,
    pub info: ModelInfo,
    pub memory_bytes: u64,
    pub rpc_timeout: Duration,
}

impl RemoteModel {
    pub(crate) fn start(c: Connected) -> std::io::Result<RemoteModel> {
        let pid = c.child.id();
        let input = BufReader::new(c.stream.try_clone()?);
        let link = Arc::new(Link {
            writer: Mutex::new(c.stream),
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            child: Mutex::new(c.child),
            pid,
            model_id: c.info.id.clone(),
            stopping: AtomicBool::new(false),
        });
        let reader = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("worker-{pid}-read"))
            .spawn(move || read_loop(reader, input))?;
        let watched = Arc::downgrade(&link);
        std::thread::Builder::new()
            .name(format!("worker-{pid}-watch"))
            .spawn(move || watch_loop(watched))?;
        Ok(RemoteModel {
            info: c.info,
            reported_memory: c.memory_bytes,
            link,
            rpc_timeout: c.rpc_timeout,
            pieces: Mutex::new(HashMap::new()),
        })
    }
}

fn unexpected(reply: &Reply) -> CoreError {
    CoreError::Backend(format!("unexpected reply from the worker: {reply:?}"))
}

/// The resident memory of a process, from `/proc` (Linux).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl RemoteModel {
    /// Sends a request whose events follow its reply (a generation, embeddings).
    fn start_stream(&self, make: impl FnOnce(u64) -> ToWorker) -> Result<GenerationStream> {
        let (tx, rx) = unbounded_channel();
        match self.link.call(make, Some(tx), self.rpc_timeout)? {
            Reply::Started => Ok(rx),
            other => Err(unexpected(&other)),
        }
    }
}

impl Model for RemoteModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<TokenId>> {
        let reply = self.link.call(
            |id| ToWorker::Tokenize {
                id,
                text: text.to_string(),
                add_special,
                parse_special,
            },
            None,
            self.rpc_timeout,
        )?;
        match reply {
            Reply::Tokens(tokens) => Ok(tokens),
            other => Err(unexpected(&other)),
        }
    }

    fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>> {
        let mut bytes = self.token_bytes_many(&[token], special)?;
        bytes
            .pop()
            .ok_or_else(|| CoreError::Backend(format!("no bytes for token {token}")))
    }

    /// One round trip for the tokens not fetched before; the rest come from the cache.
    fn token_bytes_many(&self, tokens: &[TokenId], special: bool) -> Result<Vec<Vec<u8>>> {
        let missing: Vec<TokenId> = {
            let pieces = lock(&self.pieces);
            let mut missing: Vec<TokenId> = tokens
                .iter()
                .copied()
                .filter(|&t| !pieces.contains_key(&(t, special)))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if !missing.is_empty() {
            let reply = self.link.call(
                |id| ToWorker::TokenBytes {
                    id,
                    tokens: missing.clone(),
                    special,
                },
                None,
                self.rpc_timeout,
            )?;
            let Reply::Bytes(bytes) = reply else {
                return Err(unexpected(&reply));
            };
            if bytes.len() != missing.len() {
                return Err(CoreError::Backend(format!(
                    "the worker sent {} token pieces for {} tokens",
                    bytes.len(),
                    missing.len()
                )));
            }
            let mut pieces = lock(&self.pieces);
            for (t, b) in missing.into_iter().zip(bytes) {
                pieces.insert((t, special), b);
            }
        }
        let pieces = lock(&self.pieces);
        tokens
            .iter()
            .map(|&t| {
                pieces
                    .get(&(t, special))
                    .cloned()
                    .ok_or_else(|| CoreError::Backend(format!("no bytes for token {t}")))
            })
            .collect()
    }

    fn render_chat(
        &self,
        messages: &[serde_json::Value],
        tools: Option<&serde_json::Value>,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let reply = self.link.call(
            |id| ToWorker::RenderChat {
                id,
                messages: messages.to_vec(),
                tools: tools.cloned(),
                kwargs: kwargs.clone(),
                add_generation_prompt,
            },
            None,
            self.rpc_timeout,
        )?;
        match reply {
            Reply::Text(text) => Ok(text),
            other => Err(unexpected(&other)),
        }
    }

    /// The worker's status; a dead worker reports no sequences.
    fn status(&self) -> ModelStatus {
        match self
            .link
            .call(|id| ToWorker::Status { id }, None, self.rpc_timeout)
        {
            Ok(Reply::Status(status)) => status,
            Ok(other) => {
                tracing::warn!("{}", unexpected(&other));
                ModelStatus::default()
            }
            Err(_) => ModelStatus::default(),
        }
    }

    /// One round trip: the worker validates the request and answers before any token, so a
    /// refusal (`InvalidRequest`, `ContextOverflow`, `Busy`) is returned here, as in-process.
    fn generate(&self, request: GenerateRequest) -> Result<GenerationStream> {
        self.start_stream(|id| ToWorker::Generate { id, request })
    }

    /// As `generate`: the worker refuses or starts the request in one round trip.
    fn embed(&self, request: EmbedRequest) -> Result<GenerationStream> {
        self.start_stream(|id| ToWorker::Embed { id, request })
    }

    /// The worker's resident memory (what unloading gives back), else its own estimate.
    fn memory_bytes(&self) -> u64 {
        if self.link.failure().is_none() {
            if let Some(bytes) = resident_bytes(self.link.pid) {
                return bytes;
            }
        }
        self.reported_memory
    }

    fn process_id(&self) -> Option<u32> {
        Some(self.link.pid)
    }

    fn failure(&self) -> Option<String> {
        self.link.failure()
    }
}

impl Drop for RemoteModel {
    /// Stops the worker on a thread of its own, so that dropping never blocks the caller
    /// (an async task) for the grace period.
    fn drop(&mut self) {
        let link = Arc::clone(&self.link);
        let stopper = std::thread::Builder::new()
            .name(format!("worker-{}-stop", link.pid))
            .spawn(move || link.stop());
        if let Err(e) = stopper {
            tracing::warn!("cannot start a thread to stop the worker ({e}); stopping it here");
            self.link.stop();
        }
    }
}
