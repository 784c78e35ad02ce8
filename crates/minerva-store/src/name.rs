//! Model names (`[host/][namespace/]model[:tag]`) and digests, validated strictly.
//!
//! Names are case-insensitive: the whole name, tag included, is normalised to lowercase, so
//! `hf.co/Owner/Repo:Q4_K_M` and `hf.co/owner/repo:q4_k_m` are the same model. A name never
//! becomes a path: the store files a manifest under the sha256 of the canonical name.

use crate::{Result, StoreError};
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest name accepted, tag included.
const MAX_NAME: usize = 350;
/// Longest path segment (host, namespace or model).
const MAX_SEGMENT: usize = 128;
/// Longest tag.
const MAX_TAG: usize = 128;
/// Most path segments: host, namespace, model.
const MAX_SEGMENTS: usize = 3;

/// A validated model name in canonical form: lowercase, with a tag (`latest` when none was given).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName {
    /// `host/namespace/model`, `namespace/model` or `model`.
    path: String,
    tag: String,
}

impl ModelName {
    /// Parses and validates a name; a missing tag means `latest`.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |why: &str| {
            StoreError::Invalid(format!("invalid model name '{}': {why}", shorten(input)))
        };
        if input.is_empty() {
            return Err(StoreError::Invalid("the model name is empty".into()));
        }
        if input.len() > MAX_NAME {
            return Err(invalid(&format!("longer than {MAX_NAME} characters")));
        }
        if input.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if input.starts_with('/') {
            return Err(invalid("it must not start with '/'"));
        }
        if input.starts_with("sha256:") {
            return Err(invalid("a digest is not a name"));
        }
        let lower = input.to_ascii_lowercase();
        let (path, tag) = match lower.rsplit_once(':') {
            Some((path, tag)) => (path, tag),
            None => (lower.as_str(), "latest"),
        };
        if path.contains(':') {
            return Err(invalid("more than one ':'"));
        }
        // `sha256` (or `SHA256:x`) would be `sha256:<tag>` canonically: a digest, not a name.
        if path == "sha256" {
            return Err(invalid("a digest is not a name"));
        }
        validate_tag(tag).map_err(|why| invalid(&why))?;
        // The canonical form (`:latest` added) must parse again.
        if path.len() + 1 + tag.len() > MAX_NAME {
            return Err(invalid(&format!(
                "longer than {MAX_NAME} characters with its tag"
            )));
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return Err(invalid("at most host/namespace/model"));
        }
        for segment in &segments {
            validate_segment(segment).map_err(|why| invalid(&why))?;
        }
        Ok(ModelName {
            path: path.to_string(),
            tag: tag.to_string(),
        })
    }

    /// `host/namespace/model` without the tag.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag (`latest` when none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Hex sha256 of the canonical name: the manifest's file stem.
    pub fn key(&self) -> String {
        hex::encode(Sha256::digest(self.to_string().as_bytes()))
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path, self.tag)
    }
}

fn validate_segment(segment: &str) -> std::result::Result<(), String> {
    if segment.is_empty() {
        return Err("empty path segment".into());
    }
    if segment.len() > MAX_SEGMENT {
        return Err(format!(
            "a path segment is longer than {MAX_SEGMENT} characters"
        ));
    }
    if segment.contains("..") {
        return Err("'..' is not allowed".into());
    }
    let mut chars = segment.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok {
        return Err(format!(
            "'{}' must start with a letter or digit",
            shorten(segment)
        ));
    }
    if let Some(c) =
        chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c)))
    {
        return Err(format!(
            "character {c:?} is not allowed (letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

fn validate_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() {
        return Err("empty tag".into());
    }
    if tag.len() > MAX_TAG {
        return Err(format!("the tag is longer than {MAX_TAG} characters"));
    }
    if tag.contains("..") {
        return Err("'..' is not allowed in a tag".into());
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok {
        return Err("the tag must start with a letter, digit or '_'".into());
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
        return Err(format!("character {c:?} is not allowed in a tag"));
    }
    Ok(())
}

/// Validates a user-given digest, `sha256:<64 hex>` (or the 64 hex alone), and returns the
/// lowercase hex.
pub fn parse_digest(input: &str) -> Result<String> {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::Invalid(format!(
            "invalid digest format '{}': expected sha256: and 64 hex characters",
            shorten(input)
        )));
    }
    Ok(hex.to_ascii_lowercase())
}

/// True when `s` is 64 hex characters.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The start of a possibly huge user string, for messages.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() -> Result<()> {
        assert_eq!(ModelName::parse("gemma3")?.to_string(), "gemma3:latest");
        assert_eq!(
            ModelName::parse("qwen2.5-coder:0.5b")?.to_string(),
            "qwen2.5-coder:0.5b"
        );
        let hf = ModelName::parse("hf.co/ggml-org/gemma-3-270m-GGUF:Q4_K_M")?;
        assert_eq!(hf.to_string(), "hf.co/ggml-org/gemma-3-270m-gguf:q4_k_m");
        assert_eq!(hf.path(), "hf.co/ggml-org/gemma-3-270m-gguf");
        assert_eq!(hf.tag(), "q4_k_m");
        assert_eq!(hf.key().len(), 64);
        assert_eq!(
            hf.key(),
            ModelName::parse("HF.CO/ggml-org/Gemma-3-270m-gguf:q4_k_m")?.key()
        );
        assert_ne!(
            hf.key(),
            ModelName::parse("hf.co/ggml-org/gemma-3-270m-gguf")?.key()
        );
        assert_eq!(ModelName::parse("a/b:_x")?.tag(), "_x");
        Ok(())
    }

    #[test]
    fn hostile_names_are_rejected() {
        let long = "a".repeat(400);
        let long_segment = format!("{}:x", "b".repeat(200));
        let long_tag = format!("m:{}", "t".repeat(200));
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "x:../../y",
            "x:..",
            "sha256:abc",
            "a\\b",
            "..\\..\\windows",
            "a//b",
            "a/",
            "a:",
            ":tag",
            "a:b:c",
            ".hidden",
            "-dash",
            "a/b/c/d",
            "a b",
            "a\0b",
            "näme",
            "a..b",
            // Found by the model_name fuzz target: '..' in a tag.
            "qwen2.5-coder:0...5b",
            "m:..x",
            // Found by the model_name fuzz target: canonically 'sha256:latest', a digest.
            "sha256",
            "SHA256:abc",
            long.as_str(),
            long_segment.as_str(),
            long_tag.as_str(),
        ] {
            match ModelName::parse(bad) {
                Err(StoreError::Invalid(msg)) => assert!(!msg.is_empty()),
                other => panic!("{bad:?} was accepted or failed oddly: {other:?}"),
            }
        }
    }

    #[test]
    fn digests_must_be_64_hex() -> Result<()> {
        let hex = "A5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(
            parse_digest(&format!("sha256:{hex}"))?,
            hex.to_ascii_lowercase()
        );
        for bad in [
            "sha256:abc",
            "sha256:",
            &format!("sha256:{hex}0"),
            &format!("sha256:{}g", &hex[1..]),
            "sha256:../../etc/passwd",
        ] {
            assert!(
                matches!(parse_digest(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
        Ok(())
    }
}
