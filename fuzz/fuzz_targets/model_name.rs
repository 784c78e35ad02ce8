//! Model names (`minerva_store::ModelName`) and digests on arbitrary strings: a name that
//! parses is canonical, round-trips, and can never act as a path (no separators beyond its
//! segments, no `..`, no absolute path, ASCII only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerva_store::{parse_digest, ModelName};

fuzz_target!(|input: &str| {
    if let Ok(name) = ModelName::parse(input) {
        let text = name.to_string();
        assert!(text.is_ascii(), "{text:?}");
        assert_eq!(text, text.to_ascii_lowercase(), "not canonical");
        assert_eq!(text, format!("{}:{}", name.path(), name.tag()));
        assert!(!text.starts_with('/') && !text.contains('\\'), "{text:?}");
        assert!(!text.contains("..") && !text.contains("//"), "{text:?}");
        assert!(
            !text.chars().any(|c| c.is_control() || c.is_whitespace()),
            "{text:?}"
        );
        assert!(name.path().split('/').count() <= 3, "{text:?}");
        assert!(!name.tag().contains(['/', ':']), "{text:?}");
        for segment in name.path().split('/') {
            assert!(!segment.is_empty() && segment != "." && !segment.starts_with('.'));
        }
        // The canonical form parses to itself, under the same key.
        let again = ModelName::parse(&text);
        assert_eq!(
            again.as_ref().ok(),
            Some(&name),
            "{text:?} does not round-trip"
        );
        let key = name.key();
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            ModelName::parse(&input.to_ascii_uppercase()).ok(),
            Some(name)
        );
    }
    if let Ok(hex) = parse_digest(input) {
        assert!(hex.len() == 64, "{hex:?}");
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
});
