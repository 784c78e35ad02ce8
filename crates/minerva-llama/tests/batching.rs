//! Continuous batching: several sequences decoded together in one context give what each gives
//! alone (greedy), or depart only where llama.cpp's kernels round differently at another batch
//! size; a cancelled sequence frees its slot while the others go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::QWEN;
use minerva_core::{
    FinishReason, GenEvent, GenerateRequest, GenerationStream, LogprobRequest, Model,
    SamplingParams, TokenOut,
};

const PROMPTS: [&str; 6] = [
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "def quicksort(arr):\n",
    "The three primary colors are",
    "<|im_start|>user\nExplain recursion in one paragraph.<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, in a small village,",
    "<|im_start|>user\n用中文介绍一下长城。<|im_end|>\n<|im_start|>assistant\n",
];
const N_GEN: u32 = 32;

fn start(model: &dyn Model, prompt: &str) -> GenerationStream {
    model
        .generate(GenerateRequest {
            prompt: model.tokenize(prompt, true, true).unwrap(),
            sampling: SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            },
            max_tokens: Some(N_GEN),
            logprobs: Some(LogprobRequest { top: 5 }),
            cache_prompt: false,
            reasoning: None,
            images: Vec::new(),
        })
        .unwrap()
}

fn collect(mut stream: GenerationStream) -> (Vec<TokenOut>, FinishReason) {
    let mut tokens = Vec::new();
    while let Some(ev) = stream.blocking_recv() {
        match ev.unwrap() {
            GenEvent::Token(t) => tokens.push(t),
            GenEvent::Done { reason, .. } => return (tokens, reason),
            GenEvent::Embedding { .. } => panic!("an embedding in a generation"),
        }
    }
    panic!("stream ended without Done");
}

#[test]
fn concurrent_sequences_match_their_solo_runs() {
    let solo_model = common::load(&QWEN, 1024, 2);
    let solo: Vec<_> = PROMPTS
        .iter()
        .map(|p| collect(start(solo_model.as_ref(), p)))
        .collect();
    drop(solo_model);

    let model = common::load_parallel(&QWEN, 1024, 2, 4);
    // Six requests on four slots: two wait in the queue and join as slots free up.
    let streams: Vec<_> = PROMPTS.iter().map(|p| start(model.as_ref(), p)).collect();
    let batched: Vec<_> = streams.into_iter().map(collect).collect();

    let mut identical = 0;
    for (i, ((alone, alone_reason), (together, reason))) in solo.iter().zip(&batched).enumerate() {
        let a: Vec<i32> = alone.iter().map(|t| t.id).collect();
        let b: Vec<i32> = together.iter().map(|t| t.id).collect();
        if a == b {
            assert_eq!(alone_reason, reason);
            identical += 1;
            continue;
        }
        let at = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        assert!(
            at < a.len() && at < b.len(),
            "prompt {i}: one output is a prefix of the other"
        );
        // Where they part, the batched choice must be a near-tie in the solo distribution.
        let solo_step = &alone[at];
        let theirs = solo_step
            .top_logprobs
            .iter()
            .find(|c| c.id == b[at])
            .unwrap_or_else(|| {
                panic!(
                    "prompt {i}: batched token {} not in the solo top 5 at step {at}",
                    b[at]
                )
            });
        let gap = solo_step.logprob.unwrap() - theirs.logprob;
        println!(
            "prompt {i}: departs at step {at} (solo {}, batched {}), gap {gap:.4} nats",
            a[at], b[at]
        );
        assert!(
            gap <= 0.25,
            "prompt {i}: departure at a gap of {gap:.4} nats is not a near-tie"
        );
    }
    println!(
        "{identical} of {} prompts identical when batched with 4 slots",
        PROMPTS.len()
    );
    // Which requests share a step depends on arrival timing, so the count of identical outputs
    // varies from run to run; the near-tie check above is what must always hold.
    assert!(identical >= 1, "no sequence was unchanged by batching");
}

#[test]
fn cancelled_sequence_frees_its_slot_and_others_finish() {
    let model = common::load_parallel(&QWEN, 1024, 2, 2);
    let (alone, _) = collect(start(model.as_ref(), PROMPTS[1]));
    let mut doomed = start(model.as_ref(), PROMPTS[4]);
    let survivor = start(model.as_ref(), PROMPTS[1]);
    // Read two tokens, then go away.
    for _ in 0..2 {
        assert!(matches!(
            doomed.blocking_recv(),
            Some(Ok(GenEvent::Token(_)))
        ));
    }
    drop(doomed);
    // A third request needs the freed slot (two slots, one busy).
    let third = start(model.as_ref(), PROMPTS[2]);
    let (tokens, reason) = collect(survivor);
    assert_eq!(reason, FinishReason::Length);
    let a: Vec<i32> = alone.iter().map(|t| t.id).collect();
    let b: Vec<i32> = tokens.iter().map(|t| t.id).collect();
    assert_eq!(a.len(), b.len());
    let (third_tokens, _) = collect(third);
    assert!(!third_tokens.is_empty());
}
