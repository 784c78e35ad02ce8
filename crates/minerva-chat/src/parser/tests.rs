//! Parser tests on raw replies. Sources: the Hermes/Qwen form is what Qwen2.5's chat template
//! asks for and what qwen2.5-coder:0.5b writes (recorded from Minerva at temperature 0); the
//! Llama 3.1 form is the JSON-call format from Meta's Llama 3.1 model card ("Respond in the
//! format {"name": function name, "parameters": dictionary of argument name and its value}")
//! and its `<|python_tag|>` form; the Mistral form is Mistral Nemo's `[TOOL_CALLS][...]` from
//! its tokenizer's chat template.

use super::*;

#[derive(Debug, Default, PartialEq)]
struct Reply {
    content: String,
    calls: Vec<(String, String)>,
    ended: Vec<usize>,
}

fn collect(events: Vec<ReplyEvent>, r: &mut Reply) {
    for e in events {
        match e {
            ReplyEvent::Content(t) => r.content.push_str(&t),
            ReplyEvent::ToolCallStart { index, id, name } => {
                assert_eq!(index, r.calls.len());
                assert!(id.starts_with("call_") && id.len() == 29, "{id}");
                r.calls.push((name, String::new()));
            }
            ReplyEvent::ToolCallArgs { index, delta } => r.calls[index].1.push_str(&delta),
            ReplyEvent::ToolCallEnd { index } => r.ended.push(index),
            ReplyEvent::Reasoning(t) => panic!("reasoning from the reply parser: {t}"),
        }
    }
}

/// Parses `text` whole and in pieces of every size from 1 to 7 characters; all must agree.
fn parse(format: ToolFormat, names: &[&str], text: &str) -> Reply {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut whole = Reply::default();
    let mut p = ReplyParser::new(format, names.clone());
    collect(p.push(text), &mut whole);
    collect(p.finish(), &mut whole);
    let chars: Vec<char> = text.chars().collect();
    for size in 1..=7 {
        let mut r = Reply::default();
        let mut p = ReplyParser::new(format, names.clone());
        for piece in chars.chunks(size) {
            collect(p.push(&piece.iter().collect::<String>()), &mut r);
        }
        collect(p.finish(), &mut r);
        assert_eq!(r, whole, "pieces of {size} differ for {text:?}");
    }
    whole
}

fn call(name: &str, args: &str) -> (String, String) {
    (name.to_string(), args.to_string())
}

#[test]
fn hermes_call_with_text_before() {
    let r = parse(
        ToolFormat::Hermes,
        &["get_weather"],
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    );
    assert_eq!(r.content, "Let me check.\n");
    assert_eq!(r.calls, vec![call("get_weather", r#"{"city": "Paris"}"#)]);
    assert_eq!(r.ended, vec![0]);
}

#[test]
fn hermes_two_calls() {
    let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>";
    let r = parse(ToolFormat::Hermes, &["get_weather", "get_time"], text);
    assert_eq!(r.content, "");
    assert_eq!(
        r.calls,
        vec![
            call("get_weather", r#"{"city": "Paris"}"#),
            call("get_time", r#"{"tz": "CET"}"#)
        ]
    );
}

#[test]
fn bare_json_as_small_qwen_writes_it() {
    // qwen2.5-coder:0.5b, temperature 0, "What is the weather in Paris? Use the get_weather tool."
    let r = parse(
        ToolFormat::Hermes,
        &["get_weather"],
        "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
    );
    assert_eq!(r.content, "");
    assert_eq!(r.calls, vec![call("get_weather", r#"{"city": "Paris"}"#)]);
}

#[test]
fn bare_json_calls_one_after_another() {
    let text =
        "{\"name\": \"a\", \"arguments\": {}}\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}";
    let r = parse(ToolFormat::Generic, &["a", "b"], text);
    assert_eq!(
        r.calls,
        vec![call("a", "{}"), call("b", r#"{"x": [1, 2]}"#)]
    );
    assert_eq!(r.content, "");
}

#[test]
fn json_that_is_not_a_call_stays_content() {
    for text in [
        "{\"city\": \"Paris\", \"temp\": 21}",
        "{\"name\": \"Paris\", \"arguments\": {}}",
        "{\"name\": \"get_weather\", \"arguments\": \"Paris\"}",
        "The answer is {\"name\": \"get_weather\", \"arguments\": {}}",
        "[1, 2, 3]",
        "{not json at all",
    ] {
        let r = parse(ToolFormat::Hermes, &["get_weather"], text);
        assert_eq!(r.content, text, "for {text}");
        assert!(r.calls.is_empty(), "for {text}");
    }
}

#[test]
fn no_tools_means_no_parsing() {
    let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
    let r = parse(ToolFormat::Hermes, &[], text);
    assert_eq!(r.content, text);
    assert!(r.calls.is_empty());
}

#[test]
fn a_call_cut_by_max_tokens_keeps_what_was_generated() {
    let r = parse(
        ToolFormat::Hermes,
        &["get_weather"],
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
    );
    assert_eq!(r.calls, vec![call("get_weather", r#"{"city": "Par"#)]);
    assert_eq!(r.ended, vec![0]);
    assert_eq!(r.content, "");
}

#[test]
fn a_reply_cut_before_the_name_is_content() {
    let text = "<tool_call>\n{\"name\": \"get_wea";
    let r = parse(ToolFormat::Hermes, &["get_weather"], text);
    assert_eq!(r.content, text);
    assert!(r.calls.is_empty());
}

#[test]
fn text_after_a_call_is_content() {
    let r = parse(
        ToolFormat::Hermes,
        &["f"],
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\nDone.",
    );
    assert_eq!(r.content, "Done.");
    assert_eq!(r.calls, vec![call("f", "{}")]);
}

#[test]
fn a_partial_opener_is_held_back_then_released() {
    let r = parse(ToolFormat::Hermes, &["f"], "a <tool b");
    assert_eq!(r.content, "a <tool b");
    let r = parse(ToolFormat::Hermes, &["f"], "ends with <tool_c");
    assert_eq!(r.content, "ends with <tool_c");
}

#[test]
fn llama3_forms() {
    let r = parse(
        ToolFormat::Llama3,
        &["get_weather"],
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
    );
    assert_eq!(r.calls, vec![call("get_weather", r#"{"city": "Paris"}"#)]);
    let r = parse(
        ToolFormat::Llama3,
        &["a", "b"],
        "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"q\": 1}}; {\"name\": \"b\", \"parameters\": {}}",
    );
    assert_eq!(r.calls, vec![call("a", r#"{"q": 1}"#), call("b", "{}")]);
    assert_eq!(r.content, "");
}

#[test]
fn mistral_array() {
    let r = parse(
        ToolFormat::Mistral,
        &["a", "b"],
        "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": \"]\"}, \"id\": \"abcdef123\"}, {\"name\": \"b\", \"arguments\": {}}]",
    );
    assert_eq!(r.calls, vec![call("a", r#"{"x": "]"}"#), call("b", "{}")]);
    assert_eq!(r.content, "");
}

#[test]
fn tagged_string_arguments_are_decoded() {
    let r = parse(
        ToolFormat::Hermes,
        &["f"],
        "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>",
    );
    assert_eq!(r.calls, vec![call("f", r#"{"x": 1}"#)]);
}

#[test]
fn arguments_stream_in_pieces() {
    let mut p = ReplyParser::new(ToolFormat::Hermes, vec!["f".into()]);
    let mut pieces = 0;
    for piece in [
        "<tool_call>\n{\"name\": \"f\", ",
        "\"arguments\": {\"a",
        "\": 1, ",
        "\"b\": 2}}",
        "\n</tool_call>",
    ] {
        pieces += p
            .push(piece)
            .iter()
            .filter(|e| matches!(e, ReplyEvent::ToolCallArgs { .. }))
            .count();
    }
    assert!(pieces >= 3, "arguments came in {pieces} pieces");
}

#[test]
fn unicode_is_kept_whole() {
    let r = parse(
        ToolFormat::Hermes,
        &["f"],
        "Voilà 😊 <tool_call>{\"name\": \"f\", \"arguments\": {\"ville\": \"Zürich 😊\"}}</tool_call>",
    );
    assert_eq!(r.content, "Voilà 😊 ");
    assert_eq!(r.calls, vec![call("f", r#"{"ville": "Zürich 😊"}"#)]);
}

#[test]
fn a_fenced_bare_call_is_a_call() {
    // qwen2.5-coder:0.5b with `tool_choice: auto` (recorded through Minerva by a tester).
    let text = "```json\n{\n  \"name\": \"get_weather\",\n  \"arguments\": {\n    \"city\": \"Paris\",\n    \"unit\": \"c\"\n  }\n}\n```";
    let r = parse(ToolFormat::Hermes, &["get_weather"], text);
    assert_eq!(r.content, "");
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.calls[0].0, "get_weather");
    let args: serde_json::Value = serde_json::from_str(&r.calls[0].1).unwrap();
    assert_eq!(args["city"], "Paris");
    // A fenced block that is not a call is content, unchanged.
    for text in [
        "```json\n{\"city\": \"Paris\"}\n```",
        "```python\nprint(1)\n```",
        "``not a fence",
    ] {
        let r = parse(ToolFormat::Hermes, &["get_weather"], text);
        assert_eq!(r.content, text);
        assert!(r.calls.is_empty());
    }
}

#[test]
fn the_start_of_another_call_cut_off_is_dropped() {
    let text = "{\"name\": \"f\", \"arguments\": {}}\n{\"name\": \"f\", \"";
    let r = parse(ToolFormat::Hermes, &["f"], text);
    assert_eq!(r.calls, vec![call("f", "{}")]);
    assert_eq!(r.content, "");
}
