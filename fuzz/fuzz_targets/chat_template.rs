//! The chat-template renderer (`minerva_template`) on a hostile template and hostile messages.
//!
//! The input is the template source, a NUL byte, then bytes from which `arbitrary` derives the
//! conversation (roles, contents as text, parts or null, tool calls, tools, extra variables),
//! so seeds can be real templates. Compiling and rendering never panic; a render ends within
//! the fuel (libFuzzer's `-timeout` catches a hang, `-rss_limit_mb` a blow-up) and its output
//! respects the output limit.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use minerva_template::{ChatTemplate, Limits, RenderOptions, TemplateError};
use serde_json::{json, Map, Value};

#[derive(Arbitrary, Debug)]
enum Content {
    Text(String),
    Parts(Vec<(bool, String)>),
    Null,
}

#[derive(Arbitrary, Debug)]
struct Message {
    role: u8,
    content: Content,
    reasoning: Option<String>,
    tool_call: Option<(String, String)>,
}

#[derive(Arbitrary, Debug)]
struct Conversation {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    tools: Option<Vec<(String, String)>>,
    extra: Vec<(String, String)>,
    bos: String,
    eos: String,
}

const ROLES: [&str; 5] = ["system", "user", "assistant", "tool", "developer"];

/// Small bounds, so that each run stays fast; the defaults differ only in size.
const LIMITS: Limits = Limits {
    max_source_bytes: 64 << 10,
    max_output_bytes: 256 << 10,
    fuel: 200_000,
    max_recursion: 100,
};

fn message(m: &Message) -> Value {
    let content = match &m.content {
        Content::Text(t) => json!(t),
        Content::Parts(parts) => parts
            .iter()
            .map(|(text, s)| {
                if *text {
                    json!({"type": "text", "text": s})
                } else {
                    json!({"type": "image", "image": s})
                }
            })
            .collect(),
        Content::Null => Value::Null,
    };
    let mut v = json!({"role": ROLES[usize::from(m.role) % ROLES.len()], "content": content});
    if let Some(r) = &m.reasoning {
        v["reasoning_content"] = json!(r);
    }
    if let Some((name, args)) = &m.tool_call {
        v["tool_calls"] = json!([{"type": "function", "id": "call_0",
            "function": {"name": name, "arguments": args}}]);
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let source = String::from_utf8_lossy(&data[..split]);
    let rest = data.get(split + 1..).unwrap_or_default();
    let Ok(conversation) = Conversation::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    let template =
        match ChatTemplate::with_limits(&source, &conversation.bos, &conversation.eos, LIMITS) {
            Ok(t) => t,
            Err(TemplateError::Syntax(_) | TemplateError::LimitExceeded(_)) => return,
            Err(other) => {
                panic!("compiling failed with neither a syntax error nor a limit: {other}")
            }
        };
    let messages: Vec<Value> = conversation.messages.iter().map(message).collect();
    let tools = conversation.tools.as_ref().map(|tools| {
        tools
            .iter()
            .map(|(name, description)| {
                json!({"type": "function", "function": {"name": name,
                    "description": description, "parameters": {"type": "object"}}})
            })
            .collect::<Value>()
    });
    let extra: Map<String, Value> = conversation
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let opts = RenderOptions {
        add_generation_prompt: conversation.add_generation_prompt,
        tools: tools.as_ref(),
        extra: Some(&extra),
    };
    if let Ok(prompt) = template.render(&messages, &opts) {
        assert!(
            prompt.len() <= LIMITS.max_output_bytes,
            "a prompt of {} bytes passed the output limit",
            prompt.len()
        );
    }
});
