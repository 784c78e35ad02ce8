use super::*;
use crate::matcher::accepts;

fn syntax(text: &str) -> (usize, usize) {
    match validate(text, "root") {
        Err(GbnfError::Syntax { line, column, .. }) => (line, column),
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

#[test]
fn accepts_the_dialect() {
    let g = r#"
# a comment
root ::= greeting ( ", " name )? "!"{1,3}   # trailing comment
greeting ::= "hi" | "hello" |
   "hey"
name ::= [A-Z] [a-z]* | ( "\x41" | "\u00e9" | "\U0001F600" ) .
digits ::= [0-9]{2} [^\n\]"]{0,} "\t\r\n\\\""
"#;
    validate(g, "root").unwrap();
    assert!(accepts(g, "root", "hi!"));
    assert!(accepts(g, "root", "hello, Bob!!!"));
    assert!(accepts(g, "root", "hey, éx!"));
    assert!(!accepts(g, "root", "hey, bob!"));
    assert!(!accepts(g, "root", "hi!!!!"));
}

#[test]
fn the_json_object_grammar_is_valid() {
    validate(crate::JSON_OBJECT, "root").unwrap();
    assert!(accepts(
        crate::JSON_OBJECT,
        "root",
        r#"{"a": [1, 2.5, "x\n", null, {"b": true}]}"#
    ));
    assert!(!accepts(crate::JSON_OBJECT, "root", "[1]"));
}

#[test]
fn syntax_errors_say_where() {
    assert_eq!(syntax("root ::= \"abc"), (1, 14));
    assert_eq!(syntax("root ::= [a-z"), (1, 14));
    assert_eq!(syntax("root ::= \"a\"\nx ::= ( \"b\""), (2, 12));
    assert_eq!(syntax("root = \"a\""), (1, 6));
    assert_eq!(syntax("root ::= \"\\q\""), (1, 12));
    assert_eq!(syntax("root ::= \"\\x4\""), (1, 14));
    assert_eq!(syntax("root ::= * \"a\""), (1, 11));
    assert_eq!(syntax("root ::= \"a\"{2,1}"), (1, 18));
    assert_eq!(syntax("root ::= \"a\" ]"), (1, 14));
    assert_eq!(syntax("::= \"a\""), (1, 1));
}

#[test]
fn structural_errors() {
    assert_eq!(
        validate("root ::= x", "root"),
        Err(GbnfError::UndefinedRule("x".into()))
    );
    assert_eq!(
        validate("a ::= \"x\"", "root"),
        Err(GbnfError::MissingRoot("root".into()))
    );
    assert_eq!(
        validate("root ::= \"x\"\nroot ::= \"y\"", "root"),
        Err(GbnfError::DuplicateRule("root".into()))
    );
}

#[test]
fn left_recursion_is_refused() {
    let cases = [
        "root ::= root \"a\" | \"b\"",
        "root ::= a\na ::= b \"x\"\nb ::= a | \"y\"",
        // through a rule that can match nothing
        "root ::= e root \"a\" | \"b\"\ne ::= \"\" | \"c\"",
        "root ::= [a-z]? root | \"b\"",
        // an unbounded repetition of something that can match nothing
        "root ::= ( \"a\"? )*",
        "root ::= e+\ne ::= | \"x\"",
    ];
    for g in cases {
        assert!(
            matches!(validate(g, "root"), Err(GbnfError::LeftRecursion(_))),
            "{g}: {:?}",
            validate(g, "root")
        );
    }
    // Right recursion and bounded repetitions of optional items are fine.
    validate("root ::= \"a\" root | \"b\"", "root").unwrap();
    validate("root ::= ( \"a\"? ){3}", "root").unwrap();
}

#[test]
fn limits() {
    assert!(matches!(
        validate("root ::= \"a\"{1001}", "root"),
        Err(GbnfError::Limit { .. })
    ));
    assert!(matches!(
        validate("root ::= \"a\"{0,99999999999}", "root"),
        Err(GbnfError::Limit { .. })
    ));
    // 1000 copies of a 1000-character literal, expanded by llama.cpp.
    let big = format!("root ::= \"{}\"{{1000}}", "a".repeat(1000));
    assert!(matches!(
        validate(&big, "root"),
        Err(GbnfError::Limit { .. })
    ));
    let long = format!("root ::= \"{}\"", "a".repeat(MAX_GRAMMAR_BYTES));
    assert!(matches!(
        validate(&long, "root"),
        Err(GbnfError::Limit { .. })
    ));
    let deep = format!("root ::= {}\"a\"{}", "(".repeat(100), ")".repeat(100));
    assert!(matches!(
        validate(&deep, "root"),
        Err(GbnfError::Limit { .. })
    ));
    let many: String = (0..=MAX_RULES)
        .map(|i| format!("r{i} ::= \"a\"\n"))
        .collect();
    assert!(matches!(
        validate(&many, "r0"),
        Err(GbnfError::Limit { .. })
    ));
    // Nested groups repeat by reference: cheap.
    validate("root ::= ( ( \"abc\"{1000} ){1000} ){1000}", "root").unwrap();
}
