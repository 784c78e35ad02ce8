//! An incremental scanner for one tool-call object, `{"name": ..., "arguments": {...}}`, fed a
//! character at a time as the model writes it.

/// What one character told the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The call's name, complete.
    Name(String),
    /// Arguments text (raw JSON, as generated).
    Args(String),
    /// The object ended with this character.
    End,
    /// The text cannot be a call object (the character was not consumed).
    Invalid,
}

/// The end of one JSON value inside the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    More,
    /// The value ended with this character.
    Done,
    /// A number or literal ended just before this character.
    DoneBefore,
}

/// Tracks where a JSON value ends: nesting and strings. It does not check the value's grammar
/// (the client, or a grammar while sampling, does that).
#[derive(Debug, Clone, Copy, Default)]
struct ValueScan {
    depth: u32,
    in_str: bool,
    esc: bool,
    scalar: bool,
}

impl ValueScan {
    fn start(c: char) -> Option<ValueScan> {
        let mut v = ValueScan::default();
        match c {
            '{' | '[' => v.depth = 1,
            '"' => v.in_str = true,
            '-' | '0'..='9' | 't' | 'f' | 'n' => v.scalar = true,
            _ => return None,
        }
        Some(v)
    }

    fn push(&mut self, c: char) -> Step {
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if c == '\\' {
                self.esc = true;
            } else if c == '"' {
                self.in_str = false;
                if self.depth == 0 {
                    return Step::Done;
                }
            }
            return Step::More;
        }
        if self.scalar {
            return if matches!(c, ',' | '}' | ']') || c.is_whitespace() {
                Step::DoneBefore
            } else {
                Step::More
            };
        }
        match c {
            '"' => self.in_str = true,
            '{' | '[' => self.depth += 1,
            '}' | ']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    return Step::Done;
                }
            }
            _ => {}
        }
        Step::More
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Name,
    /// Arguments written as a JSON object (streamed as they come).
    Args,
    /// Arguments written as a JSON string holding the object (sent once decoded).
    ArgsString,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Open,
    KeyOrEnd,
    Key { esc: bool },
    Colon,
    ValueStart,
    Value(Kind),
    AfterValue,
    Done,
    Invalid,
}

/// Keys a bare call object may have; any other key means the object is data, not a call.
const CALL_KEYS: [&str; 5] = ["name", "arguments", "parameters", "id", "type"];

/// Scans one call object. `strict` (bare JSON, not announced by a tag): a key outside
/// [`CALL_KEYS`] or arguments that are not an object make it not a call.
#[derive(Debug, Clone)]
pub(crate) struct CallScanner {
    st: St,
    strict: bool,
    key: String,
    value: String,
    vs: ValueScan,
    /// Set once any non-whitespace character was consumed.
    pub begun: bool,
}

impl CallScanner {
    pub fn new(strict: bool) -> Self {
        CallScanner {
            st: St::Open,
            strict,
            key: String::new(),
            value: String::new(),
            vs: ValueScan::default(),
            begun: false,
        }
    }

    /// True once the object has ended.
    #[cfg(test)]
    pub fn done(&self) -> bool {
        self.st == St::Done
    }

    /// Feeds one character; what it completed goes to `out`.
    pub fn push(&mut self, c: char, out: &mut Vec<Found>) {
        if !c.is_whitespace() {
            self.begun = true;
        }
        match self.st {
            St::Done | St::Invalid => out.push(Found::Invalid),
            St::Open => match c {
                '{' => self.st = St::KeyOrEnd,
                c if c.is_whitespace() => {}
                _ => self.invalid(out),
            },
            St::KeyOrEnd => match c {
                '"' => {
                    self.key.clear();
                    self.st = St::Key { esc: false };
                }
                '}' => {
                    self.st = St::Done;
                    out.push(Found::End);
                }
                c if c.is_whitespace() => {}
                _ => self.invalid(out),
            },
            St::Key { esc } => {
                if esc {
                    self.key.push(c);
                    self.st = St::Key { esc: false };
                } else if c == '\\' {
                    self.key.push(c);
                    self.st = St::Key { esc: true };
                } else if c == '"' {
                    if self.strict && !CALL_KEYS.contains(&self.key.as_str()) {
                        self.invalid(out);
                    } else {
                        self.st = St::Colon;
                    }
                } else {
                    self.key.push(c);
                }
            }
            St::Colon => match c {
                ':' => self.st = St::ValueStart,
                c if c.is_whitespace() => {}
                _ => self.invalid(out),
            },
            St::ValueStart => {
                if c.is_whitespace() {
                    return;
                }
                let Some(vs) = ValueScan::start(c) else {
                    return self.invalid(out);
                };
                self.vs = vs;
                self.value.clear();
                let kind = match self.key.as_str() {
                    "name" => Kind::Name,
                    "arguments" | "parameters" if c == '{' => Kind::Args,
                    "arguments" | "parameters" if self.strict => return self.invalid(out),
                    "arguments" | "parameters" if c == '"' => Kind::ArgsString,
                    "arguments" | "parameters" => Kind::Args,
                    _ => Kind::Other,
                };
                self.st = St::Value(kind);
                if kind == Kind::Args {
                    out.push(Found::Args(c.to_string()));
                } else {
                    self.value.push(c);
                }
            }
            St::Value(kind) => match self.vs.push(c) {
                Step::More => {
                    if kind == Kind::Args {
                        out.push(Found::Args(c.to_string()));
                    } else {
                        self.value.push(c);
                    }
                }
                Step::Done => {
                    if kind == Kind::Args {
                        out.push(Found::Args(c.to_string()));
                    } else {
                        self.value.push(c);
                    }
                    self.st = St::AfterValue;
                    self.finish_value(kind, out);
                }
                Step::DoneBefore => {
                    self.st = St::AfterValue;
                    self.finish_value(kind, out);
                    if self.st == St::AfterValue {
                        self.push(c, out);
                    }
                }
            },
            St::AfterValue => match c {
                ',' => self.st = St::KeyOrEnd,
                '}' => {
                    self.st = St::Done;
                    out.push(Found::End);
                }
                c if c.is_whitespace() => {}
                _ => self.invalid(out),
            },
        }
    }

    fn finish_value(&mut self, kind: Kind, out: &mut Vec<Found>) {
        match kind {
            Kind::Name => match serde_json::from_str::<String>(&self.value) {
                Ok(name) => out.push(Found::Name(name)),
                Err(_) => self.invalid(out),
            },
            Kind::ArgsString => match serde_json::from_str::<String>(&self.value) {
                Ok(args) => out.push(Found::Args(args)),
                Err(_) => self.invalid(out),
            },
            Kind::Args | Kind::Other => {}
        }
    }

    fn invalid(&mut self, out: &mut Vec<Found>) {
        self.st = St::Invalid;
        out.push(Found::Invalid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, strict: bool) -> Vec<Found> {
        let mut s = CallScanner::new(strict);
        let mut out = Vec::new();
        for c in text.chars() {
            if s.done() || out.last() == Some(&Found::Invalid) {
                break;
            }
            s.push(c, &mut out);
        }
        // Merge argument pieces for readability.
        let mut merged: Vec<Found> = Vec::new();
        for f in out {
            match (merged.last_mut(), f) {
                (Some(Found::Args(a)), Found::Args(b)) => a.push_str(&b),
                (_, f) => merged.push(f),
            }
        }
        merged
    }

    #[test]
    fn name_then_arguments() {
        assert_eq!(
            scan(
                r#"{"name": "get_weather", "arguments": {"city": "Pa\"ris}"}}"#,
                true
            ),
            vec![
                Found::Name("get_weather".into()),
                Found::Args(r#"{"city": "Pa\"ris}"}"#.into()),
                Found::End
            ]
        );
    }

    #[test]
    fn arguments_first_and_scalars() {
        assert_eq!(
            scan(
                r#"{"arguments": {"n": [1, {"a": null}]}, "id": 7, "name":"f"}"#,
                true
            ),
            vec![
                Found::Args(r#"{"n": [1, {"a": null}]}"#.into()),
                Found::Name("f".into()),
                Found::End
            ]
        );
    }

    #[test]
    fn string_arguments_are_decoded() {
        assert_eq!(
            scan(r#"{"name": "f", "arguments": "{\"x\": 1}"}"#, false),
            vec![
                Found::Name("f".into()),
                Found::Args(r#"{"x": 1}"#.into()),
                Found::End
            ]
        );
    }

    #[test]
    fn data_is_not_a_call_when_strict() {
        assert_eq!(scan(r#"{"city": "Paris"}"#, true), vec![Found::Invalid]);
        assert_eq!(
            scan(r#"{"name": "f", "arguments": 3}"#, true),
            vec![Found::Name("f".into()), Found::Invalid]
        );
        assert_eq!(scan("hello", false), vec![Found::Invalid]);
    }
}
