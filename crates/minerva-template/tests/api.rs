//! The public API: errors, sandbox limits, transformers' `tojson`, the default template.

use std::time::{Duration, Instant};

use minerva_template::{ChatTemplate, Limits, RenderOptions, TemplateError, DEFAULT_TEMPLATE};
use serde_json::{json, Value};

fn render_with(
    source: &str,
    messages: &[Value],
    opts: &RenderOptions<'_>,
) -> Result<String, TemplateError> {
    ChatTemplate::new(source, "<s>", "</s>")?.render(messages, opts)
}

fn render(source: &str) -> Result<String, TemplateError> {
    render_with(source, &[], &RenderOptions::default())
}

/// Renders `source`, expecting a `LimitExceeded` within two seconds.
fn assert_limited(source: &str) {
    let start = Instant::now();
    let result = render(source);
    let took = start.elapsed();
    assert!(
        matches!(result, Err(TemplateError::LimitExceeded(_))),
        "{source}: expected LimitExceeded, got {result:?}"
    );
    assert!(took < Duration::from_secs(2), "{source}: took {took:?}");
}

#[test]
fn chat_template_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<ChatTemplate>();
    check::<TemplateError>();
}

#[test]
fn huge_range_is_refused() {
    assert_limited("{% for i in range(10**9) %}x{% endfor %}");
}

#[test]
fn long_loops_run_out_of_fuel() {
    assert_limited(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    );
}

#[test]
fn infinite_macro_recursion_is_stopped() {
    assert_limited("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
}

#[test]
fn recursive_loop_is_stopped() {
    assert_limited("{% set t = [[1]] %}{% for x in t recursive %}{{ loop(t) }}{% endfor %}");
}

#[test]
fn output_size_is_capped() {
    let limits = Limits {
        max_output_bytes: 1000,
        ..Limits::default()
    };
    let t = ChatTemplate::with_limits("{% for i in range(2000) %}x{% endfor %}", "", "", limits)
        .unwrap();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert!(
        matches!(err, TemplateError::LimitExceeded(ref m) if m.contains("1000 bytes")),
        "{err:?}"
    );
    // Default limits: 100 MB of output is refused long before it is built.
    assert_limited("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
}

#[test]
fn memory_bombs_are_stopped() {
    assert_limited("{{ 'x' * 10**12 }}");
    assert_limited("{{ ([1] * 10**12)|length }}");
    // Doubling a string every iteration is charged per byte created.
    let limits = Limits {
        fuel: 200_000,
        ..Limits::default()
    };
    let t = ChatTemplate::with_limits(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "",
        "",
        limits,
    )
    .unwrap();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert!(matches!(err, TemplateError::LimitExceeded(_)), "{err:?}");
}

#[test]
fn amplifying_filters_and_methods_are_capped() {
    for src in [
        "{{ 'x'|center(10**12) }}",
        "{{ 'x'.ljust(10**12) }}",
        "{{ 'x'.center(10**12) }}",
        "{{ '1'.zfill(10**12) }}",
        "{{ ('ab' * 10000)|replace('', 'x' * 100000) }}",
        "{{ range(100000)|join('x' * 100000) }}",
        "{{ ('x' * 100000).join(range(100000)|map('string')) }}",
        "{{ ('{0}' * 100000).format('x' * 100000) }}",
        "{{ ('a\\n' * 100000)|indent(1000) }}",
        "{{ [[[[[[[[[[range(100000)|list]]]]]]]]]]|tojson(indent=1000) }}",
    ] {
        assert_limited(src);
    }
}

#[test]
fn deeply_nested_values_do_not_overflow_the_stack() {
    // 200k levels of nesting; freeing them recurses once per level.
    let src = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% for j in range(2) %}\
               {% set ns.x = [ns.x] %}{% endfor %}{% endfor %}{{ ns.x|length }}";
    assert_eq!(render(src).unwrap(), "1");
    let err = render(&src.replace("ns.x|length", "ns.x|tojson")).unwrap_err();
    assert!(matches!(err, TemplateError::LimitExceeded(_)), "{err:?}");
}

#[test]
fn oversized_source_is_rejected_at_compile() {
    let source = "x".repeat((1 << 20) + 1);
    let err = ChatTemplate::new(&source, "", "").unwrap_err();
    assert!(matches!(err, TemplateError::LimitExceeded(_)), "{err:?}");
}

#[test]
fn syntax_errors_are_reported_by_new() {
    for bad in [
        "{% for x in messages %}",
        "{{ 1 + }}",
        "{% if %}{% endif %}",
        "{% endfor %}",
    ] {
        let err = ChatTemplate::new(bad, "", "").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{bad}: {err:?}");
    }
}

#[test]
fn raise_exception_carries_the_templates_message() {
    let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
    let err = render_with(
        src,
        &[json!({"role": "assistant", "content": "x"})],
        &RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateError::Raised(
            "Conversation roles must alternate user/assistant/user/assistant/...".into()
        )
    );
    assert_eq!(
        err.to_string(),
        "Conversation roles must alternate user/assistant/user/assistant/..."
    );
    // Raised inside a macro inside a loop, the message still comes through untouched.
    let nested = "{% macro check(m) %}{% if m.role == 'tool' %}{{ raise_exception('no tools: ' ~ m.content) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}";
    let err = render_with(
        nested,
        &[json!({"role": "tool", "content": "42"})],
        &RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err, TemplateError::Raised("no tools: 42".into()));
}

#[test]
fn render_errors_are_render_errors() {
    for bad in [
        "{{ undefined_function() }}",
        "{{ 1 + 'a' }}",
        "{{ messages|nosuchfilter }}",
        "{{ missing.attr }}",
    ] {
        let err = render(bad).unwrap_err();
        assert!(matches!(err, TemplateError::Render(_)), "{bad}: {err:?}");
    }
}

#[test]
fn undefined_is_lenient_like_jinja2() {
    let msgs = [json!({"role": "user", "content": "hi"})];
    let out = render_with(
        "{{ nothing }}|{% if messages[0].missing %}T{% else %}F{% endif %}|{{ messages[3] }}|{{ nothing|length }}|{% for x in nothing %}x{% endfor %}",
        &msgs,
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(out, "|F||0|");
}

#[test]
fn tojson_matches_python_json_dumps() {
    let value = json!({"a": 1, "b": [1, 2], "c": {"d": "é<>&\u{2028}", "e": []}, "f": 1.5});
    let extra = json!({"v": value});
    let opts = RenderOptions {
        extra: extra.as_object(),
        ..RenderOptions::default()
    };
    let r = |src: &str| render_with(src, &[], &opts).unwrap();
    // Python's default separators, key order kept, non-ASCII kept, no HTML escaping.
    assert_eq!(
        r("{{ v|tojson }}"),
        "{\"a\": 1, \"b\": [1, 2], \"c\": {\"d\": \"é<>&\u{2028}\", \"e\": []}, \"f\": 1.5}"
    );
    assert_eq!(
        r("{{ v|tojson(indent=2) }}"),
        "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {\n    \"d\": \"é<>&\u{2028}\",\n    \"e\": []\n  },\n  \"f\": 1.5\n}"
    );
    assert_eq!(
        r("{{ v|tojson(separators=(',', ':'), sort_keys=true) }}"),
        "{\"a\":1,\"b\":[1,2],\"c\":{\"d\":\"é<>&\u{2028}\",\"e\":[]},\"f\":1.5}"
    );
    assert_eq!(
        r("{{ v|tojson(ensure_ascii=true) }}"),
        "{\"a\": 1, \"b\": [1, 2], \"c\": {\"d\": \"\\u00e9<>&\\u2028\", \"e\": []}, \"f\": 1.5}"
    );
    assert_eq!(
        r("{{ {'a': 1, 'b': [1, 2]}|tojson }}"),
        "{\"a\": 1, \"b\": [1, 2]}"
    );
    assert!(
        render("{{ nothing|tojson }}").is_err(),
        "Undefined is not JSON serializable"
    );
}

#[test]
fn extra_kwargs_and_special_tokens_reach_the_template() {
    let extra = json!({"enable_thinking": false, "eos_token": "<|end|>"});
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let opts = RenderOptions {
        add_generation_prompt: true,
        tools: Some(&tools),
        extra: extra.as_object(),
    };
    let out = render_with(
        "{{ bos_token }}{{ eos_token }}|{{ enable_thinking }}|{{ tools[0].function.name }}|{{ add_generation_prompt }}|{{ documents }}",
        &[],
        &opts,
    )
    .unwrap();
    assert_eq!(out, "<s><|end|>|False|f|True|None");
    assert_eq!(
        render("{{ tools }}|{{ tools is none }}").unwrap(),
        "None|True"
    );
}

#[test]
fn strftime_now_formats_the_current_date() {
    let out = render("{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') }}").unwrap();
    let (iso, human) = out.split_once('|').unwrap();
    assert_eq!(iso.len(), 10, "{out}");
    assert!(iso.starts_with("20"), "{out}");
    assert_eq!(human.len(), 11, "{out}");
    assert_eq!(&human[..2], &iso[8..10], "{out}");
}

#[test]
fn default_template_is_chatml() {
    let t = ChatTemplate::new(DEFAULT_TEMPLATE, "", "").unwrap();
    assert_eq!(t.source(), DEFAULT_TEMPLATE);
    let messages = [
        json!({"role": "system", "content": "Be brief."}),
        json!({"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image_url"}, {"type": "text", "text": "there"}]}),
        json!({"role": "assistant", "content": null}),
    ];
    let opts = RenderOptions {
        add_generation_prompt: true,
        ..RenderOptions::default()
    };
    assert_eq!(
        t.render(&messages, &opts).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n\
         <|im_start|>assistant\n<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn long_real_conversations_fit_the_default_limits() {
    // Read at run time: a path baked in at compile time can name another checkout that shares
    // the target directory.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let text = std::fs::read_to_string(format!("{dir}/../../tests/fixtures/templates/cases.json"))
        .unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    for name in [
        "Qwen-Qwen3-0.6B/tools_call/agp=True",
        "openai-gpt-oss-120b/tools_call/agp=True",
    ] {
        let case = cases.iter().find(|c| c["name"] == name).unwrap();
        let base = case["messages"].as_array().unwrap();
        let filler = "lorem ipsum dolor sit amet ".repeat(80); // ~2 KB per message
        let mut messages = vec![base[0].clone()];
        while messages.len() < 2000 {
            for m in &base[1..] {
                let mut m = m.clone();
                if m["content"].is_string() {
                    m["content"] = json!(format!("{} {filler}", m["content"].as_str().unwrap()));
                }
                messages.push(m);
            }
        }
        let template = ChatTemplate::new(case["template"].as_str().unwrap(), "", "").unwrap();
        let opts = RenderOptions {
            add_generation_prompt: true,
            tools: Some(&case["tools"]),
            extra: None,
        };
        let start = Instant::now();
        let out = template.render(&messages, &opts).unwrap();
        assert!(out.len() > 2_000_000, "{name}: {} bytes", out.len());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_template_renders_concurrently() {
    let t = ChatTemplate::new(DEFAULT_TEMPLATE, "", "").unwrap();
    let messages = [json!({"role": "user", "content": "hi"})];
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    let out = t.render(&messages, &RenderOptions::default()).unwrap();
                    assert_eq!(out, "<|im_start|>user\nhi<|im_end|>\n");
                }
            });
        }
    });
}
