//! The prompt cache: a request reuses the KV of the longest prefix it shares with what was
//! computed before (its conversation's earlier turns, a system prompt another request is still
//! using, an older conversation saved to host memory), reports those tokens as cached, and
//! generates what it would have generated computing everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GEMMA, QWEN};
use minerva_core::{
    GenEvent, GenerateRequest, GenerationStream, LogprobRequest, Model, SamplingParams, TokenOut,
    Usage,
};

const SYSTEM: &str =
    "You are a careful assistant for a team that maintains a large Rust code base. \
Answer briefly. Prefer standard library types. When you show code, show complete functions. \
The team's conventions: errors use thiserror, logs use tracing, no unwrap in library code, \
every unsafe block carries a SAFETY comment, files stay under eight hundred lines, and each \
module has one concern. Tests use real inputs rather than mocks whenever that is possible.";

fn chat(turns: &[(&str, &str)], next: &str) -> String {
    let mut s = format!("<|im_start|>system\n{SYSTEM}<|im_end|>\n");
    for (user, assistant) in turns {
        s += &format!(
            "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"
        );
    }
    s + &format!("<|im_start|>user\n{next}<|im_end|>\n<|im_start|>assistant\n")
}

fn start(model: &dyn Model, prompt: &[i32], n_gen: u32, cache: bool) -> GenerationStream {
    start_with(model, prompt, n_gen, cache, None)
}

fn start_with(
    model: &dyn Model,
    prompt: &[i32],
    n_gen: u32,
    cache: bool,
    logprobs: Option<LogprobRequest>,
) -> GenerationStream {
    model
        .generate(GenerateRequest {
            prompt: prompt.to_vec(),
            sampling: SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            },
            max_tokens: Some(n_gen),
            logprobs,
            cache_prompt: cache,
            reasoning: None,
            images: Vec::new(),
        })
        .unwrap()
}

fn collect(stream: GenerationStream) -> (Vec<i32>, Usage) {
    let (tokens, usage) = collect_out(stream);
    (tokens.into_iter().map(|t| t.id).collect(), usage)
}

fn collect_out(mut stream: GenerationStream) -> (Vec<TokenOut>, Usage) {
    let mut tokens = Vec::new();
    while let Some(ev) = stream.blocking_recv() {
        match ev.unwrap() {
            GenEvent::Token(t) => tokens.push(t),
            GenEvent::Done { usage, .. } => return (tokens, usage),
            GenEvent::Embedding { .. } => panic!("an embedding in a generation"),
        }
    }
    panic!("stream ended without Done");
}

fn run(model: &dyn Model, prompt: &[i32], n_gen: u32, cache: bool) -> (Vec<i32>, Usage) {
    collect(start(model, prompt, n_gen, cache))
}

fn text(model: &dyn Model, tokens: &[i32]) -> String {
    let bytes: Vec<u8> = tokens
        .iter()
        .flat_map(|&t| model.token_bytes(t, false).unwrap())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Turn 2 reuses turn 1's prompt and reply, and says what it would say computing everything.
fn second_turn_matches_uncached(
    model: &dyn Model,
    render: impl Fn(&[(&str, &str)], &str) -> String,
) {
    let q1 = "How do I read a file into a String?";
    let p1 = model.tokenize(&render(&[], q1), true, true).unwrap();
    let (r1, u1) = run(model, &p1, 24, true);
    let reply = text(model, &r1);
    let p2 = model
        .tokenize(
            &render(&[(q1, reply.trim())], "And how do I write one?"),
            true,
            true,
        )
        .unwrap();
    let shared = p1.iter().zip(&p2).take_while(|(a, b)| a == b).count();
    assert!(
        shared >= p1.len() - 1,
        "turn 1's prompt should be a prefix of turn 2's"
    );

    let (cached, u2) = run(model, &p2, 24, true);
    assert_eq!(
        u1.cached_tokens, 0,
        "the first request has nothing to reuse"
    );
    assert!(
        u2.cached_tokens >= shared,
        "turn 2 reused {} tokens; it shares {shared} with turn 1",
        u2.cached_tokens
    );
    assert!(u2.cached_tokens < p2.len());
    let (uncached, u3) = run(model, &p2, 24, false);
    assert_eq!(u3.cached_tokens, 0);
    assert_eq!(
        text(model, &cached),
        text(model, &uncached),
        "greedy output with the cache must match the output without it"
    );
}

#[test]
fn qwen_second_turn_reuses_the_first_and_matches_uncached_output() {
    let model = common::load_parallel(&QWEN, 2048, 2, 2);
    second_turn_matches_uncached(model.as_ref(), chat);
}

#[test]
fn gemma_sliding_window_model_second_turn_matches_uncached_output() {
    let model = common::load_parallel(&GEMMA, 2048, 2, 2);
    let render = |turns: &[(&str, &str)], next: &str| {
        let mut s = format!("<start_of_turn>user\n{SYSTEM}\n\n");
        for (i, (user, assistant)) in turns.iter().enumerate() {
            if i > 0 {
                s += "<start_of_turn>user\n";
            }
            s += &format!("{user}<end_of_turn>\n<start_of_turn>model\n{assistant}<end_of_turn>\n");
        }
        let open = if turns.is_empty() {
            ""
        } else {
            "<start_of_turn>user\n"
        };
        s + &format!("{open}{next}<end_of_turn>\n<start_of_turn>model\n")
    };
    second_turn_matches_uncached(model.as_ref(), render);
}

#[test]
fn a_running_sequence_shares_its_system_prompt_with_a_new_request() {
    let model = common::load_parallel(&QWEN, 2048, 2, 2);
    let pa = model
        .tokenize(
            &chat(&[], "Write a function that parses a semantic version."),
            true,
            true,
        )
        .unwrap();
    let pb = model
        .tokenize(&chat(&[], "What is a lifetime?"), true, true)
        .unwrap();
    let shared = pa.iter().zip(&pb).take_while(|(a, b)| a == b).count();
    assert!(
        shared > 60,
        "the prompts share the system prompt ({shared} tokens)"
    );

    // A is generating when B arrives; B goes to the other sequence.
    let mut a = start(model.as_ref(), &pa, 64, true);
    match a.blocking_recv().unwrap().unwrap() {
        GenEvent::Token(_) => {}
        other => panic!("expected a token first, got {other:?}"),
    }
    let (b_tokens, b_usage) = run(model.as_ref(), &pb, 16, true);
    let status = model.status();
    assert!(
        b_usage.cached_tokens >= shared,
        "B reused {} tokens of the {shared} it shares with running A",
        b_usage.cached_tokens
    );
    let (a_rest, a_usage) = collect(a);
    assert_eq!(a_usage.completion_tokens, a_rest.len() + 1);
    assert!(status.slots.len() == 2);

    // And B says what it says alone with nothing cached.
    let fresh = common::load_parallel(&QWEN, 2048, 2, 1);
    let (b_alone, _) = run(fresh.as_ref(), &pb, 16, false);
    assert_eq!(
        text(model.as_ref(), &b_tokens),
        text(model.as_ref(), &b_alone)
    );
}

#[test]
fn an_older_conversation_comes_back_from_host_memory() {
    // One sequence: conversation Y overwrites X's KV in the context; X's turn 2 must find X
    // in the host cache.
    let model = common::load_parallel(&QWEN, 2048, 2, 1);
    let x1 = model
        .tokenize(
            &chat(&[], "Explain ownership in two sentences."),
            true,
            true,
        )
        .unwrap();
    let (rx, _) = run(model.as_ref(), &x1, 16, true);
    let y1 = model
        .tokenize(
            "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
            true,
            true,
        )
        .unwrap();
    let (_, uy) = run(model.as_ref(), &y1, 16, true);
    assert_eq!(uy.cached_tokens, 0);
    let saved = model.status().cache;
    assert!(saved.entries >= 1 && saved.bytes > 0 && saved.bytes <= saved.budget_bytes);

    let reply = text(model.as_ref(), &rx);
    let x2 = model
        .tokenize(
            &chat(
                &[("Explain ownership in two sentences.", reply.trim())],
                "And borrowing?",
            ),
            true,
            true,
        )
        .unwrap();
    let (cached, ux2) = run(model.as_ref(), &x2, 16, true);
    assert!(
        ux2.cached_tokens >= x1.len() - 1,
        "X's turn 2 reused {} tokens; X's turn 1 prompt had {}",
        ux2.cached_tokens,
        x1.len()
    );
    let (uncached, _) = run(model.as_ref(), &x2, 16, false);
    assert_eq!(
        text(model.as_ref(), &cached),
        text(model.as_ref(), &uncached)
    );
}

/// Greedy with the top two log-probabilities of each step.
fn run_logprobs(model: &dyn Model, prompt: &[i32], n_gen: u32) -> (Vec<TokenOut>, Usage) {
    collect_out(start_with(
        model,
        prompt,
        n_gen,
        true,
        Some(LogprobRequest { top: 2 }),
    ))
}

/// A reply of the same prompt recomputed differently (here its last token alone instead of
/// within the prompt's batch) is the same, or parts where the first run's top two were within
/// 0.25 nats and the second took the runner-up: the kernels round differently by batch shape,
/// more so on some variants (AVX-512) than others (see the README's prompt cache section and
/// tests/e2e/greedy.py, the same rule).
fn assert_same_up_to_a_near_tie(first: &[TokenOut], again: &[TokenOut]) {
    for (i, (a, b)) in first.iter().zip(again).enumerate() {
        if a.id == b.id {
            continue;
        }
        let top = &a.top_logprobs;
        assert!(
            top.len() >= 2 && top[1].id == b.id && top[0].logprob - top[1].logprob < 0.25,
            "step {i}: {} then {}, not a near-tie of the first run's top two {:?}",
            a.id,
            b.id,
            top.iter().map(|t| (t.id, t.logprob)).collect::<Vec<_>>()
        );
        return;
    }
    assert_eq!(first.len(), again.len());
}

#[test]
fn identical_prompt_recomputes_only_its_last_token() {
    let model = common::load_parallel(&QWEN, 1024, 2, 1);
    let p = model
        .tokenize(&chat(&[], "Name three sorting algorithms."), true, true)
        .unwrap();
    let (first, _) = run_logprobs(model.as_ref(), &p, 12);
    let (again, usage) = run_logprobs(model.as_ref(), &p, 12);
    assert_eq!(usage.cached_tokens, p.len() - 1);
    assert_same_up_to_a_near_tie(&first, &again);
}
