//! `GET /metrics` in Prometheus' text format: requests by route and status, tokens, cache
//! hits, queue depth and active sequences per model, and histograms of time to first token,
//! inter-token latency and request duration (measured where the text leaves the engine).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minerva_core::{CoreError, FinishReason, SlotState, TokenOut, Usage};
use minerva_engine::{CompletionStream, TextEvent};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

struct Histogram {
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
    }
}

/// Counters shared by every request.
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    ttft: Histogram,
    itl: Histogram,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            ttft: Histogram::new(),
            itl: Histogram::new(),
            duration: Histogram::new(),
        }
    }
}

impl Metrics {
    /// The exposition text; `cpu_variants` is `(model, variant)` of each loaded model.
    fn render(
        &self,
        statuses: &[(String, minerva_core::ModelStatus)],
        cpu_variants: &[(String, String)],
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP minerva_requests_total HTTP requests by route and status.\n# TYPE minerva_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((path, status), n) in requests.iter() {
                let _ = writeln!(
                    out,
                    "minerva_requests_total{{path=\"{path}\",status=\"{status}\"}} {n}"
                );
            }
        }
        for (name, help, value) in [
            (
                "minerva_prompt_tokens_total",
                "Prompt tokens of completed generations.",
                &self.prompt_tokens,
            ),
            (
                "minerva_generated_tokens_total",
                "Generated tokens.",
                &self.generated_tokens,
            ),
            (
                "minerva_cache_hit_tokens_total",
                "Prompt tokens taken from the prompt cache.",
                &self.cached_tokens,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges: [Gauge; 5] = [
            (
                "minerva_queue_depth",
                "Requests waiting for a free sequence.",
                |s| s.queued as u64,
            ),
            (
                "minerva_active_sequences",
                "Sequences reading a prompt or generating.",
                |s| {
                    s.slots
                        .iter()
                        .filter(|s| s.state != SlotState::Idle)
                        .count() as u64
                },
            ),
            (
                "minerva_prompt_cache_bytes",
                "Host memory held by the prompt cache.",
                |s| s.cache.bytes,
            ),
            (
                "minerva_kv_cells",
                "KV cache cells of a model's context, the pool all its sequences share (parallel x ctx-size, or --kv-size).",
                |s| s.kv.cells as u64,
            ),
            (
                "minerva_kv_cells_used",
                "KV cache cells held by a sequence, running or kept as prompt cache; a prefix several sequences share counts once.",
                |s| s.kv.cells_used as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (model, status) in statuses {
                let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", value(status));
            }
        }
        out.push_str("# HELP minerva_cpu_variant_info The llama.cpp CPU backend variant a model runs on (1 per model).\n# TYPE minerva_cpu_variant_info gauge\n");
        for (model, variant) in cpu_variants {
            let _ = writeln!(
                out,
                "minerva_cpu_variant_info{{model=\"{model}\",variant=\"{variant}\"}} 1"
            );
        }
        self.ttft.render(
            &mut out,
            "minerva_time_to_first_token_seconds",
            "Time from request to first text.",
        );
        self.itl.render(
            &mut out,
            "minerva_inter_token_latency_seconds",
            "Time between consecutive pieces of text.",
        );
        self.duration.render(
            &mut out,
            "minerva_request_duration_seconds",
            "Time from request to the end of generation.",
        );
        out
    }
}

/// A per-model gauge: its name, its help text, and its value in a model's status.
type Gauge = (
    &'static str,
    &'static str,
    fn(&minerva_core::ModelStatus) -> u64,
);

/// Counts every response by its route (the matched pattern, so unknown paths stay one label).
pub async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    if let Ok(mut requests) = metrics.requests.lock() {
        *requests
            .entry((path, response.status().as_u16()))
            .or_insert(0) += 1;
    }
    response
}

#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn render(State(state): State<crate::AppState>) -> Response {
    let statuses = state.engine.statuses().await;
    let cpu_variants = state.engine.cpu_variants();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(&statuses, &cpu_variants),
    )
        .into_response()
}

/// A whole generation (see [`Metered::collect`]).
pub struct Collected {
    pub text: String,
    /// The generated tokens, for log-probabilities.
    pub tokens: Vec<TokenOut>,
    pub reason: FinishReason,
    pub usage: Usage,
}

/// A completion stream that records its latencies and tokens.
pub struct Metered {
    inner: CompletionStream,
    metrics: Arc<Metrics>,
    started: Instant,
    last_text: Option<Instant>,
    /// An event read ahead by [`Metered::started`].
    ahead: Option<Option<Result<TextEvent, CoreError>>>,
}

impl minerva_engine::TextSource for Metered {
    fn next_text(
        &mut self,
    ) -> impl std::future::Future<Output = Option<Result<TextEvent, CoreError>>> + Send {
        self.next()
    }
}

impl Metered {
    pub fn new(inner: CompletionStream, metrics: Arc<Metrics>, started: Instant) -> Self {
        Metered {
            inner,
            metrics,
            started,
            last_text: None,
            ahead: None,
        }
    }

    /// Tokens of the prompt.
    pub fn prompt_tokens(&self) -> usize {
        self.inner.prompt_tokens()
    }

    /// The prompt's and the reply's token ids (see [`CompletionStream::context`]).
    pub fn context(&self) -> &[minerva_core::TokenId] {
        self.inner.context()
    }

    /// The stop string that ended the generation (see [`CompletionStream::stop_sequence`]).
    pub fn stop_sequence(&self) -> Option<&str> {
        self.inner.stop_sequence()
    }

    /// A parser for this generation's reply (see [`CompletionStream::reply_parser`]).
    pub fn reply_parser(&self) -> minerva_engine::ChatParser {
        self.inner.reply_parser()
    }

    /// Waits for the first event, so that a request that fails before producing anything
    /// (a queue timeout) can still be answered with an HTTP error status instead of an error
    /// inside a 200 stream. The event is kept for [`Metered::next`].
    pub async fn started(&mut self) -> Result<(), CoreError> {
        if self.ahead.is_none() {
            let event = self.read().await;
            if let Some(Err(e)) = event {
                return Err(e);
            }
            self.ahead = Some(event);
        }
        Ok(())
    }

    /// The whole generation, for a response that is not streamed.
    pub async fn collect(mut self) -> Result<Collected, CoreError> {
        let mut text = String::new();
        let mut tokens = Vec::new();
        while let Some(event) = self.next().await {
            match event? {
                TextEvent::Delta {
                    text: t,
                    tokens: tk,
                } => {
                    text.push_str(&t);
                    tokens.extend(tk);
                }
                TextEvent::Done { reason, usage } => {
                    return Ok(Collected {
                        text,
                        tokens,
                        reason,
                        usage,
                    })
                }
            }
        }
        Err(CoreError::Backend(
            "the generation ended without a result".into(),
        ))
    }

    pub async fn next(&mut self) -> Option<Result<TextEvent, CoreError>> {
        match self.ahead.take() {
            Some(event) => event,
            None => self.read().await,
        }
    }

    async fn read(&mut self) -> Option<Result<TextEvent, CoreError>> {
        let event = self.inner.next().await;
        match &event {
            Some(Ok(TextEvent::Delta { text, .. })) if !text.is_empty() => {
                let now = Instant::now();
                match self.last_text {
                    None => self
                        .metrics
                        .ttft
                        .observe(now.duration_since(self.started).as_secs_f64()),
                    Some(last) => self
                        .metrics
                        .itl
                        .observe(now.duration_since(last).as_secs_f64()),
                }
                self.last_text = Some(now);
            }
            Some(Ok(TextEvent::Done { usage, .. })) => {
                let m = &self.metrics;
                m.prompt_tokens
                    .fetch_add(usage.prompt_tokens as u64, Ordering::Relaxed);
                m.generated_tokens
                    .fetch_add(usage.completion_tokens as u64, Ordering::Relaxed);
                m.cached_tokens
                    .fetch_add(usage.cached_tokens as u64, Ordering::Relaxed);
                m.duration.observe(self.started.elapsed().as_secs_f64());
            }
            _ => {}
        }
        event
    }
}
