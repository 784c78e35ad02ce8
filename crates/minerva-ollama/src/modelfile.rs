//! Ollama's Modelfile: the text form of a created model (`FROM`, `PARAMETER`, `TEMPLATE`,
//! `SYSTEM`, `MESSAGE`, `LICENSE`, `ADAPTER`, `REQUIRES`), read as Ollama's parser reads it
//! (ollama/ollama `parser/parser.go`, docs/modelfile.md) and written back for `show
//! --modelfile`.
//!
//! The grammar: one instruction per line, its name in any case; `#` starts a comment line.
//! A value runs to the end of its line (trimmed), or is quoted with `"` or `"""` and then may
//! span lines; quotes are not escaped, and what lies inside them is kept as it is. `PARAMETER`
//! takes a name and a value typed as Ollama types its options; `MESSAGE` a role (`system`,
//! `user`, `assistant`) and a text. Errors name the line.

use crate::options::{kind, OptionKind};
use crate::CreateRequest;
use serde_json::{json, Map, Value};
use std::fmt;

/// A Modelfile that does not read, with the line it is on (1-based; 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelfileError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ModelfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "Modelfile: {}", self.message)
        } else {
            write!(f, "Modelfile line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ModelfileError {}

fn error(line: usize, message: impl Into<String>) -> ModelfileError {
    ModelfileError {
        line,
        message: message.into(),
    }
}

/// One instruction: its name (lower case), the `PARAMETER` name or `MESSAGE` role when it has
/// one, and its value with the quotes taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line the instruction starts on (1-based).
    pub line: usize,
    /// `from`, `parameter`, `template`, `system`, `message`, `license`, `adapter`, ...
    pub name: String,
    /// The parameter's name (`PARAMETER`) or the role (`MESSAGE`).
    pub key: Option<String>,
    pub value: String,
}

/// What a Modelfile asks for, in the fields of `/api/create`, each with the line it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelfileRequest {
    /// Every `FROM`: a model name, a file or directory path, or a blob (`@sha256:<hex>`).
    pub from: Vec<(usize, String)>,
    pub template: Option<(usize, String)>,
    pub system: Option<(usize, String)>,
    /// Every `LICENSE`, in order.
    pub license: Vec<(usize, String)>,
    /// `PARAMETER`s typed as Ollama's options (`stop` gathers its values into a list).
    pub parameters: Map<String, Value>,
    /// The line of each parameter's first `PARAMETER`.
    pub parameter_lines: Vec<(String, usize)>,
    /// `MESSAGE`s as `{"role", "content"}` objects.
    pub messages: Vec<Value>,
    pub message_lines: Vec<usize>,
    pub adapters: Vec<(usize, String)>,
    /// Parameters Ollama no longer uses (`mirostat`, `penalize_newline`, ...), left out.
    pub ignored: Vec<(usize, String)>,
}

/// The instructions Ollama knows.
const INSTRUCTIONS: &[&str] = &[
    "from",
    "parameter",
    "template",
    "system",
    "message",
    "license",
    "adapter",
    "requires",
    "draft",
    "renderer",
    "parser",
];

/// Parameters Ollama's parser drops with a warning (`deprecatedParameters`).
const DEPRECATED: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

/// Reads a Modelfile into its instructions. It must have a `FROM`.
pub fn parse(text: &str) -> Result<Vec<Instruction>, ModelfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim_start_matches([' ', '\t']);
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = split_word(line, |c| c.is_ascii_alphabetic());
        let name = word.to_ascii_lowercase();
        if word.is_empty() || !INSTRUCTIONS.contains(&name.as_str()) {
            let shown: String = line.chars().take_while(|c| !c.is_whitespace()).collect();
            return Err(error(
                number,
                format!(
                    "unknown instruction '{shown}' (the instructions are FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE, LICENSE, ADAPTER and REQUIRES)"
                ),
            ));
        }
        let mut rest = after_space(rest)
            .ok_or_else(|| error(number, format!("{} needs a value", word.to_uppercase())))?;
        let mut key = None;
        if name == "parameter" || name == "message" {
            let (k, after) = if name == "parameter" {
                split_word(rest, |c| c.is_ascii_alphanumeric() || c == '_')
            } else {
                split_word(rest, |c| c.is_ascii_alphabetic())
            };
            rest = after_space(after)
                .filter(|_| !k.is_empty())
                .ok_or_else(|| {
                    error(
                        number,
                        if name == "parameter" {
                            "PARAMETER needs a name and a value, as in: PARAMETER temperature 0.7"
                        } else {
                            "MESSAGE needs a role and a text, as in: MESSAGE user Hello"
                        },
                    )
                })?;
            if name == "message" && !matches!(k, "system" | "user" | "assistant") {
                return Err(error(
                    number,
                    format!("MESSAGE role '{k}': the role must be system, user or assistant"),
                ));
            }
            key = Some(k.to_string());
        }
        let (value, used) = value(rest, &lines[i..])
            .ok_or_else(|| error(number, "the quoted value is never closed"))?;
        i += used;
        out.push(Instruction {
            line: number,
            name,
            key,
            value,
        });
    }
    if !out.iter().any(|c| c.name == "from") {
        return Err(error(0, "no FROM line: name the model to start from"));
    }
    Ok(out)
}

/// The leading run of characters `keep` accepts, and what follows it.
fn split_word(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    let end = s.find(|c: char| !keep(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// What follows one or more spaces or tabs at the start of `s`, if it starts with one.
fn after_space(s: &str) -> Option<&str> {
    let trimmed = s.trim_start_matches([' ', '\t']);
    (trimmed.len() < s.len()).then_some(trimmed)
}

/// A value that starts as `first` (the rest of the instruction's line), with the lines after
/// it for a quoted value that spans lines: the value and how many more lines it took. `None`:
/// a quote never closed.
fn value(first: &str, more: &[&str]) -> Option<(String, usize)> {
    let mut text = first.to_string();
    let mut used = 0;
    loop {
        if let Some(v) = unquote(text.trim_matches([' ', '\t'])) {
            return Some((v.to_string(), used));
        }
        let next = more.get(used)?;
        text.push('\n');
        text.push_str(next);
        used += 1;
    }
}

/// A value without its quotes (`"""…"""` or `"…"`), or a bare value as it is; `None` while
/// a quote is open.
fn unquote(s: &str) -> Option<&str> {
    if let Some(inner) = s.strip_prefix("\"\"\"") {
        return (s.len() >= 6)
            .then(|| inner.strip_suffix("\"\"\""))
            .flatten();
    }
    if let Some(inner) = s.strip_prefix('"') {
        return inner.strip_suffix('"');
    }
    Some(s)
}

/// Reads a Modelfile into the fields of `/api/create`: parameters typed as Ollama's options
/// (an unknown one, or a value of the wrong type, is an error naming its line), `DRAFT`,
/// `RENDERER` and `PARSER` refused (Minerva has no draft models or Go renderers), `REQUIRES`
/// (an Ollama version) accepted and not checked.
pub fn read(text: &str) -> Result<ModelfileRequest, ModelfileError> {
    let mut req = ModelfileRequest::default();
    for c in parse(text)? {
        let (line, value) = (c.line, c.value);
        match c.name.as_str() {
            "from" => req.from.push((line, value)),
            "template" => req.template = Some((line, value)),
            "system" => req.system = Some((line, value)),
            "license" => req.license.push((line, value)),
            "adapter" => req.adapters.push((line, value)),
            "requires" => {}
            "message" => {
                req.messages
                    .push(json!({"role": c.key.unwrap_or_default(), "content": value}));
                req.message_lines.push(line);
            }
            "parameter" => {
                let name = c.key.unwrap_or_default();
                if DEPRECATED.contains(&name.as_str()) {
                    req.ignored.push((line, name));
                    continue;
                }
                let typed = parameter(&name, &value).map_err(|m| error(line, m))?;
                if !req.parameter_lines.iter().any(|(n, _)| *n == name) {
                    req.parameter_lines.push((name.clone(), line));
                }
                match (req.parameters.get_mut(&name), typed) {
                    (Some(Value::Array(list)), Value::Array(more)) => list.extend(more),
                    (_, typed) => {
                        req.parameters.insert(name, typed);
                    }
                }
            }
            other => {
                return Err(error(
                    line,
                    format!("{} is not supported", other.to_uppercase()),
                ))
            }
        }
    }
    Ok(req)
}

/// A `PARAMETER` value typed as Ollama types the option (`api.FormatParams`).
fn parameter(name: &str, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("PARAMETER {name}: '{text}' is not {what}");
    match kind(name) {
        None => Err(format!("unknown parameter '{name}'")),
        Some(OptionKind::Int) => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad("an integer")),
        Some(OptionKind::Float) => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(json!(f)),
            _ => Err(bad("a number")),
        },
        // Go's strconv.ParseBool.
        Some(OptionKind::Bool) => match text {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false")),
        },
        Some(OptionKind::Strings) => Ok(json!([text])),
    }
}

impl ModelfileRequest {
    /// Puts the Modelfile's settings (`system`, `template`, `license`, `parameters`,
    /// `messages`, `adapters`) into the create request's fields it leaves out; which fields it
    /// filled.
    pub fn fill(&self, req: &mut CreateRequest) -> Vec<&'static str> {
        let mut filled = Vec::new();
        let text = |v: &Option<(usize, String)>| v.as_ref().map(|(_, t)| t.clone());
        if req.system.is_none() && self.system.is_some() {
            req.system = text(&self.system);
            filled.push("system");
        }
        if req.template.is_none() && self.template.is_some() {
            req.template = text(&self.template);
            filled.push("template");
        }
        if req.license.is_none() && !self.license.is_empty() {
            req.license = Some(self.license.iter().map(|(_, l)| l.as_str()).collect());
            filled.push("license");
        }
        if req.parameters.is_none() && !self.parameters.is_empty() {
            req.parameters = Some(Value::Object(self.parameters.clone()));
            filled.push("parameters");
        }
        if req.messages.is_none() && !self.messages.is_empty() {
            req.messages = Some(self.messages.clone());
            filled.push("messages");
        }
        if req.adapters.is_none() && !self.adapters.is_empty() {
            let adapters = self
                .adapters
                .iter()
                .map(|(l, a)| (format!("line-{l}"), a.clone()));
            req.adapters = Some(adapters.collect());
            filled.push("adapters");
        }
        filled
    }
    /// The line of the instruction that gave the create field `field` (`system`, `template`,
    /// `license`, `parameters`, `messages`, `adapters`), for errors found later.
    pub fn line_of(&self, field: &str) -> Option<usize> {
        match field {
            "template" => self.template.as_ref().map(|t| t.0),
            "system" => self.system.as_ref().map(|t| t.0),
            "license" => self.license.first().map(|t| t.0),
            "adapters" => self.adapters.first().map(|t| t.0),
            "parameters" => self.parameter_lines.first().map(|t| t.1),
            "messages" => self.message_lines.first().copied(),
            _ => None,
        }
    }
}

/// What a Modelfile's `FROM` names.
#[derive(Debug, PartialEq, Eq)]
pub enum FromKind {
    /// An uploaded blob, `@sha256:<hex>` (or `sha256:<hex>`), as `sha256:<hex>`.
    Blob(String),
    /// A file or directory: a value with a path separator, starting with `.` or `~`, or ending
    /// in `.gguf`.
    Path,
    /// A model's name.
    Name,
}

/// Reads a `FROM` value.
pub fn from_kind(from: &str) -> FromKind {
    let digest = from.strip_prefix('@').unwrap_or(from);
    if digest.starts_with("sha256:") {
        return FromKind::Blob(digest.to_string());
    }
    let path_like = from.starts_with(['.', '~', '/'])
        || from.contains('\\')
        || from.to_ascii_lowercase().ends_with(".gguf")
        || std::path::Path::new(from).is_absolute();
    if path_like {
        FromKind::Path
    } else {
        FromKind::Name
    }
}

/// A value as a Modelfile writes it: bare when it reads back the same, else in `"` or, when
/// it holds a `"`, in `"""` (what Ollama's `quote` does, extended to every value that would
/// not read back bare).
pub fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && !value.contains(['\n', '\r', '"'])
        && value.trim_matches([' ', '\t']) == value;
    if bare {
        value.to_string()
    } else if value.contains('"') {
        format!("\"\"\"{value}\"\"\"")
    } else {
        format!("\"{value}\"")
    }
}

/// What `show --modelfile` prints for a model.
#[derive(Debug, Clone, Default)]
pub struct ModelfileText<'a> {
    /// `FROM`'s value: the model's name, or the file it was loaded from.
    pub from: &'a str,
    /// Comment lines put first (each without its `# `).
    pub comments: Vec<String>,
    pub template: Option<&'a str>,
    pub system: Option<&'a str>,
    pub parameters: Option<&'a Map<String, Value>>,
    pub messages: &'a [Value],
    pub license: &'a [String],
}

impl ModelfileText<'_> {
    /// The Modelfile: comments, `FROM`, `TEMPLATE`, `SYSTEM`, one `PARAMETER` line per value
    /// (a list, such as `stop`, one line per item), `MESSAGE`s, `LICENSE`s.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            out.push_str(&format!("# {c}\n"));
        }
        if !self.comments.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("FROM {}\n", self.from));
        if let Some(t) = self.template {
            out.push_str(&format!("TEMPLATE {}\n", quote(t)));
        }
        if let Some(s) = self.system {
            out.push_str(&format!("SYSTEM {}\n", quote(s)));
        }
        for line in parameter_lines(self.parameters.unwrap_or(&Map::new())) {
            out.push_str(&format!("PARAMETER {line}\n"));
        }
        for m in self.messages {
            let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
            out.push_str(&format!(
                "MESSAGE {} {}\n",
                field("role"),
                quote(field("content"))
            ));
        }
        for l in self.license {
            out.push_str(&format!("LICENSE {}\n", quote(l)));
        }
        out
    }
}

/// Parameters as `name value` lines, the name padded to 30 columns and strings in quotes as
/// Ollama's `show` prints them (`stop "<|im_end|>"`; in `"""` when the string holds a quote or
/// a line break, so that the line reads back); a list one line per item.
pub fn parameter_lines(parameters: &Map<String, Value>) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) if s.contains(['"', '\n', '\r']) => format!("\"\"\"{s}\"\"\""),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    parameters
        .iter()
        .flat_map(|(k, v)| match v {
            Value::Array(items) => items
                .iter()
                .map(|i| format!("{k:<30} {}", text(i)))
                .collect(),
            other => vec![format!("{k:<30} {}", text(other))],
        })
        .collect()
}

#[cfg(test)]
#[path = "modelfile_tests.rs"]
mod tests;
