//! Hostile files (issue 16): the GGUF reader on every corruption kind of llama.cpp's own GGUF
//! tests (written by scripts/fixtures/hostile_gguf.py into tests/fixtures/hostile-gguf, with
//! the phrase each error must hold), and on every input a fuzz target once crashed on
//! (fuzz/regressions/<target>/).

use crate::{gguf, ModelName, StoreError};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files of `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

#[test]
fn every_corruption_kind_is_a_clean_error_that_names_the_problem() {
    let dir = repo().join("tests/fixtures/hostile-gguf");
    let table = std::fs::read_to_string(dir.join("expected.tsv"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut checked = 0;
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let (file, phrase) = line.split_once('\t').unwrap_or((line, ""));
        let result = gguf::read(&dir.join(file));
        match (phrase, result) {
            ("", Ok(info)) => assert_eq!(info.architecture.as_deref(), Some("llama")),
            ("", Err(e)) => panic!("{file} is valid and was refused: {e}"),
            (_, Ok(info)) => panic!("{file} was accepted: {info:?}"),
            (_, Err(StoreError::InvalidGguf { reason, .. })) => {
                assert!(
                    reason.contains(phrase),
                    "{file}: '{reason}' lacks '{phrase}'"
                );
            }
            (_, Err(other)) => panic!("{file} failed as something else than InvalidGguf: {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} hostile files");
}

/// Inputs a fuzz target crashed on before its fix: each is now a clean answer.
#[test]
fn fuzz_regressions_are_answered_without_panicking() {
    let dir = repo().join("fuzz/regressions");
    for path in files(&dir.join("gguf")) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let _ = gguf::read_bytes(&bytes, &path);
    }
    for path in files(&dir.join("model_name")) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        if let Ok(name) = ModelName::parse(&String::from_utf8_lossy(&bytes)) {
            assert!(
                !name.to_string().contains(".."),
                "{name} from {}",
                path.display()
            );
            assert_eq!(ModelName::parse(&name.to_string()).ok(), Some(name));
        }
    }
    for path in files(&dir.join("manifest")) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let _ = crate::manifest::Manifest::parse(&bytes, &path);
    }
}
