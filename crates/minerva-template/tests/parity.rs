//! Byte-for-byte parity with Python jinja2 as transformers sets it up.
//!
//! `tests/fixtures/templates/cases.json` is recorded by `scripts/templates/record.py` with real
//! jinja2; every case must render to exactly the recorded bytes here, or raise the same
//! `raise_exception` message.

use minerva_template::{ChatTemplate, RenderOptions, TemplateError};
use serde_json::Value;

/// Read at run time: cargo sets `CARGO_MANIFEST_DIR` for the test process, while a path baked
/// in at compile time can name another checkout that shares the target directory.
fn cases_path() -> String {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    format!("{dir}/../../tests/fixtures/templates/cases.json")
}

/// A readable account of where `got` departs from `want`: the first differing line of each,
/// with a caret under the first differing character, and a little context before it.
fn diff(want: &str, got: &str) -> String {
    let at = want
        .char_indices()
        .zip(got.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(want.len().min(got.len()));
    let line_no = want[..at].matches('\n').count() + 1;
    let line_start = want[..at].rfind('\n').map_or(0, |i| i + 1);
    let context_start = want[..line_start]
        .rmatch_indices('\n')
        .nth(2)
        .map_or(0, |(i, _)| i + 1);
    let line_of = |s: &str| -> String {
        let rest = s.get(line_start..).unwrap_or("");
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        format!("{:?}", &rest[..end])
    };
    let col = want[line_start..at].chars().count();
    let mut out = String::new();
    out.push_str(&format!(
        "  first difference at byte {at} (line {line_no}, column {}); lengths want {} got {}\n",
        col + 1,
        want.len(),
        got.len()
    ));
    out.push_str("  context:\n");
    for line in want[context_start..line_start].lines() {
        out.push_str(&format!("    | {line:?}\n"));
    }
    out.push_str(&format!("  want: {}\n", line_of(want)));
    out.push_str(&format!("  got:  {}\n", line_of(got)));
    out
}

fn run_case(case: &Value) -> Result<(), String> {
    let str_field = |k: &str| case[k].as_str().unwrap_or_default();
    let template = ChatTemplate::new(
        str_field("template"),
        str_field("bos_token"),
        str_field("eos_token"),
    )
    .map_err(|e| format!("  compile failed: {e}\n"))?;
    let messages = case["messages"].as_array().cloned().unwrap_or_default();
    let tools = if case["tools"].is_null() {
        None
    } else {
        Some(&case["tools"])
    };
    let opts = RenderOptions {
        add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap_or(false),
        tools,
        extra: case["extra"].as_object(),
    };
    let got = template.render(&messages, &opts);
    match (&case["expected"], &case["raised"], got) {
        (Value::String(want), _, Ok(got)) if *want == got => Ok(()),
        (Value::String(want), _, Ok(got)) => Err(diff(want, &got)),
        (Value::String(_), _, Err(e)) => Err(format!("  render failed: {e}\n")),
        (_, Value::String(msg), Err(TemplateError::Raised(got))) if *msg == got => Ok(()),
        (_, Value::String(msg), other) => Err(format!(
            "  jinja2 raised {msg:?}; got {:?}\n",
            other.map(|s| s.chars().take(200).collect::<String>())
        )),
        _ => Err("  malformed case\n".into()),
    }
}

/// The day scripts/templates/record.py pins `datetime.now()` to (2026-11-27 12:00 UTC): the
/// templates that print today's date (Granite, Mistral Small, gpt-oss) were recorded with it.
const RECORDED_AT: &str = "1795780800";

#[test]
fn renders_like_jinja2() {
    // The only test in this binary: nothing else reads the variable while it is set.
    std::env::set_var(minerva_template::NOW_VAR, RECORDED_AT);
    // MINERVA_TEMPLATE_CASES points at another recording, e.g. while probing a new template.
    let path = std::env::var("MINERVA_TEMPLATE_CASES").unwrap_or_else(|_| cases_path());
    let text = std::fs::read_to_string(&path).expect("read cases.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("parse cases.json");
    assert!(!cases.is_empty(), "no parity cases recorded");
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(report) = run_case(case) {
            failures.push(format!(
                "{}\n{report}",
                case["name"].as_str().unwrap_or("?")
            ));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} cases differ from jinja2:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}
