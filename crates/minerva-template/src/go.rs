//! Ollama's chat templates: Go `text/template` source (`{{ .System }}`, `{{ range .Messages }}`)
//! rendered with the `gotmpl` crate and the values Ollama gives them (ollama/ollama
//! `template/template.go`, `Template.Execute`).
//!
//! What Ollama does, and this module does too:
//! - Messages are collated: consecutive messages of one role (except `tool`) are joined with a
//!   blank line, and every system message is also joined into `.System`.
//! - A template that uses `.Messages` is executed once with `.System`, `.Messages` (`Role`,
//!   `Content`, `Thinking`, `Images`, `ToolCalls` (`ID`, `Function` with `Index`, `Name`,
//!   `Arguments`), `ToolName`, `ToolCallID`), `.Tools`, `.Response` (empty), `.Think`,
//!   `.ThinkLevel` and `.IsThinkSet`.
//! - Any other template is executed once per turn with `.System`, `.Prompt` and `.Response`,
//!   the last turn with the template cut after its first `{{ .Response }}`; a template with
//!   neither `.Messages` nor `.Response` gets a `{{ .Response }}` appended.
//! - The functions `json`, `currentDate`, `yesterdayDate` and `toTypeScriptType`.
//! - Tools, tool functions and argument maps print as JSON (Go types with a `String()`
//!   method there): every printing action passes its value through a function that does so.
//!
//! Bounds: the source size, range iterations, template recursion (gotmpl's own limit) and the
//! output size.

use crate::{CappedWriter, Limits, RenderOptions, Result, TemplateError};
use gotmpl::{MissingKey, Template, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The function every printing action's value passes through ([`stringify`]).
const STRINGIFY: &str = "minervaString";
/// The key under which a struct-like map keeps the JSON it prints as.
const JSON_KEY: &str = "\u{0}json";

/// Whether `source` reads as a Go `text/template` rather than Jinja: an action that starts
/// with a field (`.Name`), a variable (`$x`) or a Go keyword (`if`, `range`, `end`, ...),
/// none of which Jinja writes inside `{{ }}`.
pub fn is_go_template(source: &str) -> bool {
    source.match_indices("{{").any(|(at, _)| {
        let action = source[at + 2..].trim_start_matches('-').trim_start();
        let word: String = action
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let after = action[word.len()..].chars().next();
        // A field or variable as an argument (`json .Tools`, `len $x`): Jinja never writes a
        // name after a space and a dot.
        let inside = unquoted(&action[..action.find("}}").unwrap_or(action.len())]);
        let argument = inside.match_indices([' ', '(']).any(|(i, _)| {
            let rest = &inside[i + 1..];
            (rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_alphabetic()))
                || rest.starts_with('$')
        });
        argument
            || action.starts_with('.')
            || action.starts_with('$')
            || (matches!(
                word.as_str(),
                "if" | "range" | "end" | "else" | "with" | "define" | "template" | "block"
            ) && after.is_none_or(|c| c.is_whitespace() || c == '}' || c == '-'))
    })
}

/// `text` without what is inside its `'…'`, `"…"` and `` `…` `` quotes.
fn unquoted(text: &str) -> String {
    let mut quote = None;
    text.chars()
        .filter(|&c| match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                false
            }
            None if matches!(c, '\'' | '"' | '`') => {
                quote = Some(c);
                false
            }
            None => true,
        })
        .collect()
}

/// A compiled Ollama template.
pub struct GoTemplate {
    /// The template as executed for whole turns (or for `.Messages`).
    full: Template,
    /// Cut after its first `{{ .Response }}`, for the last turn of the per-turn form.
    last: Template,
    uses_messages: bool,
    uses_suffix: bool,
    limits: Limits,
}

impl GoTemplate {
    /// Compiles `source` (already checked against the source size limit).
    pub fn new(source: &str, limits: Limits) -> Result<Self> {
        let source = source.replace("\r\n", "\n");
        let pieces = scan(&source)?;
        check_blocks(&pieces)?;
        let vars = vars(&pieces);
        let uses_messages = vars.iter().any(|v| v == "messages");
        let uses_suffix = vars.iter().any(|v| v == "suffix");
        let mut full = printing_as_ollama(&source, &pieces);
        if !uses_messages && !vars.iter().any(|v| v == "response") {
            full.push_str("{{ .Response }}");
        }
        let pieces = scan(&full)?;
        let last = cut_after_response(&full, &pieces);
        Ok(GoTemplate {
            full: compile(&full, &limits)?,
            last: compile(&last, &limits)?,
            uses_messages,
            uses_suffix,
            limits,
        })
    }

    /// The prompt for `messages` (OpenAI-style objects), as Ollama renders it.
    pub fn render(&self, messages: &[Json], opts: &RenderOptions<'_>) -> Result<String> {
        let (system, messages) = collate(messages);
        let extra = |k: &str| opts.extra.and_then(|e| e.get(k));
        let think = extra("enable_thinking").and_then(Json::as_bool);
        let level = extra("reasoning_effort").and_then(Json::as_str);
        let common = |map: &mut BTreeMap<Arc<str>, Value>| {
            map.insert("Think".into(), Value::Bool(think.unwrap_or(false)));
            map.insert("ThinkLevel".into(), Value::from(level.unwrap_or_default()));
            map.insert("IsThinkSet".into(), Value::Bool(think.is_some()));
        };
        if self.uses_messages {
            let mut data = BTreeMap::new();
            common(&mut data);
            data.insert("System".into(), Value::from(system));
            data.insert(
                "Messages".into(),
                Value::List(messages.iter().map(message).collect()),
            );
            let tools = opts.tools.and_then(Json::as_array);
            data.insert(
                "Tools".into(),
                tools.map_or(Value::Nil, |t| Value::List(t.iter().map(tool).collect())),
            );
            data.insert("Response".into(), Value::from(""));
            return self.execute(&self.full, &Value::Map(Arc::new(data)), String::new());
        }
        // One execution per turn: a system prompt, a prompt and a response.
        let mut out = String::new();
        let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
        let turn = |s: &mut String, p: &mut String, r: &mut String| {
            let mut data = BTreeMap::new();
            common(&mut data);
            data.insert("System".into(), Value::from(std::mem::take(s)));
            data.insert("Prompt".into(), Value::from(std::mem::take(p)));
            data.insert("Response".into(), Value::from(std::mem::take(r)));
            Value::Map(Arc::new(data))
        };
        for m in &messages {
            match m.role.as_str() {
                "system" => {
                    if !prompt.is_empty() || !response.is_empty() {
                        let data = turn(&mut system, &mut prompt, &mut response);
                        out = self.execute(&self.full, &data, out)?;
                    }
                    system = m.content.clone();
                }
                "user" => {
                    if !response.is_empty() {
                        let data = turn(&mut system, &mut prompt, &mut response);
                        out = self.execute(&self.full, &data, out)?;
                    }
                    prompt = m.content.clone();
                }
                "assistant" => response = m.content.clone(),
                _ => {}
            }
        }
        let data = turn(&mut system, &mut prompt, &mut response);
        self.execute(&self.last, &data, out)
    }

    /// Whether the template fills in the middle (it reads `.Suffix`).
    pub fn uses_suffix(&self) -> bool {
        self.uses_suffix
    }

    /// The fill-in-the-middle prompt for `prefix` and `suffix`, as Ollama renders a template
    /// that reads `.Suffix`: once, with `.Prompt`, `.Suffix` and an empty `.Response`.
    pub fn render_infill(&self, prefix: &str, suffix: &str) -> Result<String> {
        let mut data = BTreeMap::new();
        data.insert("Prompt".into(), Value::from(prefix));
        data.insert("Suffix".into(), Value::from(suffix));
        data.insert("Response".into(), Value::from(""));
        data.insert("Think".into(), Value::Bool(false));
        data.insert("ThinkLevel".into(), Value::from(""));
        data.insert("IsThinkSet".into(), Value::Bool(false));
        self.execute(&self.full, &Value::Map(Arc::new(data)), String::new())
    }

    /// `out` with `template`'s output for `data` appended, within the output limit.
    fn execute(&self, template: &Template, data: &Value, out: String) -> Result<String> {
        let cap = self.limits.max_output_bytes;
        let mut writer = CappedWriter {
            cap,
            buf: out.into_bytes(),
            exceeded: false,
        };
        let result = template.execute(&mut writer, data);
        if writer.exceeded {
            return Err(TemplateError::LimitExceeded(format!(
                "rendered prompt is longer than {cap} bytes"
            )));
        }
        result.map_err(|e| match e {
            gotmpl::TemplateError::RangeIterLimit => TemplateError::LimitExceeded(e.to_string()),
            other if other.to_string().contains("recursion") => {
                TemplateError::LimitExceeded(other.to_string())
            }
            other => TemplateError::Render(other.to_string()),
        })?;
        String::from_utf8(writer.buf).map_err(|e| TemplateError::Render(e.to_string()))
    }
}

impl std::fmt::Debug for GoTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoTemplate")
            .field("uses_messages", &self.uses_messages)
            .finish_non_exhaustive()
    }
}

fn compile(source: &str, limits: &Limits) -> Result<Template> {
    Template::new("ollama")
        .missing_key(MissingKey::ZeroValue)
        .max_range_iters(limits.fuel)
        .func(STRINGIFY, |args| {
            Ok(stringify(args.first().unwrap_or(&Value::Nil)))
        })
        .func("json", |args| {
            Ok(Value::from(go_json(args.first().unwrap_or(&Value::Nil))))
        })
        .func("currentDate", |_| Ok(Value::from(date(0))))
        .func("yesterdayDate", |_| Ok(Value::from(date(-1))))
        .func("toTypeScriptType", |args| {
            Ok(Value::from(typescript_type(
                args.first().unwrap_or(&Value::Nil),
            )))
        })
        .parse(source)
        .map_err(|e| TemplateError::Syntax(e.to_string()))
}

/// A piece of template source: text, or an action with its body (without the delimiters
/// and trim markers, trimmed).
enum Piece<'a> {
    Text(&'a str),
    Action {
        source: &'a str,
        body: &'a str,
        trim_left: bool,
        trim_right: bool,
    },
}

/// Splits `source` into text and actions, reading string literals and comments so that a
/// `}}` inside them does not end an action. An action never closed is a syntax error.
fn scan(source: &str) -> Result<Vec<Piece<'_>>> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = source[at..].find("{{").map(|i| i + at) {
        if open > at {
            out.push(Piece::Text(&source[at..open]));
        }
        let mut i = open + 2;
        let mut quote: Option<u8> = None;
        let close = loop {
            let Some(&c) = bytes.get(i) else {
                return Err(TemplateError::Syntax(format!(
                    "an action opened at byte {open} is never closed with }}}}"
                )));
            };
            match quote {
                Some(q) if c == b'\\' && q != b'`' => i += 2,
                Some(q) if c == q => {
                    quote = None;
                    i += 1;
                }
                Some(_) => i += 1,
                None if matches!(c, b'"' | b'`' | b'\'') => {
                    quote = Some(c);
                    i += 1;
                }
                // Byte comparisons: `i` may sit inside a multi-byte character after an escape.
                None if bytes[i..].starts_with(b"/*") => {
                    match bytes[i + 2..].windows(2).position(|w| w == b"*/") {
                        Some(end) => i += end + 4,
                        None => i = bytes.len(),
                    }
                }
                None if bytes[i..].starts_with(b"}}") => break i,
                None => i += 1,
            }
        };
        let inner = &source[open + 2..close];
        let trim_left = inner.starts_with("- ") || inner.starts_with("-\n") || inner == "-";
        let trim_right = inner.ends_with(" -") || inner.ends_with("\n-");
        let mut body = inner;
        if trim_left {
            body = &body[1..];
        }
        if trim_right {
            body = &body[..body.len() - 1];
        }
        out.push(Piece::Action {
            source: &source[open..close + 2],
            body: body.trim(),
            trim_left,
            trim_right,
        });
        at = close + 2;
    }
    if at < source.len() {
        out.push(Piece::Text(&source[at..]));
    }
    Ok(out)
}

/// Every `if`, `range`, `with`, `define` and `block` closed by its `end`, and no `end` more
/// (Go's parser refuses both; gotmpl lets an unclosed block run to the end).
fn check_blocks(pieces: &[Piece<'_>]) -> Result<()> {
    let mut open: Vec<&str> = Vec::new();
    for piece in pieces {
        let Piece::Action { body, .. } = piece else {
            continue;
        };
        match keyword(body) {
            k @ ("if" | "range" | "with" | "define" | "block") => open.push(k),
            // As Ollama's template check: `{{ template "x" }}` without data is refused.
            "template" if body.trim_end().ends_with(['"', '`']) => {
                return Err(TemplateError::Syntax(format!(
                    "{{{{ {body} }}}} gives the template no data: write {{{{ {body} . }}}}"
                )));
            }
            "end" => open.pop().map(drop).ok_or_else(|| {
                TemplateError::Syntax(
                    "{{ end }} without an {{ if }}, {{ range }}, {{ with }}, {{ define }} or {{ block }} to close".into(),
                )
            })?,
            _ => {}
        }
    }
    match open.last() {
        Some(k) => Err(TemplateError::Syntax(format!(
            "a {{{{ {k} }}}} is never closed with {{{{ end }}}}"
        ))),
        None => Ok(()),
    }
}

/// The first word of an action: a keyword for control actions.
fn keyword(body: &str) -> &str {
    body.split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default()
}

const CONTROL: &[&str] = &[
    "if", "range", "with", "else", "end", "define", "template", "block", "break", "continue",
];

/// Whether an action prints its value (not control, not a declaration, not a comment).
fn prints(body: &str) -> bool {
    let declares = body.starts_with('$')
        && body
            .split_once(['=', ':'])
            .is_some_and(|(name, _)| !name.contains(['.', ' ', '|', '(']) || name.ends_with(' '));
    !body.is_empty() && !body.starts_with("/*") && !CONTROL.contains(&keyword(body)) && !declares
}

/// The fields a template reads (`.Messages` → `messages`), lower-cased, as Ollama's
/// `Template.Vars`.
fn vars(pieces: &[Piece<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for piece in pieces {
        let Piece::Action { body, .. } = piece else {
            continue;
        };
        for (at, _) in body.match_indices('.') {
            let name: String = body[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name.to_ascii_lowercase());
            }
        }
    }
    out
}

/// The source with every printing action's value passed through [`STRINGIFY`].
fn printing_as_ollama(source: &str, pieces: &[Piece<'_>]) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Action {
                body,
                trim_left,
                trim_right,
                ..
            } if prints(body) => {
                out.push_str(if *trim_left { "{{- " } else { "{{ " });
                out.push_str(&format!("({body}) | {STRINGIFY}"));
                out.push_str(if *trim_right { " -}}" } else { " }}" });
            }
            Piece::Action { source, .. } => out.push_str(source),
        }
    }
    out
}

/// The template up to and including its first action that prints `.Response`; after it only
/// the ends of blocks opened before it remain (Ollama's `deleteNode` on the parse tree).
fn cut_after_response(source: &str, pieces: &[Piece<'_>]) -> String {
    let mut out = String::with_capacity(source.len());
    let mut cut = false;
    let mut depth = 0usize;
    for piece in pieces {
        match piece {
            Piece::Text(t) if !cut => out.push_str(t),
            Piece::Text(_) => {}
            Piece::Action { source, body, .. } if !cut => {
                out.push_str(source);
                let response = body.match_indices(".Response").any(|(at, m)| {
                    !body[at + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
                });
                if prints(body) && response {
                    cut = true;
                }
            }
            Piece::Action { body, .. } => match keyword(body) {
                "if" | "range" | "with" | "define" | "block" => depth += 1,
                "end" if depth > 0 => depth -= 1,
                "end" => out.push_str("{{ end }}"),
                _ => {}
            },
        }
    }
    out
}

/// A message as the template sees it.
#[derive(Debug, Clone, Default)]
struct Message {
    role: String,
    content: String,
    thinking: String,
    tool_calls: Vec<Json>,
    tool_name: String,
    tool_call_id: String,
}

/// Ollama's `collate`: the system messages joined into one system prompt, and runs of
/// messages of one role (other than `tool`) joined with a blank line.
fn collate(messages: &[Json]) -> (String, Vec<Message>) {
    let text = |m: &Json, k: &str| {
        m.get(k)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut system = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    for m in messages {
        let msg = Message {
            role: text(m, "role"),
            content: content(m.get("content")),
            thinking: m
                .get("reasoning_content")
                .or_else(|| m.get("thinking"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            tool_calls: m
                .get("tool_calls")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default(),
            tool_name: m
                .get("tool_name")
                .or_else(|| m.get("name"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            tool_call_id: text(m, "tool_call_id"),
        };
        if msg.role == "system" {
            system.push(msg.content.clone());
        }
        match out.last_mut() {
            Some(last) if last.role == msg.role && msg.role != "tool" => {
                last.content.push_str("\n\n");
                last.content.push_str(&msg.content);
                last.tool_calls.extend(msg.tool_calls);
            }
            _ => out.push(msg),
        }
    }
    (system.join("\n\n"), out)
}

/// A message's text: a string, or the text parts of a list of parts joined.
fn content(value: Option<&Json>) -> String {
    match value {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Json::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(Arc::new(
        entries
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect(),
    ))
}

fn message(m: &Message) -> Value {
    let calls: Vec<Value> = m
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let f = call.get("function").unwrap_or(&Json::Null);
            let arguments = match f.get("arguments") {
                Some(Json::String(s)) => serde_json::from_str(s).unwrap_or(Json::String(s.clone())),
                Some(other) => other.clone(),
                None => Json::Object(Default::default()),
            };
            let name = f.get("name").and_then(Json::as_str).unwrap_or_default();
            let function = map(vec![
                ("Index", Value::Int(i as i64)),
                ("Name", Value::from(name)),
                ("Arguments", from_json(&arguments)),
                (
                    JSON_KEY,
                    Value::from(go_json_text(&serde_json::json!({
                        "index": i, "name": name, "arguments": arguments
                    }))),
                ),
            ]);
            let id = call.get("id").and_then(Json::as_str).unwrap_or_default();
            map(vec![
                ("ID", Value::from(id)),
                ("Function", function),
                (JSON_KEY, Value::from(go_json_text(call))),
            ])
        })
        .collect();
    map(vec![
        ("Role", Value::from(m.role.as_str())),
        ("Content", Value::from(m.content.as_str())),
        ("Thinking", Value::from(m.thinking.as_str())),
        ("Images", Value::List(Arc::from(Vec::new()))),
        ("ToolCalls", Value::List(calls.into())),
        ("ToolName", Value::from(m.tool_name.as_str())),
        ("ToolCallID", Value::from(m.tool_call_id.as_str())),
    ])
}

/// A tool (OpenAI's `{"type", "function": {"name", "description", "parameters"}}`) with the
/// Go field names Ollama's `api.Tool` has, printing as its JSON.
fn tool(t: &Json) -> Value {
    let f = t.get("function").unwrap_or(&Json::Null);
    let p = f.get("parameters").unwrap_or(&Json::Null);
    let properties: BTreeMap<Arc<str>, Value> = p
        .get("properties")
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
        .map(|(name, prop)| (Arc::from(name.as_str()), property(prop)))
        .collect();
    let parameters = map(vec![
        ("Type", field(p, "type")),
        ("Defs", field(p, "$defs")),
        ("Items", field(p, "items")),
        ("Required", field(p, "required")),
        ("Properties", Value::Map(Arc::new(properties))),
        (JSON_KEY, Value::from(go_json_text(&ollama_parameters(p)))),
    ]);
    let function = map(vec![
        ("Name", field(f, "name")),
        ("Description", field(f, "description")),
        ("Parameters", parameters),
        (JSON_KEY, Value::from(go_json_text(&ollama_function(f)))),
    ]);
    map(vec![
        ("Type", field(t, "type")),
        ("Items", field(t, "items")),
        ("Function", function),
        (JSON_KEY, Value::from(go_json_text(&ollama_tool(t)))),
    ])
}

/// A property of a tool's parameters: `Type` (as Ollama's `PropertyType` prints: one type as
/// itself, several as a list), `Items`, `Description`, `Enum`, printing as its JSON.
fn property(p: &Json) -> Value {
    let types = match p.get("type") {
        Some(Json::Array(list)) if list.len() == 1 => from_json(&list[0]),
        Some(Json::Array(list)) => from_json(&Json::Array(list.clone())),
        Some(t) => from_json(t),
        None => Value::from(""),
    };
    map(vec![
        ("Type", types),
        ("Items", field(p, "items")),
        ("Description", field(p, "description")),
        ("Enum", field(p, "enum")),
        (JSON_KEY, Value::from(go_json_text(&ollama_property(p)))),
    ])
}

/// A tool as Ollama's `api.Tool` encodes it: its fields in the struct's order, empty ones
/// left out, keys it does not know dropped, properties sorted by name, a single type as a
/// string.
fn ollama_tool(t: &Json) -> Json {
    let mut out = serde_json::Map::new();
    copy(&mut out, t, &["type", "items"]);
    let f = t.get("function").unwrap_or(&Json::Null);
    out.insert("function".into(), ollama_function(f));
    Json::Object(out)
}

fn ollama_function(f: &Json) -> Json {
    let mut out = serde_json::Map::new();
    out.insert(
        "name".into(),
        f.get("name").cloned().unwrap_or(Json::from("")),
    );
    out.insert(
        "description".into(),
        f.get("description").cloned().unwrap_or(Json::from("")),
    );
    if let Some(p) = f.get("parameters").filter(|p| p.is_object()) {
        out.insert("parameters".into(), ollama_parameters(p));
    }
    Json::Object(out)
}

fn ollama_parameters(p: &Json) -> Json {
    let mut out = serde_json::Map::new();
    out.insert(
        "type".into(),
        p.get("type").cloned().unwrap_or(Json::from("")),
    );
    copy(&mut out, p, &["$defs", "items", "required"]);
    out.insert("properties".into(), ollama_properties(p.get("properties")));
    Json::Object(out)
}

fn ollama_properties(properties: Option<&Json>) -> Json {
    let sorted: BTreeMap<&String, Json> = properties
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
        .map(|(name, prop)| (name, ollama_property(prop)))
        .collect();
    Json::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
}

fn ollama_property(p: &Json) -> Json {
    let mut out = serde_json::Map::new();
    copy(&mut out, p, &["anyOf"]);
    match p.get("type") {
        Some(Json::Array(list)) if list.len() == 1 => {
            out.insert("type".into(), list[0].clone());
        }
        Some(t) => {
            out.insert("type".into(), t.clone());
        }
        None => {}
    }
    copy(&mut out, p, &["items", "description", "enum"]);
    if p.get("properties").is_some_and(|v| v.is_object()) {
        out.insert("properties".into(), ollama_properties(p.get("properties")));
    }
    copy(&mut out, p, &["required"]);
    Json::Object(out)
}

/// Copies `keys` of `from` that are set and not empty into `out`, in that order.
fn copy(out: &mut serde_json::Map<String, Json>, from: &Json, keys: &[&str]) {
    for &k in keys {
        let empty = |v: &Json| match v {
            Json::Null => true,
            Json::String(s) => s.is_empty(),
            Json::Array(a) => a.is_empty(),
            Json::Object(o) => o.is_empty(),
            _ => false,
        };
        if let Some(v) = from.get(k).filter(|v| !empty(v)) {
            out.insert(k.to_string(), v.clone());
        }
    }
}

fn field(v: &Json, key: &str) -> Value {
    v.get(key).map_or(Value::Nil, from_json)
}

/// JSON as template values.
fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(o) => Value::Map(Arc::new(
            o.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect(),
        )),
    }
}

/// Template values as JSON (a struct-like map as the JSON it carries).
fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => match m.get(JSON_KEY).and_then(Value::as_str) {
            Some(text) => serde_json::from_str(text).unwrap_or(Json::Null),
            None => Json::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        },
    }
}

/// Go's `json.Marshal` text: compact, with `<`, `>` and `&` escaped as `\u003c` ...
fn go_json_text(v: &Json) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Ollama's `json` template function.
fn go_json(v: &Value) -> String {
    go_json_text(&to_json(v))
}

/// What a printing action prints: maps (tools, functions, arguments) and lists of them as
/// JSON, as Ollama's `String()` methods print them; anything else as it is.
fn stringify(v: &Value) -> Value {
    match v {
        Value::Map(_) => Value::from(go_json(v)),
        Value::List(items) if items.iter().any(|i| matches!(i, Value::Map(_))) => {
            Value::from(go_json(v))
        }
        other => other.clone(),
    }
}

/// Ollama's `toTypeScriptType` for a property: its type list as TypeScript (`string`,
/// `number`, `boolean`, `any[]`, `object`, a union with ` | `), `any` when unknown.
fn typescript_type(v: &Value) -> String {
    let types: Vec<String> = match v.field("Type") {
        Some(Value::List(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.to_string()],
        _ => Vec::new(),
    };
    let ts: Vec<&str> = types
        .iter()
        .map(|t| match t.as_str() {
            "string" => "string",
            "number" | "integer" => "number",
            "boolean" => "boolean",
            "array" => "any[]",
            "object" => "object",
            "null" => "null",
            _ => "any",
        })
        .collect();
    if ts.is_empty() {
        "any".into()
    } else {
        ts.join(" | ")
    }
}

/// Today (`offset` 0) or another day, `YYYY-MM-DD` in UTC, on the clock `strftime_now` uses.
fn date(offset: i64) -> String {
    let now = crate::strftime::DateTime::now();
    let day = crate::strftime::DateTime::from_unix(now.unix() + offset * 86_400);
    day.format("%Y-%m-%d")
}

#[cfg(test)]
#[path = "go_tests.rs"]
mod tests;
