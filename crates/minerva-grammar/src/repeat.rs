//! llama.cpp's limit on repetitions (`llama-grammar.cpp`, `parse_sequence`): a repeated item is
//! copied into up to `max` (else `min`) helper rules, and llama.cpp refuses the grammar — after
//! Minerva would have handed it over — when the rules a repeated group created while it was
//! parsed (the group itself, groups inside it, helper rules of repetitions inside it, rule names
//! it mentions first) times that count exceed 2000. The same count is made here, in the order
//! llama.cpp parses, so such a grammar is a 400 instead of a failed request.

use crate::gbnf::{GbnfError, Grammar, Item, Term};
use std::collections::HashSet;

/// llama.cpp's `MAX_REPETITION_THRESHOLD`.
pub const MAX_REPEATED_RULES: u64 = 2000;

/// Checks every repetition of `grammar` against [`MAX_REPEATED_RULES`].
pub(crate) fn check(grammar: &Grammar) -> Result<(), GbnfError> {
    let mut seen: HashSet<&str> = HashSet::new();
    for name in &grammar.order {
        seen.insert(name);
        for seq in &grammar.rules[name] {
            sequence(seq, &mut seen)?;
        }
    }
    Ok(())
}

/// The symbols llama.cpp creates while parsing `seq`.
fn sequence<'a>(seq: &'a [Item], seen: &mut HashSet<&'a str>) -> Result<u64, GbnfError> {
    let mut created: u64 = 0;
    for item in seq {
        let (made, group) = match &item.term {
            Term::Group(alternatives) => {
                // The group's own rule, then what its alternatives create.
                let mut n: u64 = 1;
                for alt in alternatives {
                    n = n.saturating_add(sequence(alt, seen)?);
                }
                (n, true)
            }
            Term::Ref(name) => (u64::from(seen.insert(name.as_str())), false),
            _ => (0, false),
        };
        created = created.saturating_add(made);
        if item.min == 1 && item.max == Some(1) {
            continue;
        }
        let prev_rules = if group { made.max(1) } else { 1 };
        let copies = match item.max {
            Some(max) if max > 0 => u64::from(max),
            _ if item.min > 0 => u64::from(item.min),
            _ => 1,
        };
        if prev_rules.saturating_mul(copies) > MAX_REPEATED_RULES {
            return Err(GbnfError::Limit {
                what: format!(
                    "a repetition of up to {copies} copies of a group of {prev_rules} rules ({} rules for llama.cpp)",
                    prev_rules.saturating_mul(copies)
                ),
                limit: MAX_REPEATED_RULES,
            });
        }
        let helpers = match item.max {
            None => 1,
            Some(max) => u64::from(max.saturating_sub(item.min)),
        };
        created = created.saturating_add(helpers);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use crate::validate;

    #[test]
    fn what_llama_cpp_refuses_is_refused() {
        for bad in [
            "root ::= ((([0-9]){3} \"-\")){1,1000}",
            "root ::= (\"a\"{0,1000}){0,1000}",
            "root ::= (x y z){1000}\nx ::= \"x\"\ny ::= \"y\"\nz ::= \"z\"",
        ] {
            let e = validate(bad, "root").expect_err(bad);
            assert!(e.to_string().contains("2000"), "{bad}: {e}");
        }
    }

    #[test]
    fn what_llama_cpp_accepts_passes() {
        for good in [
            "root ::= ([0-9]{3} \"-\"){1,1000}",
            "root ::= (\"ab\" | \"cd\"){0,1000}",
            // The rules are named before the group mentions them.
            "x ::= \"x\"\ny ::= \"y\"\nroot ::= (x y){1000}",
            "root ::= [a-z]{1000} \"b\"*",
        ] {
            validate(good, "root").unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }
}
