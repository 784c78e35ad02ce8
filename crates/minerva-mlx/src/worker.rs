//! The supervised Python child that runs mlx-lm: started with the worker program on its
//! command line, greeted with the protocol version, read by one thread (replies) and another
//! (its stderr, re-emitted through `tracing`), stopped with SIGTERM, a grace period, then kill.
//!
//! Once ready, a third thread pings it every few seconds; the reply thread, which sees the
//! pongs, kills the child's process group when none came for the health timeout (a worker that
//! is alive but stuck: stopped, deadlocked, holding the GIL), so that its requests end and
//! the model is loaded again.

use crate::tokenizer::HfTokenizer;
use minerva_core::{CoreError, FinishReason, GenEvent, Result, TokenId, TokenOut, Usage};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The protocol version this side speaks (see the worker program's docstring).
pub const PROTOCOL: u64 = 2;
/// The worker program, passed to Python with `-c`.
pub const WORKER_SOURCE: &str = include_str!("../python/minerva_mlx_worker.py");
/// How long the worker gets to exit after SIGTERM before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// The longest wait between two health pings.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(5);

type Events = mpsc::UnboundedSender<Result<GenEvent>>;

/// What the worker reports about itself (`stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tokens the worker has generated since it started, over all requests.
    pub generated: u64,
    /// Requests waiting behind the running one.
    pub queued: u64,
}

/// How long a worker may take to come up, and to answer a health check once up.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To import mlx-lm and load the model.
    pub load: Duration,
    /// Without a pong for this long, a ready worker is killed; `None`: no health checks.
    pub health: Option<Duration>,
}

#[derive(Default)]
struct State {
    requests: HashMap<u64, Events>,
    stats: HashMap<u64, std_mpsc::Sender<WorkerStats>>,
    failure: Option<String>,
    /// Whether `failure` names how the process ended.
    described: bool,
    /// Set by `shutdown`: the worker's exit is expected.
    shutting_down: bool,
    /// When the worker last answered a ping (or became ready).
    last_pong: Option<Instant>,
    /// The last ping sent, and when.
    ping: Option<(u64, Instant)>,
}

pub struct Worker {
    child: Mutex<Child>,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    state: Arc<Mutex<State>>,
    next_id: Mutex<u64>,
    pid: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// Starts `python` on the worker program for `dir`, checks the protocol version, waits
    /// (up to `timeouts.load`) until mlx-lm has loaded the model, then checks its health.
    pub fn start(
        python: &Path,
        dir: &Path,
        model_id: &str,
        tokenizer: Arc<HfTokenizer>,
        timeouts: Timeouts,
    ) -> Result<Worker> {
        let load_timeout = timeouts.load;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(WORKER_SOURCE)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| CoreError::Load(format!("starting {}: {e}", python.display())))?;
        let pid = child.id();
        if let Some(stderr) = child.stderr.take() {
            let id = model_id.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    tracing::info!(target: "minerva_mlx::worker", model = %id, pid, "{line}");
                }
            });
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let worker = Worker {
            child: Mutex::new(child),
            stdin: Arc::new(Mutex::new(stdin)),
            state: Arc::new(Mutex::new(State::default())),
            next_id: Mutex::new(1),
            pid,
        };
        let Some(stdout) = stdout else {
            return Err(CoreError::Load("the worker has no stdout".into()));
        };
        let (lines_tx, lines_rx) = std_mpsc::channel::<std::io::Result<String>>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if lines_tx.send(line).is_err() || end {
                    return;
                }
            }
        });
        let next = |what: &str| -> Result<Value> {
            match lines_rx.recv_timeout(load_timeout) {
                Ok(Ok(line)) => serde_json::from_str(&line)
                    .map_err(|e| CoreError::Load(format!("the MLX worker sent {line:?}: {e}"))),
                Ok(Err(e)) => Err(CoreError::Load(format!("reading the MLX worker: {e}"))),
                Err(std_mpsc::RecvTimeoutError::Timeout) => Err(CoreError::Load(format!(
                    "the MLX worker sent no {what} within {} s",
                    load_timeout.as_secs()
                ))),
                Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(CoreError::Load(format!(
                    "the MLX worker {} before its {what} (its log is above)",
                    worker.exit_status()
                ))),
            }
        };
        let hello = next("hello")?;
        if hello["type"] != "hello" || hello["protocol"].as_u64() != Some(PROTOCOL) {
            return Err(CoreError::Load(format!(
                "the MLX worker speaks protocol {}, Minerva speaks {PROTOCOL}",
                hello["protocol"]
            )));
        }
        worker.send(&json!({"type": "hello", "protocol": PROTOCOL}))?;
        let ready = next("ready message")?;
        if ready["type"] != "ready" {
            let message = ready["message"].as_str().unwrap_or("no reason given");
            return Err(CoreError::Load(format!("the MLX worker failed: {message}")));
        }
        tracing::info!(
            model = model_id,
            pid,
            mlx_lm = %hello["mlx_lm"],
            health_timeout_s = timeouts.health.map(|t| t.as_secs_f64()),
            "MLX worker ready"
        );
        lock(&worker.state).last_pong = Some(Instant::now());
        let state = Arc::clone(&worker.state);
        let stdin = Arc::clone(&worker.stdin);
        let child_pid = pid;
        // Wakes up at least this often to check the worker's health.
        let tick = timeouts.health.map_or(Duration::from_secs(3600), |t| {
            (t / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
        });
        std::thread::spawn(move || {
            loop {
                match lines_rx.recv_timeout(tick) {
                    Ok(Ok(line)) => dispatch(&state, &stdin, &tokenizer, &line),
                    Ok(Err(_)) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                }
                if let Some(limit) = timeouts.health {
                    if kill_if_silent(&state, child_pid, limit) {
                        break;
                    }
                }
            }
            let reason = format!("the MLX worker (pid {child_pid}) exited");
            let mut s = lock(&state);
            if s.shutting_down {
                tracing::debug!(pid = child_pid, "the MLX worker exited");
            } else if s.failure.is_none() {
                tracing::error!(pid = child_pid, "{reason}");
            }
            s.failure.get_or_insert(reason.clone());
            for (_, events) in s.requests.drain() {
                let _ = events.send(Err(CoreError::Backend(format!(
                    "{reason} during the generation"
                ))));
            }
            s.stats.clear();
        });
        if let Some(limit) = timeouts.health {
            worker.start_pings(ping_interval(limit));
        }
        Ok(worker)
    }

    /// Sends a ping every `interval` until the worker fails or shuts down. A write that blocks
    /// (a stopped worker's full pipe) blocks only this thread; the reply thread keeps time.
    fn start_pings(&self, interval: Duration) {
        let state = Arc::clone(&self.state);
        let stdin = Arc::clone(&self.stdin);
        std::thread::spawn(move || {
            for id in 1u64.. {
                std::thread::sleep(interval);
                {
                    let mut s = lock(&state);
                    if s.failure.is_some() || s.shutting_down {
                        return;
                    }
                    s.ping = Some((id, Instant::now()));
                }
                if write_line(&stdin, &json!({"type": "ping", "id": id})).is_err() {
                    return;
                }
            }
        });
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Why the worker cannot serve, once it died.
    pub fn failure(&self) -> Option<String> {
        let mut s = lock(&self.state);
        if s.failure.is_none() && !s.shutting_down {
            // Alive check: an exit the reader thread has not seen yet.
            if let Ok(Some(_)) = lock(&self.child).try_wait() {
                s.failure = Some(format!("the MLX worker (pid {}) exited", self.pid));
            }
        }
        let failure = s.failure.clone()?;
        // Name the way it ended once it can be reaped.
        if !s.described {
            if let Ok(Some(status)) = lock(&self.child).try_wait() {
                let full = format!("{failure}: {status}");
                s.failure = Some(full.clone());
                s.described = true;
                return Some(full);
            }
        }
        Some(failure)
    }

    fn exit_status(&self) -> String {
        match lock(&self.child).try_wait() {
            Ok(Some(status)) => format!("ended ({status})"),
            _ => "closed its output".to_string(),
        }
    }

    fn send(&self, message: &Value) -> Result<()> {
        write_line(&self.stdin, message)
    }

    fn id(&self) -> u64 {
        let mut next = lock(&self.next_id);
        *next += 1;
        *next
    }

    /// Sends a generation; its events arrive on the returned stream. Dropping the stream
    /// cancels it in the worker at its next token.
    pub fn generate(
        &self,
        mut request: Value,
    ) -> Result<mpsc::UnboundedReceiver<Result<GenEvent>>> {
        if let Some(reason) = self.failure() {
            return Err(CoreError::Backend(reason));
        }
        let id = self.id();
        request["type"] = json!("generate");
        request["id"] = json!(id);
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.state).requests.insert(id, tx);
        if let Err(e) = self.send(&request) {
            lock(&self.state).requests.remove(&id);
            return Err(e);
        }
        // The reader thread sends `cancel` at the next token once the stream is dropped.
        Ok(rx)
    }

    /// Requests sent and not finished (the running one and those queued behind it).
    pub fn in_flight(&self) -> usize {
        lock(&self.state).requests.len()
    }

    /// Asks the worker how many tokens it generated so far (a round trip).
    pub fn stats(&self, timeout: Duration) -> Result<WorkerStats> {
        let id = self.id();
        let (tx, rx) = std_mpsc::channel();
        lock(&self.state).stats.insert(id, tx);
        self.send(&json!({"type": "stats", "id": id}))?;
        rx.recv_timeout(timeout)
            .map_err(|_| CoreError::Backend("the MLX worker did not answer stats".into()))
    }

    /// Closes its input, SIGTERMs its process group, kills it after a grace period, reaps it.
    pub fn shutdown(&self) {
        lock(&self.state).shutting_down = true;
        let _ = self.send(&json!({"type": "shutdown"}));
        lock(&self.stdin).take();
        let mut child = lock(&self.child);
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pgid) = i32::try_from(self.pid) {
            // SAFETY: kill(2) with a process group id we created (process_group(0)) and a
            // valid signal number; it touches no memory of ours.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + EXIT_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break,
            }
        }
        tracing::warn!(pid = self.pid, "the MLX worker did not exit; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Routes one line from the worker to the request (or stats call) it belongs to.
fn dispatch(
    state: &Mutex<State>,
    stdin: &Mutex<Option<ChildStdin>>,
    tokenizer: &HfTokenizer,
    line: &str,
) {
    let Ok(msg) = serde_json::from_str::<Value>(line) else {
        tracing::warn!("the MLX worker sent a line that is not JSON: {line:?}");
        return;
    };
    let id = msg["id"].as_u64().unwrap_or(0);
    let mut s = lock(state);
    match msg["type"].as_str() {
        Some("token") => {
            let token = msg["token"].as_i64().unwrap_or(-1) as TokenId;
            let bytes = tokenizer.token_bytes(token, false).unwrap_or_default();
            let event = GenEvent::Token(TokenOut {
                id: token,
                bytes,
                logprob: None,
                top_logprobs: Vec::new(),
            });
            let gone = match s.requests.get(&id) {
                Some(events) => events.send(Ok(event)).is_err(),
                None => false,
            };
            if gone {
                // The stream was dropped: stop the generation in the worker.
                s.requests.remove(&id);
                drop(s);
                tracing::debug!(request = id, "cancelling in the MLX worker");
                let _ = write_line(stdin, &json!({"type": "cancel", "id": id}));
            }
        }
        Some("done") => {
            let Some(events) = s.requests.remove(&id) else {
                return;
            };
            let reason = match msg["reason"].as_str() {
                Some("stop") => FinishReason::Stop,
                _ => FinishReason::Length,
            };
            let count = |k: &str| msg[k].as_u64().unwrap_or(0) as usize;
            let usage = Usage {
                prompt_tokens: count("prompt_tokens"),
                completion_tokens: count("completion_tokens"),
                cached_tokens: 0,
                prompt_ms: msg["prompt_ms"].as_f64().unwrap_or(0.0),
                generation_ms: msg["generation_ms"].as_f64().unwrap_or(0.0),
            };
            let _ = events.send(Ok(GenEvent::Done { reason, usage }));
        }
        Some("error") => {
            let message = msg["message"].as_str().unwrap_or("unknown error");
            match s.requests.remove(&id) {
                Some(events) => {
                    let _ = events.send(Err(CoreError::Backend(format!(
                        "the MLX worker failed: {message}"
                    ))));
                }
                None => tracing::error!("the MLX worker reports: {message}"),
            }
        }
        Some("pong") => {
            let now = Instant::now();
            s.last_pong = Some(now);
            if let Some((sent_id, sent)) = s.ping {
                if sent_id == id {
                    let rtt = now.duration_since(sent);
                    tracing::debug!(
                        ping = id,
                        rtt_ms = rtt.as_secs_f64() * 1e3,
                        "MLX worker pong"
                    );
                }
            }
        }
        Some("stats") => {
            if let Some(tx) = s.stats.remove(&id) {
                let _ = tx.send(WorkerStats {
                    generated: msg["generated"].as_u64().unwrap_or(0),
                    queued: msg["queued"].as_u64().unwrap_or(0),
                });
            }
        }
        other => tracing::warn!("the MLX worker sent an unknown message type {other:?}"),
    }
}

/// How often to ping a worker that must answer within `timeout`: a few pings per timeout.
fn ping_interval(timeout: Duration) -> Duration {
    (timeout / 6).clamp(Duration::from_millis(10), MAX_PING_INTERVAL)
}

/// When the worker has not answered a ping for `limit`: kills its process group, ends its
/// requests with the reason, marks it failed and returns true.
fn kill_if_silent(state: &Mutex<State>, pid: u32, limit: Duration) -> bool {
    let mut s = lock(state);
    if s.failure.is_some() || s.shutting_down {
        return false;
    }
    let Some(last) = s.last_pong else {
        return false;
    };
    if last.elapsed() < limit {
        return false;
    }
    let reason = format!(
        "the MLX worker (pid {pid}) stopped answering health checks for {} s; it was killed",
        limit.as_secs_f64()
    );
    tracing::error!(pid, "{reason}");
    if let Ok(pgid) = i32::try_from(pid) {
        // SAFETY: kill(2) with the process group id we created (process_group(0)) and a valid
        // signal number; it touches no memory of ours. SIGKILL also ends a stopped process.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    s.failure = Some(reason.clone());
    // The exit status would only repeat "killed".
    s.described = true;
    for (_, events) in s.requests.drain() {
        let _ = events.send(Err(CoreError::Backend(reason.clone())));
    }
    s.stats.clear();
    true
}

fn write_line(stdin: &Mutex<Option<ChildStdin>>, message: &Value) -> Result<()> {
    let mut stdin = lock(stdin);
    let pipe = stdin
        .as_mut()
        .ok_or_else(|| CoreError::Backend("the MLX worker is shut down".into()))?;
    let mut line = message.to_string();
    line.push('\n');
    pipe.write_all(line.as_bytes())
        .and_then(|()| pipe.flush())
        .map_err(|e| CoreError::Backend(format!("writing to the MLX worker: {e}")))
}
