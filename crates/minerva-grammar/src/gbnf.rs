//! A parser and validator for llama.cpp's GBNF dialect (`grammars/README.md` in llama.cpp).
//!
//! llama.cpp parses a grammar when a request's sampler is built, on the thread that owns the
//! model; a grammar it cannot handle may abort that process (and with it every request on the
//! model). So every grammar is checked here first, against the same rules and stricter limits:
//!
//! - rules `name ::= alternatives`, one per line (a group may span lines); names are
//!   `[a-zA-Z0-9-]+`, each defined once;
//! - literals `"..."` and classes `[...]` / `[^...]` with ranges, escapes `\n \t \r \\ \" \[ \]`
//!   and `\xHH \uHHHH \UHHHHHHHH`; `.` (any character); groups `( ... )`; rule references;
//! - repetitions `*` `+` `?` `{m}` `{m,}` `{m,n}` (llama.cpp expands these into copies and
//!   helper rules, so `m` and `n` are bounded by [`MAX_REPETITION`] and the expanded size by
//!   [`MAX_EXPANDED_SYMBOLS`]); comments `#` to the end of the line;
//! - every referenced rule is defined, the root rule exists, and no rule is left-recursive
//!   (llama.cpp rejects left recursion, including through rules that can match nothing and
//!   through an unbounded repetition of something that can match nothing).

use std::collections::{HashMap, HashSet};

/// Longest grammar text accepted, in bytes.
pub const MAX_GRAMMAR_BYTES: usize = 512 * 1024;
/// Most rules a grammar may define.
pub const MAX_RULES: usize = 4096;
/// Largest `m` or `n` in a repetition `{m,n}`.
pub const MAX_REPETITION: u32 = 1000;
/// Largest size of the grammar once llama.cpp has expanded its repetitions, in llama.cpp's
/// grammar elements (about one per literal character, class range, reference and helper rule).
pub const MAX_EXPANDED_SYMBOLS: u64 = 1_000_000;
/// Deepest nesting of groups `( ... )`.
pub const MAX_NESTING: usize = 64;

/// Why a GBNF grammar is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GbnfError {
    /// The text is not GBNF; `line` and `column` count from 1 (columns in characters).
    #[error("GBNF syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("GBNF rule '{0}' is referenced but not defined")]
    UndefinedRule(String),
    #[error("GBNF rule '{0}' is defined more than once")]
    DuplicateRule(String),
    #[error("GBNF grammar has no root rule '{0}'")]
    MissingRoot(String),
    /// llama.cpp rejects left recursion: `a ::= a "x"`, also through rules that can match the
    /// empty string and through `x*` where `x` can match the empty string.
    #[error("GBNF rule '{0}' is left-recursive (llama.cpp rejects left recursion)")]
    LeftRecursion(String),
    #[error("GBNF grammar is too large: {what} (limit {limit})")]
    Limit { what: String, limit: u64 },
}

/// Checks that `gbnf` is a grammar llama.cpp accepts, with a rule named `root`, within this
/// module's limits.
///
/// Errors: [`GbnfError`], the first problem found.
pub fn validate(gbnf: &str, root: &str) -> Result<(), GbnfError> {
    let grammar = parse(gbnf)?;
    grammar.check(root)
}

/// One element of a sequence, with its repetition (`min..=max`, `max` `None` unbounded).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) term: Term,
    pub(crate) min: u32,
    pub(crate) max: Option<u32>,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    Literal(Vec<char>),
    Class {
        /// Read by the test matcher only; llama.cpp needs nothing checked about it.
        #[cfg_attr(not(test), allow(dead_code))]
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Any,
    Ref(String),
    Group(Vec<Vec<Item>>),
}

/// A parsed grammar: each rule's alternatives, each a sequence of items.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grammar {
    pub(crate) rules: HashMap<String, Vec<Vec<Item>>>,
    pub(crate) order: Vec<String>,
}

pub(crate) fn parse(text: &str) -> Result<Grammar, GbnfError> {
    if text.len() > MAX_GRAMMAR_BYTES {
        return Err(GbnfError::Limit {
            what: format!("{} bytes of grammar text", text.len()),
            limit: MAX_GRAMMAR_BYTES as u64,
        });
    }
    let mut p = Parser {
        src: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let mut grammar = Grammar::default();
    p.skip_space(true);
    while !p.eof() {
        let name = p.name()?;
        p.skip_space(false);
        if !p.eat_str("::=") {
            return Err(p.error("expected '::='"));
        }
        p.skip_space(true);
        let alternatives = p.alternatives(false)?;
        match p.peek() {
            None => {}
            Some('\r') => {
                p.pos += 1;
                if p.peek() == Some('\n') {
                    p.pos += 1;
                }
            }
            Some('\n') => p.pos += 1,
            Some(c) => return Err(p.error(&format!("unexpected '{c}', expected a new line"))),
        }
        p.skip_space(true);
        if grammar.rules.contains_key(&name) {
            return Err(GbnfError::DuplicateRule(name));
        }
        if grammar.order.len() >= MAX_RULES {
            return Err(GbnfError::Limit {
                what: "number of rules".into(),
                limit: MAX_RULES as u64,
            });
        }
        grammar.order.push(name.clone());
        grammar.rules.insert(name, alternatives);
    }
    Ok(grammar)
}

struct Parser {
    src: Vec<char>,
    pos: usize,
    depth: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

impl Parser {
    fn eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.src.get(self.pos + ahead).copied()
    }

    fn eat_str(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.src.len() >= self.pos + n
            && s.chars().zip(&self.src[self.pos..]).all(|(a, b)| a == *b)
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn error(&self, message: &str) -> GbnfError {
        let before = &self.src[..self.pos.min(self.src.len())];
        let line = before.iter().filter(|c| **c == '\n').count() + 1;
        let column = before.iter().rev().take_while(|c| **c != '\n').count() + 1;
        GbnfError::Syntax {
            line,
            column,
            message: message.to_string(),
        }
    }

    /// Spaces, tabs and comments; line breaks too when `newline_ok` (llama.cpp's `parse_space`).
    fn skip_space(&mut self, newline_ok: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '#' => {
                    while !matches!(self.peek(), None | Some('\r') | Some('\n')) {
                        self.pos += 1;
                    }
                }
                '\r' | '\n' if newline_ok => self.pos += 1,
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Result<String, GbnfError> {
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a rule name"));
        }
        Ok(self.src[start..self.pos].iter().collect())
    }

    fn alternatives(&mut self, nested: bool) -> Result<Vec<Vec<Item>>, GbnfError> {
        let mut alternatives = vec![self.sequence(nested)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            self.skip_space(true);
            alternatives.push(self.sequence(nested)?);
        }
        Ok(alternatives)
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Item>, GbnfError> {
        let mut items: Vec<Item> = Vec::new();
        while let Some(c) = self.peek() {
            let term = match c {
                '"' => {
                    self.pos += 1;
                    let mut chars = Vec::new();
                    loop {
                        match self.peek() {
                            None => return Err(self.error("unterminated literal")),
                            Some('"') => break,
                            Some(_) => chars.push(self.char()?),
                        }
                    }
                    self.pos += 1;
                    Term::Literal(chars)
                }
                '[' => {
                    self.pos += 1;
                    let negated = self.peek() == Some('^');
                    if negated {
                        self.pos += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        match self.peek() {
                            None => return Err(self.error("unterminated character class")),
                            Some(']') => break,
                            Some(_) => {
                                let start = self.char()?;
                                let end = if self.peek() == Some('-')
                                    && !matches!(self.peek_at(1), Some(']') | None)
                                {
                                    self.pos += 1;
                                    self.char()?
                                } else {
                                    start
                                };
                                ranges.push((start, end));
                            }
                        }
                    }
                    self.pos += 1;
                    Term::Class { negated, ranges }
                }
                '.' => {
                    self.pos += 1;
                    Term::Any
                }
                '(' => {
                    self.pos += 1;
                    self.depth += 1;
                    if self.depth > MAX_NESTING {
                        return Err(GbnfError::Limit {
                            what: "nesting of groups".into(),
                            limit: MAX_NESTING as u64,
                        });
                    }
                    self.skip_space(true);
                    let alternatives = self.alternatives(true)?;
                    if self.peek() != Some(')') {
                        return Err(self.error("expected ')'"));
                    }
                    self.pos += 1;
                    self.depth -= 1;
                    Term::Group(alternatives)
                }
                '*' | '+' | '?' | '{' => {
                    let (min, max) = match c {
                        '*' => {
                            self.pos += 1;
                            (0, None)
                        }
                        '+' => {
                            self.pos += 1;
                            (1, None)
                        }
                        '?' => {
                            self.pos += 1;
                            (0, Some(1))
                        }
                        _ => self.braces(nested)?,
                    };
                    let Some(last) = items.pop() else {
                        return Err(self.error(&format!("'{c}' without a preceding item")));
                    };
                    let last = if last.min == 1 && last.max == Some(1) {
                        last
                    } else {
                        Item {
                            term: Term::Group(vec![vec![last]]),
                            min: 1,
                            max: Some(1),
                        }
                    };
                    items.push(Item {
                        term: last.term,
                        min,
                        max,
                    });
                    self.skip_space(nested);
                    continue;
                }
                c if is_word_char(c) => Term::Ref(self.name()?),
                _ => break,
            };
            items.push(Item {
                term,
                min: 1,
                max: Some(1),
            });
            self.skip_space(nested);
        }
        Ok(items)
    }

    /// `{m}`, `{m,}` or `{m,n}`, the `{` not yet consumed.
    fn braces(&mut self, nested: bool) -> Result<(u32, Option<u32>), GbnfError> {
        self.pos += 1;
        self.skip_space(nested);
        let min = self.int()?;
        self.skip_space(nested);
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            self.skip_space(nested);
            if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                let n = self.int()?;
                self.skip_space(nested);
                Some(n)
            } else {
                None
            }
        } else {
            Some(min)
        };
        if self.peek() != Some('}') {
            return Err(self.error("expected '}'"));
        }
        self.pos += 1;
        if max.is_some_and(|m| m < min) {
            return Err(self.error("repetition {m,n} with n < m"));
        }
        Ok((min, max))
    }

    fn int(&mut self) -> Result<u32, GbnfError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a number"));
        }
        let digits: String = self.src[start..self.pos].iter().collect();
        match digits.parse::<u32>() {
            Ok(n) if n <= MAX_REPETITION => Ok(n),
            _ => Err(GbnfError::Limit {
                what: format!("repetition count {digits}"),
                limit: MAX_REPETITION as u64,
            }),
        }
    }

    /// One character of a literal or class, escapes decoded (llama.cpp's `parse_char`).
    fn char(&mut self) -> Result<char, GbnfError> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of input"));
        };
        self.pos += 1;
        if c != '\\' {
            return Ok(c);
        }
        let Some(e) = self.peek() else {
            return Err(self.error("unexpected end of input after '\\'"));
        };
        self.pos += 1;
        let digits = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            'n' => return Ok('\n'),
            't' => return Ok('\t'),
            'r' => return Ok('\r'),
            '\\' | '"' | '[' | ']' => return Ok(e),
            other => {
                self.pos -= 1;
                return Err(self.error(&format!("unknown escape '\\{other}'")));
            }
        };
        let mut value: u32 = 0;
        for _ in 0..digits {
            match self.peek().and_then(|d| d.to_digit(16)) {
                Some(d) => {
                    value = value * 16 + d;
                    self.pos += 1;
                }
                None => return Err(self.error(&format!("expected {digits} hex digits"))),
            }
        }
        char::from_u32(value)
            .ok_or_else(|| self.error(&format!("U+{value:X} is not a Unicode scalar value")))
    }
}

impl Grammar {
    /// References, root, expanded size and left recursion.
    pub(crate) fn check(&self, root: &str) -> Result<(), GbnfError> {
        let mut size: u64 = 0;
        for name in &self.order {
            for seq in &self.rules[name] {
                for item in seq {
                    self.check_refs(&item.term)?;
                }
                size = size.saturating_add(seq_cost(seq));
            }
        }
        if size > MAX_EXPANDED_SYMBOLS {
            return Err(GbnfError::Limit {
                what: format!("{size} grammar elements once repetitions are expanded"),
                limit: MAX_EXPANDED_SYMBOLS,
            });
        }
        if !self.rules.contains_key(root) {
            return Err(GbnfError::MissingRoot(root.to_string()));
        }
        crate::repeat::check(self)?;
        self.check_left_recursion()
    }

    fn check_refs(&self, term: &Term) -> Result<(), GbnfError> {
        match term {
            Term::Ref(name) if !self.rules.contains_key(name) => {
                Err(GbnfError::UndefinedRule(name.clone()))
            }
            Term::Group(alternatives) => alternatives
                .iter()
                .flatten()
                .try_for_each(|item| self.check_refs(&item.term)),
            _ => Ok(()),
        }
    }

    /// Which rules can match the empty string (a fixpoint).
    fn nullable_rules(&self) -> HashSet<&str> {
        let mut nullable: HashSet<&str> = HashSet::new();
        loop {
            let before = nullable.len();
            for name in &self.order {
                if !nullable.contains(name.as_str())
                    && self.rules[name]
                        .iter()
                        .any(|seq| seq_nullable(seq, &nullable))
                {
                    nullable.insert(name);
                }
            }
            if nullable.len() == before {
                return nullable;
            }
        }
    }

    fn check_left_recursion(&self) -> Result<(), GbnfError> {
        let nullable = self.nullable_rules();
        let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
        for name in &self.order {
            let mut first = Vec::new();
            for seq in &self.rules[name] {
                if !first_refs(seq, &nullable, &mut first) {
                    return Err(GbnfError::LeftRecursion(name.clone()));
                }
            }
            edges.insert(name, first);
        }
        // Iterative depth-first search; a grey node met again closes a cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            White,
            Grey,
            Black,
        }
        let mut mark: HashMap<&str, Mark> = self
            .order
            .iter()
            .map(|n| (n.as_str(), Mark::White))
            .collect();
        for start in &self.order {
            if mark[start.as_str()] != Mark::White {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            mark.insert(start, Mark::Grey);
            while let Some((node, next)) = stack.pop() {
                let out = edges.get(node).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(&to) = out.get(next) {
                    stack.push((node, next + 1));
                    match mark.get(to).copied().unwrap_or(Mark::Black) {
                        Mark::Grey => return Err(GbnfError::LeftRecursion(to.to_string())),
                        Mark::White => {
                            mark.insert(to, Mark::Grey);
                            stack.push((to, 0));
                        }
                        Mark::Black => {}
                    }
                } else {
                    mark.insert(node, Mark::Black);
                }
            }
        }
        Ok(())
    }
}

fn term_nullable(term: &Term, nullable: &HashSet<&str>) -> bool {
    match term {
        Term::Literal(chars) => chars.is_empty(),
        Term::Class { .. } | Term::Any => false,
        Term::Ref(name) => nullable.contains(name.as_str()),
        Term::Group(alternatives) => alternatives.iter().any(|s| seq_nullable(s, nullable)),
    }
}

fn seq_nullable(seq: &[Item], nullable: &HashSet<&str>) -> bool {
    seq.iter()
        .all(|item| item.min == 0 || term_nullable(&item.term, nullable))
}

/// Collects the rules that can start `seq` (the references reached before the first item that
/// cannot match the empty string). False when an unbounded repetition of a nullable item makes
/// its helper rule left-recursive.
fn first_refs<'a>(seq: &'a [Item], nullable: &HashSet<&str>, out: &mut Vec<&'a str>) -> bool {
    for item in seq {
        let item_nullable = term_nullable(&item.term, nullable);
        if item.max.is_none() && item_nullable {
            return false;
        }
        match &item.term {
            Term::Ref(name) => out.push(name),
            Term::Group(alternatives) => {
                for s in alternatives {
                    if !first_refs(s, nullable, out) {
                        return false;
                    }
                }
            }
            _ => {}
        }
        if item.min > 0 && !item_nullable {
            break;
        }
    }
    true
}

fn seq_cost(seq: &[Item]) -> u64 {
    let mut cost: u64 = 1;
    for item in seq {
        let base = match &item.term {
            Term::Literal(chars) => chars.len() as u64,
            Term::Class { ranges, .. } => 2 * ranges.len() as u64 + 1,
            Term::Any => 2,
            Term::Ref(_) => 1,
            Term::Group(alternatives) => {
                let inner: u64 = alternatives.iter().map(|s| seq_cost(s)).sum();
                cost = cost.saturating_add(inner);
                1
            }
        };
        let min = u64::from(item.min);
        let extra = match item.max {
            Some(max) if max == item.min => 0,
            Some(max) => u64::from(max - item.min).saturating_mul(base + 3),
            None => base + 3,
        };
        cost = cost
            .saturating_add(base.saturating_mul(min.max(1)))
            .saturating_add(extra)
            .saturating_add(1);
    }
    cost
}

#[cfg(test)]
#[path = "gbnf_tests.rs"]
mod tests;
