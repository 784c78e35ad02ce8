//! A slow reference matcher for parsed grammars, for tests: does a grammar accept a whole text?

use crate::gbnf::{parse, Item, Term};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

struct Matcher<'a> {
    grammar: &'a crate::gbnf::Grammar,
    text: Vec<char>,
    memo: RefCell<HashMap<(String, usize), BTreeSet<usize>>>,
}

/// True when `gbnf` (valid, checked with `validate` first) matches all of `text` from `root`.
pub(crate) fn accepts(gbnf: &str, root: &str, text: &str) -> bool {
    crate::gbnf::validate(gbnf, root).unwrap();
    let grammar = parse(gbnf).unwrap();
    let m = Matcher {
        grammar: &grammar,
        text: text.chars().collect(),
        memo: RefCell::new(HashMap::new()),
    };
    m.rule(root, 0).contains(&m.text.len())
}

impl Matcher<'_> {
    fn rule(&self, name: &str, pos: usize) -> BTreeSet<usize> {
        if let Some(hit) = self.memo.borrow().get(&(name.to_string(), pos)) {
            return hit.clone();
        }
        let mut out = BTreeSet::new();
        for seq in &self.grammar.rules[name] {
            out.extend(self.seq(seq, pos));
        }
        self.memo
            .borrow_mut()
            .insert((name.to_string(), pos), out.clone());
        out
    }

    fn seq(&self, seq: &[Item], pos: usize) -> BTreeSet<usize> {
        let mut at: BTreeSet<usize> = [pos].into();
        for item in seq {
            at = self.item(item, &at);
            if at.is_empty() {
                break;
            }
        }
        at
    }

    fn item(&self, item: &Item, from: &BTreeSet<usize>) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut cur = from.clone();
        let mut seen = BTreeSet::new();
        let mut count = 0u32;
        loop {
            if count >= item.min {
                out.extend(cur.iter().copied());
            }
            if item.max.is_some_and(|m| count >= m) || cur.is_empty() {
                break;
            }
            let mut next = BTreeSet::new();
            for &p in &cur {
                next.extend(self.term(&item.term, p));
            }
            count += 1;
            if item.max.is_none() && count > item.min {
                next.retain(|p| seen.insert(*p));
            }
            cur = next;
        }
        out
    }

    fn term(&self, term: &Term, pos: usize) -> BTreeSet<usize> {
        let c = self.text.get(pos).copied();
        match term {
            Term::Literal(chars) => {
                if self.text.len() >= pos + chars.len()
                    && self.text[pos..pos + chars.len()] == chars[..]
                {
                    [pos + chars.len()].into()
                } else {
                    BTreeSet::new()
                }
            }
            Term::Any => c.map(|_| [pos + 1].into()).unwrap_or_default(),
            Term::Class { negated, ranges } => match c {
                Some(c) if ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *negated => {
                    [pos + 1].into()
                }
                _ => BTreeSet::new(),
            },
            Term::Ref(name) => self.rule(name, pos),
            Term::Group(alternatives) => {
                alternatives.iter().flat_map(|s| self.seq(s, pos)).collect()
            }
        }
    }
}

/// Random strings the grammar accepts (a fuzzing aid for tests): each alternative and
/// repetition count drawn at random, preferring short choices as recursion deepens.
pub(crate) fn samples(gbnf: &str, root: &str, n: usize, seed: u64) -> Vec<String> {
    let grammar = parse(gbnf).unwrap();
    let mut g = Gen {
        grammar: &grammar,
        state: seed | 1,
        depth: 0,
    };
    (0..n)
        .map(|_| {
            let mut out = String::new();
            g.term(&Term::Ref(root.to_string()), &mut out);
            out
        })
        .collect()
}

struct Gen<'a> {
    grammar: &'a crate::gbnf::Grammar,
    state: u64,
    depth: usize,
}

impl Gen<'_> {
    fn next(&mut self, below: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below.max(1)
    }

    fn alts(&mut self, alternatives: &[Vec<Item>], out: &mut String) {
        // Deep down, take the alternative with the fewest items (ends recursion).
        let i = if self.depth > 12 {
            let flat = |s: &Vec<Item>| {
                s.iter()
                    .all(|it| !matches!(it.term, Term::Ref(_) | Term::Group(_)) || it.min == 0)
            };
            alternatives
                .iter()
                .position(flat)
                .unwrap_or(alternatives.len() - 1)
        } else {
            self.next(alternatives.len() as u64) as usize
        };
        self.depth += 1;
        for item in &alternatives[i] {
            let max = item.max.unwrap_or(item.min + 3);
            let spread = if self.depth > 12 {
                0
            } else {
                u64::from(max - item.min).min(4)
            };
            let count = item.min + self.next(spread + 1) as u32;
            for _ in 0..count {
                self.term(&item.term, out);
            }
        }
        self.depth -= 1;
    }

    fn term(&mut self, term: &Term, out: &mut String) {
        match term {
            Term::Literal(chars) => out.extend(chars),
            Term::Any => out.push('x'),
            Term::Class {
                negated: false,
                ranges,
            } => {
                let (a, b) = ranges[self.next(ranges.len() as u64) as usize];
                let c = a as u64 + self.next(b as u64 - a as u64 + 1);
                out.push(char::from_u32(c as u32).unwrap_or(a));
            }
            Term::Class {
                negated: true,
                ranges,
            } => {
                let c = ['a', 'Z', '5', ' ', 'é', '-', '~']
                    .into_iter()
                    .find(|c| !ranges.iter().any(|(a, b)| a <= c && c <= b))
                    .unwrap();
                out.push(c);
            }
            Term::Ref(name) => {
                let alternatives = &self.grammar.rules[name];
                self.alts(alternatives, out)
            }
            Term::Group(alternatives) => self.alts(alternatives, out),
        }
    }
}
