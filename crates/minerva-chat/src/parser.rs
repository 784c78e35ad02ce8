//! The incremental reply parser: text in, content and tool calls out.

use crate::scan::{CallScanner, Found};
use crate::ToolFormat;

/// A piece of a parsed reply, in the order the model wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEvent {
    /// Text for the user.
    Content(String),
    /// Text of the reasoning block (from [`crate::ChatParser`] only).
    Reasoning(String),
    /// A call begins: its position among this reply's calls (from 0), a fresh id
    /// (`call_` and 24 hex digits) and the function's name.
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// More of the call's arguments: raw JSON text as generated; the pieces of one call joined
    /// are its `arguments` string (`{}` when the model wrote none).
    ToolCallArgs { index: usize, delta: String },
    /// The call is complete (or the reply ended inside it).
    ToolCallEnd { index: usize },
}

/// A call being read.
#[derive(Debug)]
struct Call {
    scanner: CallScanner,
    /// Everything since the call began (its opener included), given back as content when it
    /// turns out not to be a call.
    raw: String,
    /// Announced by the format's opener (not bare JSON).
    tagged: bool,
    /// Set once the name is known and `ToolCallStart` was sent: from then on it is a call.
    index: Option<usize>,
    /// The name of a bare call, until its arguments show it is one.
    name: Option<String>,
    /// Arguments seen before the name, sent right after `ToolCallStart`.
    held_args: String,
    args_sent: bool,
}

#[derive(Debug)]
enum Mode {
    Content,
    Call(Box<Call>),
}

/// Splits a reply into content and tool calls as it is generated.
///
/// Rules (the same for streamed and whole replies):
/// * Text before a call, and between or after calls, is content.
/// * The format's opener (`<tool_call>`, `<|python_tag|>`, `[TOOL_CALLS]`) starts a call; its
///   closer and the separators between calls (`,` `;` `]`) are dropped.
/// * Without an opener, a JSON object at the start of the reply (or right after a call) is a
///   call only if its keys are call keys (`name`, `arguments`/`parameters`, `id`, `type`), its
///   `name` is one of the offered tools and its arguments are an object; anything else is
///   content, given back unchanged.
/// * A call whose name is known is a call even if the reply ends inside it (`max_tokens`): its
///   arguments are what was generated.
/// * Text that could still become an opener is held back until it cannot.
#[derive(Debug)]
pub struct ReplyParser {
    format: ToolFormat,
    names: Vec<String>,
    mode: Mode,
    pending: String,
    /// A bare JSON call may start here (start of reply, or after a call).
    bare_ok: bool,
    /// Just after a call: closers and separators are dropped.
    after_call: bool,
    /// A call was written inside a Markdown code fence, whose closing ``` is dropped.
    fenced: bool,
    calls: usize,
    events: Vec<ReplyEvent>,
}

impl ReplyParser {
    /// A parser for replies in `format` that may call the tools `names`. With no names it
    /// passes everything through as content.
    pub fn new(format: ToolFormat, names: Vec<String>) -> Self {
        ReplyParser {
            format,
            names,
            mode: Mode::Content,
            pending: String::new(),
            bare_ok: true,
            after_call: false,
            fenced: false,
            calls: 0,
            events: Vec::new(),
        }
    }

    /// How many calls have started so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Feeds the next piece of generated text; returns what it completed.
    pub fn push(&mut self, text: &str) -> Vec<ReplyEvent> {
        if self.names.is_empty() {
            return if text.is_empty() {
                Vec::new()
            } else {
                vec![ReplyEvent::Content(text.to_string())]
            };
        }
        self.pending.push_str(text);
        self.process();
        std::mem::take(&mut self.events)
    }

    /// The reply has ended: flushes what was held back and ends an open call.
    pub fn finish(&mut self) -> Vec<ReplyEvent> {
        self.process();
        match std::mem::replace(&mut self.mode, Mode::Content) {
            Mode::Content => {
                let rest = std::mem::take(&mut self.pending);
                let partial_closer = self.after_call
                    && [self.format.closer(), self.fenced.then_some(FENCE)]
                        .into_iter()
                        .flatten()
                        .any(|c| c.starts_with(rest.trim()));
                if !partial_closer {
                    self.content(rest);
                }
            }
            Mode::Call(call) => {
                match call.index {
                    Some(index) => self.end_call(index, *call),
                    // The start of one more call, cut off before its name: dropped, not shown
                    // as content.
                    None if self.calls > 0 => {}
                    None => self.content(call.raw),
                }
            }
        }
        std::mem::take(&mut self.events)
    }

    fn content(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        match self.events.last_mut() {
            Some(ReplyEvent::Content(prev)) => prev.push_str(&text),
            _ => self.events.push(ReplyEvent::Content(text)),
        }
    }

    fn args(&mut self, index: usize, delta: String) {
        if delta.is_empty() {
            return;
        }
        match self.events.last_mut() {
            Some(ReplyEvent::ToolCallArgs { index: i, delta: d }) if *i == index => {
                d.push_str(&delta)
            }
            _ => self.events.push(ReplyEvent::ToolCallArgs { index, delta }),
        }
    }

    /// Sends what is left of `call`'s arguments (`{}` when it had none) and its end.
    fn end_call(&mut self, index: usize, call: Call) {
        if !call.held_args.is_empty() {
            self.args(index, call.held_args);
        } else if !call.args_sent {
            self.args(index, "{}".into());
        }
        self.events.push(ReplyEvent::ToolCallEnd { index });
    }

    fn process(&mut self) {
        loop {
            let progressed = match self.mode {
                Mode::Content => self.process_content(),
                Mode::Call(_) => self.process_call(),
            };
            if !progressed {
                return;
            }
        }
    }

    /// Content mode; returns true when it switched to a call and there is more to do.
    fn process_content(&mut self) -> bool {
        if self.after_call {
            loop {
                let trimmed = self.pending.trim_start_matches(|c: char| {
                    c.is_whitespace() || matches!(c, ',' | ';' | ']')
                });
                let trimmed_len = trimmed.len();
                let closers = [self.format.closer(), self.fenced.then_some(FENCE)];
                let mut stripped = false;
                for closer in closers.into_iter().flatten() {
                    if let Some(rest) = trimmed.strip_prefix(closer) {
                        self.pending = rest.to_string();
                        stripped = true;
                        break;
                    }
                    if !trimmed.is_empty() && closer.starts_with(trimmed) {
                        return false;
                    }
                }
                if stripped {
                    continue;
                }
                let cut = self.pending.len() - trimmed_len;
                self.pending.drain(..cut);
                break;
            }
            if self.pending.is_empty() {
                return false;
            }
            self.after_call = false;
        }
        if self.bare_ok {
            let trimmed = self.pending.trim_start();
            if trimmed.is_empty() {
                return false;
            }
            // Small models often put the bare call in a Markdown code fence.
            let (fence, body) = match fence_opener(trimmed) {
                Fence::Partial => return false,
                Fence::Open(len) => trimmed.split_at(len),
                Fence::No => ("", trimmed),
            };
            let body_trimmed = body.trim_start();
            if !fence.is_empty() && body_trimmed.is_empty() {
                return false;
            }
            if body_trimmed.starts_with('{') {
                let raw = trimmed[..trimmed.len() - body_trimmed.len()].to_string();
                self.fenced |= !fence.is_empty();
                self.pending = body_trimmed.to_string();
                self.start_call(false, raw);
                return true;
            }
            self.bare_ok = false;
        }
        let Some(opener) = self.format.opener() else {
            let text = std::mem::take(&mut self.pending);
            self.content(text);
            return false;
        };
        if let Some(pos) = self.pending.find(opener) {
            let before = self.pending[..pos].to_string();
            self.content(before);
            self.pending.drain(..pos + opener.len());
            self.start_call(true, opener.to_string());
            return true;
        }
        // Hold back the longest tail that could still become the opener.
        let keep = (1..opener.len().min(self.pending.len() + 1))
            .rev()
            .find(|&n| {
                self.pending.is_char_boundary(self.pending.len() - n)
                    && opener.starts_with(&self.pending[self.pending.len() - n..])
            })
            .unwrap_or(0);
        let cut = self.pending.len() - keep;
        let text: String = self.pending.drain(..cut).collect();
        self.content(text);
        false
    }

    /// Sends `ToolCallStart` (and the arguments held until now) for `call`.
    fn start(calls: &mut usize, call: &mut Call, name: String, events: &mut Vec<ReplyEvent>) {
        let index = *calls;
        *calls += 1;
        call.index = Some(index);
        let id = format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        events.push(ReplyEvent::ToolCallStart { index, id, name });
        if !call.held_args.is_empty() {
            call.args_sent = true;
            events.push(ReplyEvent::ToolCallArgs {
                index,
                delta: std::mem::take(&mut call.held_args),
            });
        }
    }

    fn start_call(&mut self, tagged: bool, raw: String) {
        self.mode = Mode::Call(Box::new(Call {
            scanner: CallScanner::new(!tagged),
            raw,
            tagged,
            index: None,
            name: None,
            held_args: String::new(),
            args_sent: false,
        }));
    }

    /// Call mode; returns true when it left the call and there is more to do.
    fn process_call(&mut self) -> bool {
        let Mode::Call(call) = &mut self.mode else {
            return false;
        };
        let pending = std::mem::take(&mut self.pending);
        let mut found = Vec::new();
        let mut events = Vec::new();
        let mut outcome = None;
        for (at, c) in pending.char_indices() {
            // A tagged Mistral call list opens with '['.
            if call.tagged && !call.scanner.begun && c == '[' {
                call.raw.push(c);
                continue;
            }
            call.scanner.push(c, &mut found);
            for f in found.drain(..) {
                match f {
                    Found::Name(name) => {
                        if !call.tagged && !self.names.contains(&name) {
                            outcome = Some((at, false));
                            break;
                        }
                        // A bare object is a call once its arguments open as an object.
                        if call.tagged || !call.held_args.is_empty() {
                            Self::start(&mut self.calls, call, name, &mut events);
                        } else {
                            call.name = Some(name);
                        }
                    }
                    Found::Args(piece) => match (call.index, call.name.take()) {
                        (Some(index), _) => {
                            call.args_sent = true;
                            events.push(ReplyEvent::ToolCallArgs {
                                index,
                                delta: piece,
                            });
                        }
                        (None, Some(name)) => {
                            call.held_args.push_str(&piece);
                            Self::start(&mut self.calls, call, name, &mut events);
                        }
                        (None, None) => call.held_args.push_str(&piece),
                    },
                    Found::End => {
                        call.raw.push(c);
                        outcome = Some((at + c.len_utf8(), true));
                    }
                    Found::Invalid => {
                        outcome = Some((at, false));
                        break;
                    }
                }
            }
            if outcome.is_some() {
                break;
            }
            call.raw.push(c);
        }
        for e in events {
            match e {
                ReplyEvent::ToolCallArgs { index, delta } => self.args(index, delta),
                other => self.events.push(other),
            }
        }
        let Some((at, ended)) = outcome else {
            return false;
        };
        let rest = pending[at..].to_string();
        let Mode::Call(call) = std::mem::replace(&mut self.mode, Mode::Content) else {
            return false;
        };
        match (call.index, ended) {
            // A complete call.
            (Some(index), true) => {
                self.end_call(index, *call);
                self.after_call = true;
                self.bare_ok = true;
            }
            // A call that broke off: what follows is content.
            (Some(index), false) => {
                self.end_call(index, *call);
                self.bare_ok = false;
            }
            // Not a call after all: its text is content.
            (None, _) => {
                self.content(call.raw);
                self.bare_ok = false;
            }
        }
        self.pending = rest;
        true
    }
}

/// A Markdown code fence.
const FENCE: &str = "```";

/// Whether text starts with a code fence's opening line (```` ``` ```` and an optional
/// language name, then a newline).
enum Fence {
    No,
    /// It may still become one.
    Partial,
    /// It is one, this many bytes long.
    Open(usize),
}

fn fence_opener(text: &str) -> Fence {
    if text.len() < FENCE.len() {
        return if FENCE.starts_with(text) {
            Fence::Partial
        } else {
            Fence::No
        };
    }
    let Some(rest) = text.strip_prefix(FENCE) else {
        return Fence::No;
    };
    let lang = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    match rest[lang..].chars().next() {
        None => Fence::Partial,
        Some('\n') => Fence::Open(FENCE.len() + lang + 1),
        Some(_) => Fence::No,
    }
}

#[cfg(test)]
mod tests;
