//! Grammar-constrained sampling on the real model: a JSON schema compiled by minerva-grammar
//! yields JSON that parses and has the schema's shape; a lazy grammar waits for its trigger; a
//! grammar that is complete while `ignore_eos` bans the end is an error, not an abort.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::QWEN;
use minerva_core::{
    FinishReason, GenEvent, GenerateRequest, GrammarSpec, Model, OutputFormat, SamplingParams,
};
use serde_json::json;

const PROMPT: &str =
    "<|im_start|>user\nDescribe a cat as JSON with its name and age.<|im_end|>\n<|im_start|>assistant\n";

fn run(
    model: &dyn Model,
    format: OutputFormat,
    ignore_eos: bool,
) -> (String, Option<FinishReason>) {
    let mut stream = model
        .generate(GenerateRequest {
            prompt: model.tokenize(PROMPT, true, true).unwrap(),
            sampling: SamplingParams {
                temperature: 0.0,
                ignore_eos,
                format: Some(format),
                ..SamplingParams::default()
            },
            max_tokens: Some(200),
            logprobs: None,
            cache_prompt: false,
            reasoning: None,
            images: Vec::new(),
        })
        .unwrap();
    let mut bytes = Vec::new();
    while let Some(ev) = stream.blocking_recv() {
        match ev {
            Ok(GenEvent::Token(t)) => bytes.extend(t.bytes),
            Ok(GenEvent::Done { reason, .. }) => {
                return (String::from_utf8(bytes).unwrap(), Some(reason))
            }
            Ok(GenEvent::Embedding { .. }) => panic!("an embedding in a generation"),
            Err(_) => return (String::from_utf8_lossy(&bytes).into_owned(), None),
        }
    }
    panic!("stream ended without Done or an error");
}

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 30},
            "indoor": {"type": "boolean"}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    })
}

#[test]
fn schema_grammars_constrain_greedy_generation() {
    let model = common::load(&QWEN, 1024, 2);
    let gbnf = minerva_grammar::schema_to_gbnf(&schema()).unwrap();

    let (text, reason) = run(
        model.as_ref(),
        OutputFormat::Grammar(GrammarSpec::eager(gbnf.clone())),
        false,
    );
    assert_eq!(reason, Some(FinishReason::Stop), "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        value["name"].as_str().unwrap().chars().count() <= 20,
        "{text}"
    );
    assert!((0..=30).contains(&value["age"].as_i64().unwrap()), "{text}");

    // Lazy: free text until the first "{", then the grammar from that brace on.
    let lazy = GrammarSpec {
        gbnf: gbnf.clone(),
        trigger_patterns: vec![r"[\s\S]*?(\{)".into()],
        trigger_tokens: Vec::new(),
    };
    let (text, reason) = run(model.as_ref(), OutputFormat::Grammar(lazy), false);
    assert_eq!(reason, Some(FinishReason::Stop), "{text}");
    let start = text.find('{').expect("a brace");
    let value: serde_json::Value = serde_json::from_str(&text[start..]).unwrap();
    assert!(value["age"].is_i64(), "{text}");

    // Complete grammar, end banned: the request fails, the model keeps serving.
    let (_, reason) = run(
        model.as_ref(),
        OutputFormat::Grammar(GrammarSpec::eager("root ::= \"ok\"")),
        true,
    );
    assert_eq!(reason, None, "expected an error");
    let (text, reason) = run(model.as_ref(), OutputFormat::JsonObject, false);
    assert_eq!(reason, Some(FinishReason::Stop));
    assert!(serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .is_object());
}
