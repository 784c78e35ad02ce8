//! The model's own template, Minerva's default for a model without one, and an override file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GEMMA, QWEN};
use minerva_core::{Backend, ModelSpec};
use serde_json::json;

fn conversation() -> Vec<serde_json::Value> {
    vec![
        json!({"role": "system", "content": "Be brief."}),
        json!({"role": "user", "content": "Hi 👋"}),
    ]
}

#[test]
fn qwen_uses_its_own_chatml_template() {
    let model = common::load(&QWEN, 512, 2);
    assert!(!model.info().default_template);
    let text = model
        .render_chat(&conversation(), None, &Default::default(), true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn qwen_template_renders_tools() {
    let model = common::load(&QWEN, 512, 2);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let text = model
        .render_chat(
            &conversation()[1..],
            Some(&tools),
            &Default::default(),
            true,
        )
        .unwrap();
    assert!(text.contains("<tools>"), "{text}");
    assert!(
        text.contains(r#"{"type": "function", "function": {"name": "get_weather""#),
        "{text}"
    );
}

#[test]
fn gemma_without_template_gets_the_default() {
    let model = common::load(&GEMMA, 512, 2);
    assert!(model.info().default_template);
    let text = model
        .render_chat(&conversation(), None, &Default::default(), true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n<|im_start|>assistant\n"
    );
}

fn qwen_with_template(
    source: &str,
) -> minerva_core::Result<std::sync::Arc<dyn minerva_core::Model>> {
    let spec = ModelSpec {
        id: "qwen".into(),
        path: common::model_path(&QWEN),
        ctx_size: Some(512),
        threads: Some(2),
        parallel: None,
        kv_size: None,
        kv_unified: None,
        flash_attn: None,
        queue: None,
        chat_template: Some(source.into()),
        queue_timeout: None,
        cache_bytes: None,
        sha256: None,
        projector: None,
    };
    minerva_llama::LlamaCppBackend::new().load(&spec)
}

#[test]
fn override_template_replaces_the_models_own() {
    let model = qwen_with_template(
        "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT] {% endif %}",
    )
    .unwrap();
    let text = model
        .render_chat(&conversation(), None, &Default::default(), true)
        .unwrap();
    assert_eq!(text, "[SYSTEM] Be brief.\n[USER] Hi 👋\n[ASSISTANT] ");
}

#[test]
fn broken_override_template_is_a_load_error() {
    let err = qwen_with_template("{% for m in messages %}")
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("template"), "{err}");
}

#[test]
fn not_a_gguf_file_is_a_clear_load_error() {
    let dir = std::env::temp_dir().join(format!("minerva-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        ("text.gguf", b"this is not a model".to_vec()),
        ("empty.gguf", Vec::new()),
        // A real header and then nothing: llama.cpp must refuse it, not crash.
        ("truncated.gguf", head(&common::model_path(&GEMMA), 4096)),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let spec = ModelSpec {
            id: name.into(),
            path,
            ctx_size: Some(512),
            threads: Some(1),
            parallel: None,
            kv_size: None,
            kv_unified: None,
            flash_attn: None,
            queue: None,
            chat_template: None,
            queue_timeout: None,
            cache_bytes: None,
            sha256: None,
            projector: None,
        };
        let err = minerva_llama::LlamaCppBackend::new()
            .load(&spec)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn head(path: &std::path::Path, n: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(n)
        .read_to_end(&mut out)
        .unwrap();
    out
}
