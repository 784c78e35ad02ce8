//! Directory models in the store: import, snapshot, copy, backend choice, removal, bad input.

use super::*;
use crate::manifest::Manifest;
use crate::store::tests::{files_in as names_in, temp};

/// A safetensors file of BF16 tensors (name, shape), filled with `fill`.
fn safetensors(tensors: &[(&str, &[u64])], fill: u8) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * 2;
        header.insert(
            (*name).to_string(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(fill, offset as usize));
    out
}

/// A small Hugging Face directory: config, tokenizer files, a model card and one weight file.
fn hf_dir(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join("Tiny-Model");
    fs::create_dir_all(dir.join("onnx"))?;
    fs::write(
        dir.join("config.json"),
        r#"{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "torch_dtype": "bfloat16",
            "max_position_embeddings": 2048, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "hidden_size": 64, "vocab_size": 16}"#,
    )?;
    fs::write(dir.join("tokenizer.json"), r#"{"model": {"type": "BPE"}}"#)?;
    fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"chat_template": "{{ messages }}", "eos_token": "</s>"}"#,
    )?;
    fs::write(
        dir.join("README.md"),
        "---\nlicense: apache-2.0\n---\n# Tiny\n",
    )?;
    fs::write(dir.join("pytorch_model.bin"), b"not taken")?;
    fs::write(dir.join(".hidden.json"), b"{}")?;
    fs::write(dir.join("onnx").join("model.onnx"), b"not taken")?;
    fs::write(
        dir.join("model.safetensors"),
        safetensors(&[("embed.weight", &[16, 64]), ("norm.weight", &[64])], 7),
    )?;
    Ok(dir)
}

#[test]
fn a_directory_is_imported_file_by_file_and_served_from_a_snapshot() -> Result<()> {
    let root = temp();
    let src = hf_dir(root.path()).map_err(|e| StoreError::io("fixture", e))?;
    let store = Store::open(root.path().join("store"))?;
    let model = store.import(&src, "tiny:latest")?;
    assert_eq!(model.format, "safetensors");
    assert_eq!(model.architecture.as_deref(), Some("qwen2"));
    assert_eq!(model.quantization.as_deref(), Some("BF16"));
    assert_eq!(model.n_params, Some(16 * 64 + 64));
    assert_eq!(model.context_length, Some(2048));
    assert_eq!(model.chat_template.as_deref(), Some("{{ messages }}"));
    assert_eq!(model.license.as_deref(), Some("apache-2.0"));
    // 2 layers x 2 KV heads x (64 / 4) per head x K and V x 2 bytes.
    assert_eq!(model.kv_bytes_per_token, Some(2 * 2 * 16 * 2 * 2));
    // The snapshot holds exactly the model files, as links into the blobs.
    assert_eq!(
        model.path,
        root.path().join("store/snapshots").join(&model.digest)
    );
    assert_eq!(
        names_in(&model.path),
        [
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    let weights =
        fs::read(model.path.join("model.safetensors")).map_err(|e| StoreError::io("read", e))?;
    assert_eq!(
        weights,
        fs::read(src.join("model.safetensors")).map_err(|e| StoreError::io("read", e))?
    );
    assert_eq!(names_in(&root.path().join("store/blobs")).len(), 5);
    let size: u64 = [
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    .iter()
    .map(|f| fs::metadata(src.join(f)).map(|m| m.len()).unwrap_or(0))
    .sum();
    assert_eq!(model.size, size);
    assert_eq!(store.get("tiny")?, model);

    // Importing the snapshot itself (links) gives the same model; a copy shares it.
    let again = store.import(&model.path, "tiny:again")?;
    assert_eq!(again.digest, model.digest);
    let copy = store.copy("tiny", "other/tiny")?;
    assert_eq!(copy.path, model.path);
    assert_eq!(names_in(&root.path().join("store/blobs")).len(), 5);

    // A snapshot removed by hand comes back from the blobs.
    fs::remove_dir_all(&model.path).map_err(|e| StoreError::io("rm", e))?;
    assert_eq!(store.get("tiny")?.path, model.path);
    assert!(model.path.join("config.json").is_file());

    // The backend choice is kept in the manifest.
    assert_eq!(
        store.set_backend("tiny", Some("mlx"))?.backend.as_deref(),
        Some("mlx")
    );
    assert_eq!(store.get("tiny")?.backend.as_deref(), Some("mlx"));
    assert_eq!(store.set_backend("tiny", None)?.backend, None);
    assert!(matches!(
        store.set_backend("tiny", Some("../x")),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_backend("nothing", Some("mlx")),
        Err(StoreError::NotFound(_))
    ));

    for name in ["tiny", "tiny:again"] {
        store.remove(name)?;
    }
    assert!(model.path.is_dir(), "other/tiny still uses the snapshot");
    store.remove("other/tiny")?;
    assert!(names_in(&root.path().join("store/blobs")).is_empty());
    assert!(names_in(&root.path().join("store/snapshots")).is_empty());
    Ok(())
}

#[test]
fn broken_directories_leave_nothing_behind() -> Result<()> {
    let root = temp();
    let src = hf_dir(root.path()).map_err(|e| StoreError::io("fixture", e))?;
    let store = Store::open(root.path().join("store"))?;
    let weights = fs::read(src.join("model.safetensors")).map_err(|e| StoreError::io("read", e))?;
    let write = |bytes: &[u8]| {
        fs::write(src.join("model.safetensors"), bytes).map_err(|e| StoreError::io("w", e))
    };
    // Truncated: a tensor's bytes lie past the end of the file.
    write(&weights[..weights.len() - 10])?;
    let e = store.import(&src, "tiny").map(|m| m.name);
    assert!(
        matches!(&e, Err(StoreError::Format(f)) if f.to_string().contains("truncated or corrupt")),
        "{e:?}"
    );
    // A header longer than the file.
    let mut huge = weights.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    write(&huge)?;
    assert!(matches!(
        store.import(&src, "tiny"),
        Err(StoreError::Format(_))
    ));
    // A tensor whose byte count does not match its shape.
    write(&safetensors(&[("w", &[3])], 0)[..])?;
    let mut lie = fs::read(src.join("model.safetensors")).map_err(|e| StoreError::io("read", e))?;
    lie.push(0);
    let text = String::from_utf8_lossy(&lie).replace("[0,6]", "[0,7]");
    write(text.as_bytes())?;
    assert!(matches!(
        store.import(&src, "tiny"),
        Err(StoreError::Format(_))
    ));
    write(&weights)?;
    // A sharded model whose index names a missing shard.
    fs::write(
        src.join("model.safetensors.index.json"),
        r#"{"weight_map": {"w": "model-00002-of-00002.safetensors"}}"#,
    )
    .map_err(|e| StoreError::io("w", e))?;
    let e = store.import(&src, "tiny").map(|m| m.name);
    assert!(
        matches!(&e, Err(StoreError::Format(f)) if f.to_string().contains("model-00002-of-00002")),
        "{e:?}"
    );
    fs::remove_file(src.join("model.safetensors.index.json"))
        .map_err(|e| StoreError::io("rm", e))?;
    // No tokenizer: the error says what is missing.
    fs::remove_file(src.join("tokenizer.json")).map_err(|e| StoreError::io("rm", e))?;
    let e = store.import(&src, "tiny").map(|m| m.name);
    assert!(
        matches!(&e, Err(StoreError::Format(f)) if f.to_string().contains("without tokenizer.json")),
        "{e:?}"
    );
    assert!(store.list()?.is_empty());
    let leftovers: Vec<String> = names_in(&root.path().join("store/blobs"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(names_in(&root.path().join("store/snapshots")).is_empty());
    Ok(())
}

#[test]
fn a_manifest_cannot_point_outside_the_store() -> Result<()> {
    let root = temp();
    let src = hf_dir(root.path()).map_err(|e| StoreError::io("fixture", e))?;
    let store = Store::open(root.path().join("store"))?;
    let model = store.import(&src, "tiny")?;
    let name = crate::name::ModelName::parse("tiny")?;
    let path = store.manifest_path(&name);
    let original = Manifest::read(&path)?;
    for bad_name in ["../../../etc/passwd", ".bashrc", "sub/config.json"] {
        let mut m = original.clone();
        m.files[0].name = bad_name.to_string();
        m.digest = crate::manifest::snapshot_digest(&m.files);
        m.write(&path)?;
        assert!(
            matches!(Manifest::read(&path), Err(StoreError::Manifest { .. })),
            "{bad_name}"
        );
        assert!(store.list()?.is_empty(), "{bad_name}");
    }
    // A file list that does not hash to the digest (a snapshot of another model).
    let mut m = original.clone();
    m.files[0].size += 1;
    m.files.swap(0, 1);
    m.digest = model.digest.clone();
    m.files[0].digest = "0".repeat(64);
    m.write(&path)?;
    assert!(matches!(
        Manifest::read(&path),
        Err(StoreError::Manifest { .. })
    ));
    original.write(&path)?;
    assert_eq!(store.get("tiny")?, model);
    Ok(())
}
