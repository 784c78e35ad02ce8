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
