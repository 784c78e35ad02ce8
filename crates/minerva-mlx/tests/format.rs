//! Telling model formats apart: GGUF by its magic, Hugging Face directories by their files,
//! MLX-quantized ones by `quantization` in config.json; anything else named in the error.

use minerva_mlx::{detect, ModelFormat};
use std::fs;
use std::path::Path;

fn hf_dir(dir: &Path, config: &str, shards: &[&str]) {
    fs::write(dir.join("config.json"), config).ok();
    fs::write(dir.join("tokenizer.json"), "{}").ok();
    fs::write(dir.join("tokenizer_config.json"), "{}").ok();
    for s in shards {
        fs::write(dir.join(s), b"\0\0\0\0\0\0\0\0").ok();
    }
}

fn error(path: &Path) -> String {
    match detect(path) {
        Ok(f) => panic!("{} detected as {f:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_gguf_file_is_known_by_its_magic_not_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = dir.path().join("model.bin");
    fs::write(&gguf, b"GGUF\x03\0\0\0").expect("write");
    assert_eq!(detect(&gguf).ok(), Some(ModelFormat::Gguf));
    let fake = dir.path().join("fake.gguf");
    fs::write(&fake, b"PK\x03\x04zip").expect("write");
    let e = error(&fake);
    assert!(e.contains("a file starting with \"PK"), "{e}");
    assert!(
        e.contains("expected a GGUF file or a Hugging Face model directory"),
        "{e}"
    );
}

#[test]
fn hf_directories_and_mlx_quantized_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    hf_dir(
        dir.path(),
        r#"{"model_type": "qwen2"}"#,
        &["model.safetensors"],
    );
    assert_eq!(detect(dir.path()).ok(), Some(ModelFormat::Safetensors));
    assert_eq!(ModelFormat::Safetensors.as_str(), "safetensors");

    let mlx = tempfile::tempdir().expect("tempdir");
    hf_dir(
        mlx.path(),
        r#"{"model_type": "qwen2", "quantization": {"group_size": 64, "bits": 4}}"#,
        &["model.safetensors"],
    );
    assert_eq!(detect(mlx.path()).ok(), Some(ModelFormat::Mlx));
}

#[test]
fn what_is_missing_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("config.json"), "{}").expect("write");
    fs::write(dir.path().join("pytorch_model.bin"), "x").expect("write");
    let e = error(dir.path());
    assert!(e.contains("pytorch_model.bin"), "{e}");
    assert!(
        e.contains("without tokenizer.json, tokenizer_config.json, *.safetensors"),
        "{e}"
    );

    let sharded = tempfile::tempdir().expect("tempdir");
    hf_dir(
        sharded.path(),
        "{}",
        &[
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
    );
    let e = error(sharded.path());
    assert!(e.contains("without model.safetensors.index.json"), "{e}");
    fs::write(sharded.path().join("model.safetensors.index.json"), "{}").expect("write");
    assert_eq!(detect(sharded.path()).ok(), Some(ModelFormat::Safetensors));
}

#[test]
fn a_missing_path_says_so() {
    let e = error(Path::new("/nonexistent/minerva/model"));
    assert!(e.contains("/nonexistent/minerva/model"), "{e}");
}
