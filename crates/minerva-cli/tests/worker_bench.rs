//! The cost of the worker boundary per generated token: greedy decoding of the same prompt
//! in-process and through a worker process, runs interleaved, median ms/token of each.
//!
//! `cargo test -p minerva-cli --test worker_bench -- --ignored --nocapture`
//! (`MINERVA_BENCH_TOKENS`, `MINERVA_BENCH_RUNS`, `MINERVA_BENCH_THREADS` change the defaults of
//! 128 tokens, 7 runs, 2 threads).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{greedy, qwen, spec, workers};
use minerva_core::{Backend, GenEvent, Model};
use std::time::{Duration, Instant};

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds per token between the first and the last token as the caller sees them, and
/// as the backend measured them (its `generation_ms`, inside the worker for a remote model).
fn ms_per_token(model: &dyn Model, prompt: &[i32], tokens: u32) -> (f64, f64) {
    let mut stream = model
        .generate(greedy(prompt.to_vec(), tokens, true))
        .unwrap();
    let mut first = None;
    let mut last = Instant::now();
    let mut n = 0;
    let mut backend_ms = 0.0;
    while let Some(item) = stream.blocking_recv() {
        match item.unwrap() {
            GenEvent::Token(_) => {
                last = Instant::now();
                first.get_or_insert(last);
                n += 1;
            }
            GenEvent::Done { usage, .. } => backend_ms = usage.generation_ms,
            GenEvent::Embedding { .. } => panic!("an embedding in a generation"),
        }
    }
    assert_eq!(n, tokens as usize);
    let first = first.unwrap();
    let seen = (last - first).as_secs_f64() * 1000.0 / (n - 1) as f64;
    (seen, backend_ms / (n - 1) as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
fn worker_boundary_cost_per_token() {
    let tokens = env_or("MINERVA_BENCH_TOKENS", 128) as u32;
    let runs = env_or("MINERVA_BENCH_RUNS", 7);
    let mut s = spec(qwen());
    s.parallel = Some(1);
    s.threads = std::env::var("MINERVA_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .or(s.threads);
    let local = minerva_llama::LlamaCppBackend::new().load(&s).unwrap();
    let remote = workers().load(&s).unwrap();
    let prompt = local
        .tokenize("Write a long story about a lighthouse keeper.", true, false)
        .unwrap();
    // Warm both (page in the weights, settle the thread pools).
    ms_per_token(local.as_ref(), &prompt, 16);
    ms_per_token(remote.as_ref(), &prompt, 16);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_gap, mut their_gap) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Alternate which goes first, and let the other's threads go idle between runs.
        let order: [&dyn Model; 2] = if run % 2 == 0 {
            [local.as_ref(), remote.as_ref()]
        } else {
            [remote.as_ref(), local.as_ref()]
        };
        for model in order {
            std::thread::sleep(Duration::from_millis(300));
            let (seen, backend) = ms_per_token(model, &prompt, tokens);
            if model.process_id().is_some() {
                theirs.push(seen);
                their_gap.push(seen - backend);
            } else {
                ours.push(seen);
                our_gap.push(seen - backend);
            }
        }
    }
    // Each run's pair ran back to back, so the machine's load changes less within a pair.
    let paired = median(
        ours.iter()
            .zip(&theirs)
            .map(|(o, t)| (t - o) / o * 100.0)
            .collect(),
    );
    let (in_process, worker) = (median(ours.clone()), median(theirs.clone()));
    let overhead = (worker - in_process) / in_process * 100.0;
    println!("in-process ms/token: {ours:.3?}");
    println!("worker     ms/token: {theirs:.3?}");
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{tokens} tokens x {runs} runs, median: in-process {in_process:.3} ms/token, worker {worker:.3} ms/token, overhead {overhead:+.2}%"
    );
    println!("median of the runs' paired differences: {paired:+.2}%");
    println!(
        "fastest run: in-process {:.3} ms/token, worker {:.3} ms/token",
        min(&ours),
        min(&theirs)
    );
    // Paired within each run, so the machine's load cancels: what the caller saw per token
    // beyond what the backend measured for itself.
    let (our_gap, their_gap) = (median(our_gap), median(their_gap));
    println!(
        "caller-seen minus backend-measured, median: in-process {our_gap:+.4} ms/token, worker {their_gap:+.4} ms/token ({:+.3}% of decode)",
        (their_gap - our_gap) / in_process * 100.0
    );
}
