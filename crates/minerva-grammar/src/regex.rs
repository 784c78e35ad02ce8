//! JSON Schema `pattern` (a regular expression) to GBNF for the *inside* of a JSON string.
//!
//! A subset is translated: literals, escapes (`\n \t \r \f \v \xHH \uHHHH`, escaped
//! punctuation), `.`, classes `[...]` / `[^...]` with ranges, `\d \w \s` (and `\D \W \S`),
//! groups `(...)` / `(?:...)`, alternation, `* + ? {m} {m,} {m,n}` (lazy `?` suffix accepted:
//! it matches the same strings), and the anchors `^` / `$` only at the very ends. An
//! unanchored pattern is generated as if anchored: a string the pattern matches in full also
//! contains a match, so outputs still validate. Anything else (lookaround, backreferences,
//! `\b`, flags, possessive quantifiers, anchors inside) is refused by name.
//!
//! Every generated string must match the pattern under Python's `re` as `jsonschema` uses it,
//! so where the two dialects or Unicode make a class hard to pin down a smaller set is
//! generated: `.` is any character except controls, `"` and `\`; `\s` is the ASCII whitespace;
//! `\D \W \S` and negated classes that contain them are printable ASCII only. Characters that
//! JSON must escape are emitted escaped (`"` as `\"`, a tab as `\t`).

use crate::gbnf::MAX_REPETITION;
use crate::schema::gbnf_literal;

/// Deepest nesting of groups in a pattern.
const MAX_DEPTH: usize = 32;

/// Any character a `.` may produce: no controls, no `"` or `\` (see the module doc).
const DOT: &str = r#"[^"\\\x7F\x00-\x1F]"#;

/// GBNF for the string contents that `pattern` matches (without the quotes); `Err` names the
/// regex feature that is not supported or what is wrong with the pattern.
pub(crate) fn to_gbnf(pattern: &str) -> Result<String, String> {
    let mut chars: Vec<char> = pattern.chars().collect();
    if chars.first() == Some(&'^') {
        chars.remove(0);
    }
    if chars.last() == Some(&'$') {
        let backslashes = chars[..chars.len() - 1]
            .iter()
            .rev()
            .take_while(|c| **c == '\\')
            .count();
        if backslashes % 2 == 0 {
            chars.pop();
        }
    }
    let mut p = Regex {
        src: chars,
        pos: 0,
        depth: 0,
    };
    let (out, _) = p.alternatives()?;
    if let Some(c) = p.peek() {
        return Err(format!("unbalanced '{c}' in the pattern"));
    }
    Ok(out)
}

struct Regex {
    src: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Regex {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<char, String> {
        let c = self.peek().ok_or("the pattern ends too early")?;
        self.pos += 1;
        Ok(c)
    }

    /// GBNF for alternatives, and whether it is one element (a group, literal or class) that
    /// can be repeated as it is. Every group is a rule for llama.cpp, and repeated groups count
    /// against its limit (see `crate::repeat`): no group is added that is not needed.
    fn alternatives(&mut self) -> Result<(String, bool), String> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Ok(if alts.len() == 1 {
            let (text, parts) = alts.remove(0);
            (text, parts == 1)
        } else {
            let texts: Vec<String> = alts.into_iter().map(|(t, _)| t).collect();
            (format!("( {} )", texts.join(" | ")), true)
        })
    }

    /// GBNF for a sequence, and how many elements it has.
    fn sequence(&mut self) -> Result<(String, usize), String> {
        let mut parts: Vec<String> = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantifier(atom)?;
            parts.push(atom);
        }
        Ok(if parts.is_empty() {
            ("\"\"".to_string(), 1)
        } else {
            let n = parts.len();
            (parts.join(" "), n)
        })
    }

    fn atom(&mut self) -> Result<String, String> {
        let c = self.next()?;
        match c {
            '(' => {
                if self.peek() == Some('?') {
                    self.pos += 1;
                    if self.peek() != Some(':') {
                        return Err("groups '(?...)' other than '(?:...)' (lookaround, flags, named groups)".into());
                    }
                    self.pos += 1;
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("groups nested deeper than {MAX_DEPTH}"));
                }
                let (inner, single) = self.alternatives()?;
                if self.next()? != ')' {
                    return Err("an unclosed group".into());
                }
                self.depth -= 1;
                Ok(if single {
                    inner
                } else {
                    format!("( {inner} )")
                })
            }
            '[' => self.class(),
            '.' => Ok(DOT.to_string()),
            '\\' => match self.escape()? {
                Escaped::Char(c) => Ok(json_char(c)),
                Escaped::Set(ranges, false) => Ok(positive_class(&ranges)),
                Escaped::Set(ranges, true) => Ok(positive_class(&ascii_complement(&ranges))),
            },
            '^' | '$' => Err(format!(
                "the anchor '{c}' inside the pattern (only at its ends)"
            )),
            '*' | '+' | '?' | '{' => Err(format!("'{c}' without anything to repeat")),
            c => Ok(json_char(c)),
        }
    }

    fn quantifier(&mut self, atom: String) -> Result<String, String> {
        let q = match self.peek() {
            Some('*') => "*".to_string(),
            Some('+') => "+".to_string(),
            Some('?') => "?".to_string(),
            Some('{') => {
                self.pos += 1;
                let min = self.int()?;
                let max = if self.peek() == Some(',') {
                    self.pos += 1;
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.int()?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return Err("a '{' that is not a quantifier {m}, {m,} or {m,n}".into());
                }
                if max.is_some_and(|m| m < min) {
                    return Err("a quantifier {m,n} with n < m".into());
                }
                match max {
                    Some(m) if m == min => format!("{{{min}}}"),
                    Some(m) => format!("{{{min},{m}}}"),
                    None => format!("{{{min},}}"),
                }
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        match self.peek() {
            Some('?') => self.pos += 1,
            Some('+') => return Err("possessive quantifiers".into()),
            Some('*') | Some('{') => return Err("a quantifier directly after a quantifier".into()),
            _ => {}
        }
        // Every atom is one element (a literal, a class or a group).
        Ok(format!("{atom}{q}"))
    }

    fn int(&mut self) -> Result<u32, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.src[start..self.pos].iter().collect();
        match digits.parse::<u32>() {
            Ok(n) if n <= MAX_REPETITION => Ok(n),
            Ok(_) | Err(_) if digits.is_empty() => {
                Err("a '{' that is not a quantifier {m}, {m,} or {m,n}".into())
            }
            _ => Err(format!("a repetition count above {MAX_REPETITION}")),
        }
    }

    /// After a `\`.
    fn escape(&mut self) -> Result<Escaped, String> {
        let c = self.next()?;
        let set = |r: &[(char, char)], negated| Ok(Escaped::Set(r.to_vec(), negated));
        match c {
            'd' => set(DIGITS, false),
            'w' => set(WORD, false),
            's' => set(SPACE, false),
            'D' => set(DIGITS, true),
            'W' => set(WORD, true),
            'S' => set(SPACE, true),
            'n' => Ok(Escaped::Char('\n')),
            't' => Ok(Escaped::Char('\t')),
            'r' => Ok(Escaped::Char('\r')),
            'f' => Ok(Escaped::Char('\x0C')),
            'v' => Ok(Escaped::Char('\x0B')),
            'x' | 'u' => {
                let n = if c == 'x' { 2 } else { 4 };
                let mut v = 0u32;
                for _ in 0..n {
                    let d = self
                        .next()?
                        .to_digit(16)
                        .ok_or(format!("'\\{c}' without {n} hex digits"))?;
                    v = v * 16 + d;
                }
                char::from_u32(v)
                    .map(Escaped::Char)
                    .ok_or_else(|| format!("'\\{c}{v:X}' is not a character"))
            }
            c if c.is_ascii_alphanumeric() => Err(format!("the escape '\\{c}'")),
            c => Ok(Escaped::Char(c)),
        }
    }

    /// After a `[`.
    fn class(&mut self) -> Result<String, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut has_shorthand = false;
        let mut first = true;
        loop {
            let c = self.next().map_err(|_| "an unclosed '['".to_string())?;
            if c == ']' && !first {
                break;
            }
            first = false;
            let start = match c {
                '\\' => match self.escape()? {
                    Escaped::Char(c) => c,
                    Escaped::Set(r, false) => {
                        has_shorthand = true;
                        ranges.extend(r);
                        continue;
                    }
                    Escaped::Set(_, true) => {
                        return Err("'\\D', '\\W' or '\\S' inside a class".into())
                    }
                },
                '[' if self.peek() == Some(':') => return Err("POSIX classes '[:name:]'".into()),
                c => c,
            };
            if self.peek() == Some('-') && self.src.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.pos += 1;
                let end = match self.next()? {
                    '\\' => match self.escape()? {
                        Escaped::Char(c) => c,
                        Escaped::Set(..) => return Err("a class shorthand as a range end".into()),
                    },
                    c => c,
                };
                if end < start {
                    return Err(format!("the reversed range '{start}-{end}'"));
                }
                ranges.push((start, end));
            } else {
                ranges.push((start, start));
            }
        }
        Ok(match (negated, has_shorthand) {
            (false, _) => positive_class(&ranges),
            (true, true) => positive_class(&ascii_complement(&ranges)),
            (true, false) => {
                let mut out = String::from("[^");
                for (a, b) in &ranges {
                    out.push_str(&class_range(*a, *b));
                }
                out.push_str(r#""\\\x7F\x00-\x1F]"#);
                out
            }
        })
    }
}

enum Escaped {
    Char(char),
    /// A shorthand class (`\d`...) and whether it is negated.
    Set(Vec<(char, char)>, bool),
}

const DIGITS: &[(char, char)] = &[('0', '9')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
const SPACE: &[(char, char)] = &[('\t', '\r'), (' ', ' ')];

/// Printable ASCII outside `ranges`, without `"` and `\`.
fn ascii_complement(ranges: &[(char, char)]) -> Vec<(char, char)> {
    (' '..='~')
        .filter(|c| *c != '"' && *c != '\\' && !ranges.iter().any(|(a, b)| a <= c && c <= b))
        .map(|c| (c, c))
        .collect()
}

/// GBNF for one character of `ranges`, written as JSON string content: characters that JSON
/// escapes become separate escaped alternatives.
fn positive_class(ranges: &[(char, char)]) -> String {
    let special = |c: char| c == '"' || c == '\\' || c < ' ' || c == '\x7F';
    let mut plain: Vec<(char, char)> = Vec::new();
    let mut escaped: Vec<String> = Vec::new();
    for &(a, b) in ranges {
        let mut run: Option<(char, char)> = None;
        // Split the range around the special characters (they are all below U+0080).
        let mut c = a;
        loop {
            if special(c) {
                if let Some(r) = run.take() {
                    plain.push(r);
                }
                let lit = json_char(c);
                if !escaped.contains(&lit) {
                    escaped.push(lit);
                }
            } else if c > '\x7F' {
                // Nothing special above: take the rest of the range at once.
                let start = run.map_or(c, |r| r.0);
                run = Some((start, b));
                break;
            } else {
                run = Some((run.map_or(c, |r| r.0), c));
            }
            if c >= b {
                break;
            }
            match char::from_u32(c as u32 + 1) {
                Some(n) => c = n,
                None => break,
            }
        }
        if let Some(r) = run {
            plain.push(r);
        }
    }
    let mut alts = escaped;
    if !plain.is_empty() {
        let mut class = String::from("[");
        for (a, b) in plain {
            class.push_str(&class_range(a, b));
        }
        class.push(']');
        alts.insert(0, class);
    }
    match alts.len() {
        0 => "[^\\x00-\\U0010FFFF]".to_string(),
        1 => alts.remove(0),
        _ => format!("( {} )", alts.join(" | ")),
    }
}

fn class_range(a: char, b: char) -> String {
    if a == b {
        class_char(a)
    } else {
        format!("{}-{}", class_char(a), class_char(b))
    }
}

fn class_char(c: char) -> String {
    if c.is_ascii_alphanumeric()
        || (c > '\x7F' && !c.is_control())
        || " _.,:;!?@#%&'/*+=<>~`{}()|$".contains(c)
    {
        c.to_string()
    } else if (c as u32) <= 0xFF {
        format!("\\x{:02X}", c as u32)
    } else if (c as u32) <= 0xFFFF {
        format!("\\u{:04X}", c as u32)
    } else {
        format!("\\U{:08X}", c as u32)
    }
}

/// GBNF literal for `c` as it appears inside a JSON string (escaped where JSON requires).
fn json_char(c: char) -> String {
    let encoded = serde_json::Value::String(c.to_string()).to_string();
    gbnf_literal(&encoded[1..encoded.len() - 1])
}
