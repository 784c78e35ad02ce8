//! Greedy output compared with the reference llama-server (same model, raw prompt, context
//! size, threads, batch sizes, flash attention auto (on for the CPU), cold cache; fixtures
//! recorded by scripts/reference/record.py).
//!
//! A prompt either gives the reference's tokens exactly, or departs first at a step where our
//! token is among the reference's top 5. For Qwen the departure must be a near-tie (within
//! 0.25 nats of the reference's own choice): anything else is a bug (template, tokenization,
//! sampler or position). Gemma 3 is far more sensitive to kernel arithmetic (see the Gemma test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestModel, GEMMA, QWEN};
use minerva_core::{FinishReason, GenEvent, GenerateRequest, LogprobRequest, SamplingParams};

/// Largest gap (nats) between the reference's choice and ours where a departure is a near-tie.
const NEAR_TIE: f64 = 0.25;
/// Stands for "end of generation" in a token sequence.
const EOG: i32 = -1;

#[derive(Debug)]
struct Departure {
    prompt: usize,
    step: usize,
    /// Reference log-probability of its choice minus that of ours.
    gap: f64,
}

struct Outcome {
    prompts: usize,
    identical: usize,
    departures: Vec<Departure>,
    /// Largest |our logprob - reference logprob| of the chosen token before any departure.
    max_drift: f64,
}

fn run(m: &TestModel) -> Outcome {
    let fixture = common::fixture(&format!("greedy_{}.json", m.name));
    let settings = &fixture["settings"];
    let ctx = settings["ctx"].as_u64().expect("ctx") as u32;
    let threads = settings["threads"].as_u64().expect("threads") as u32;
    // The reference llama.cpp is built for x86-64-v3: compare on the variant compiled the same way.
    common::use_reference_kernels();
    let model = common::load(m, ctx, threads);
    let results = fixture["results"].as_array().expect("results");
    let mut outcome = Outcome {
        prompts: results.len(),
        identical: 0,
        departures: Vec::new(),
        max_drift: 0.0,
    };
    for (i, r) in results.iter().enumerate() {
        let prompt = r["prompt"].as_str().expect("prompt");
        let expected_prompt: Vec<i32> = serde_json::from_value(r["prompt_tokens"].clone()).unwrap();
        let tokens = model.tokenize(prompt, true, true).unwrap();
        assert_eq!(tokens, expected_prompt, "prompt {i}: prompt tokens differ");
        let mut stream = model
            .generate(GenerateRequest {
                prompt: tokens,
                sampling: SamplingParams {
                    temperature: 0.0,
                    ..SamplingParams::default()
                },
                max_tokens: Some(r["n_predict"].as_u64().unwrap() as u32),
                logprobs: Some(LogprobRequest { top: 5 }),
                cache_prompt: false,
                reasoning: None,
                images: Vec::new(),
            })
            .unwrap();
        let mut ours = Vec::new();
        let mut finish = None;
        while let Some(ev) = stream.blocking_recv() {
            match ev.unwrap() {
                GenEvent::Token(t) => ours.push(t),
                GenEvent::Done { reason, .. } => {
                    finish = Some(reason);
                    break;
                }
                GenEvent::Embedding { .. } => panic!("an embedding in a generation"),
            }
        }
        let steps = r["steps"].as_array().unwrap();
        // The reference lists the end-of-generation token as its last step when it stopped there.
        let ref_eog = r["stop"].as_str() == Some("eos");
        let mut ref_seq: Vec<i32> = steps
            .iter()
            .map(|s| s["id"].as_i64().unwrap() as i32)
            .collect();
        if ref_eog {
            *ref_seq.last_mut().unwrap() = EOG;
        }
        let mut our_seq: Vec<i32> = ours.iter().map(|t| t.id).collect();
        if finish == Some(FinishReason::Stop) {
            our_seq.push(EOG);
        }
        let at = our_seq.iter().zip(&ref_seq).position(|(a, b)| a != b);
        for (t, s) in ours.iter().zip(steps).take(at.unwrap_or(usize::MAX)) {
            if let (Some(mine), Some(theirs)) = (t.logprob, s["logprob"].as_f64()) {
                outcome.max_drift = outcome.max_drift.max((f64::from(mine) - theirs).abs());
            }
        }
        let Some(at) = at else {
            assert_eq!(our_seq.len(), ref_seq.len(), "prompt {i}: lengths differ");
            outcome.identical += 1;
            continue;
        };
        let step = &steps[at];
        let mine = our_seq[at];
        let top = step["top"].as_array().unwrap_or_else(|| {
            panic!(
                "prompt {i}: departs at step {at}, where the reference recorded no probabilities"
            )
        });
        // Our end of generation matches any end-of-generation candidate (a control token,
        // whose text is empty).
        let candidate = top.iter().find(|t| {
            if mine == EOG {
                t["bytes"].as_array().is_some_and(Vec::is_empty)
            } else {
                t["id"].as_i64() == Some(i64::from(mine))
            }
        });
        let Some(candidate) = candidate else {
            panic!(
                "prompt {i}: departs at step {at} with token {mine}, not in the reference's top 5 {top:?}"
            );
        };
        let gap = step["logprob"].as_f64().unwrap() - candidate["logprob"].as_f64().unwrap();
        outcome.departures.push(Departure {
            prompt: i,
            step: at,
            gap,
        });
    }
    println!(
        "{}: {} of {} prompts identical; departures {:?}; max drift of the chosen token's logprob before a departure {:.4} nats",
        m.name, outcome.identical, outcome.prompts, outcome.departures, outcome.max_drift
    );
    outcome
}

#[test]
fn qwen_greedy_matches_reference() {
    let o = run(&QWEN);
    for d in &o.departures {
        assert!(
            d.gap <= NEAR_TIE,
            "prompt {} departs at step {} with a gap of {:.4} nats: not a near-tie",
            d.prompt,
            d.step,
            d.gap
        );
    }
    assert!(
        o.max_drift < 0.05,
        "Qwen's logprobs drift by {:.4} nats",
        o.max_drift
    );
}

/// Gemma 3 270M is numerically fragile: the reference itself, with flash attention switched on
/// (a change of attention arithmetic only), moves chosen-token logprobs by up to 1.12 nats and
/// changes 4 of these 8 outputs (measured with the reference build, see the issue note). Our
/// llama.cpp (ggml 0.26.0) differs from the reference's (ggml 0.25.3) in kernels, so the same
/// kind of drift appears here. What must hold: identical prompt tokens, several prompts
/// identical, every departure at one of the reference's top-5 alternatives, and a drift well
/// below what a flash-attention toggle causes in the reference.
#[test]
fn gemma_greedy_stays_within_reference_arithmetic_noise() {
    let o = run(&GEMMA);
    assert!(
        o.identical >= 3,
        "only {} Gemma prompts identical",
        o.identical
    );
    assert!(
        o.max_drift < 0.6,
        "Gemma's logprobs drift by {:.4} nats",
        o.max_drift
    );
    for d in &o.departures {
        assert!(
            d.gap < 1.0,
            "prompt {} departs at step {} with a gap of {:.4} nats",
            d.prompt,
            d.step,
            d.gap
        );
    }
}
