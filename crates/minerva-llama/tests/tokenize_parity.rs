//! Token ids identical to the reference llama.cpp tokenizer (llama-server's /tokenize) on the
//! corpus of tests/fixtures/tokenize_corpus.json, for both real models and both variants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestModel, GEMMA, QWEN};

fn check(m: &TestModel) {
    let model = common::load(m, 512, 2);
    let fixture = common::fixture(&format!("tokenize_{}.json", m.name));
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 300,
        "the corpus has 150+ strings, two variants each"
    );
    let mut mismatches = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let add_special = case["add_special"].as_bool().expect("add_special");
        let parse_special = case["parse_special"].as_bool().expect("parse_special");
        let expected: Vec<i32> = serde_json::from_value(case["tokens"].clone()).expect("tokens");
        let got = model
            .tokenize(text, add_special, parse_special)
            .expect("tokenize");
        if got != expected {
            mismatches.push(format!(
                "{text:?} add_special={add_special} parse_special={parse_special}\n  reference {expected:?}\n  minerva   {got:?}"
            ));
        }
    }
    println!(
        "{}: {} of {} tokenizations identical to the reference",
        m.name,
        cases.len() - mismatches.len(),
        cases.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn qwen_tokenization_matches_reference() {
    check(&QWEN);
}

#[test]
fn gemma_tokenization_matches_reference() {
    check(&GEMMA);
}
