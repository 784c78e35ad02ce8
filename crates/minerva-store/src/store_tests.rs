//! The store on the real Gemma model: import, list, copy, remove, hostile names, bad files.

use super::*;
use crate::gguf::tests::gemma;

const GEMMA_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

pub(crate) fn temp() -> tempfile::TempDir {
    let dir = tempfile::tempdir();
    let Ok(dir) = dir else {
        panic!("tempdir: {dir:?}")
    };
    dir
}

pub(crate) fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn import_list_copy_remove() -> Result<()> {
    let dir = temp();
    let store = Store::open(dir.path())?;
    let model = store.import(&gemma(), "Gemma3:270M")?;
    assert_eq!(model.name, "gemma3:270m");
    assert_eq!(model.digest, GEMMA_SHA256);
    assert_eq!(model.size, 253_113_024);
    assert_eq!(model.architecture.as_deref(), Some("gemma3"));
    assert_eq!(model.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(
        model.path,
        dir.path()
            .join("blobs")
            .join(format!("sha256-{GEMMA_SHA256}"))
    );
    assert_eq!(
        files_in(&dir.path().join("blobs")),
        [format!("sha256-{GEMMA_SHA256}")]
    );
    assert_eq!(store.get("gemma3:270m")?, model);

    let copy = store.copy("gemma3:270m", "my/gemma")?;
    assert_eq!(copy.name, "my/gemma:latest");
    assert_eq!(copy.path, model.path);
    let names: Vec<String> = store.list()?.into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["gemma3:270m", "my/gemma:latest"]);

    store.remove("gemma3:270m")?;
    assert!(model.path.is_file(), "the copy still uses the blob");
    assert!(matches!(
        store.get("gemma3:270m"),
        Err(StoreError::NotFound(_))
    ));
    store.remove("my/gemma")?;
    assert!(files_in(&dir.path().join("blobs")).is_empty());
    assert!(files_in(&dir.path().join("manifests")).is_empty());
    assert!(matches!(
        store.remove("my/gemma"),
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn a_verified_import_is_not_hashed_but_checked() -> Result<()> {
    let dir = temp();
    let store = Store::open(dir.path())?;
    let options = ImportOptions {
        source: Some("catalog".into()),
        verified_sha256: Some(GEMMA_SHA256.into()),
    };
    let model = store.import_with(&gemma(), "gemma3:270m", &options)?;
    assert_eq!(model.digest, GEMMA_SHA256);
    assert_eq!(model.source, "catalog");
    let bad = ImportOptions {
        source: None,
        verified_sha256: Some("sha256:abc".into()),
    };
    assert!(matches!(
        store.import_with(&gemma(), "x", &bad),
        Err(StoreError::Invalid(_))
    ));
    Ok(())
}

#[test]
fn bad_files_leave_nothing_behind() -> Result<()> {
    let dir = temp();
    let store = Store::open(dir.path().join("store"))?;
    // The first 10 MB of the model: a valid header whose tensor data is missing.
    let truncated = dir.path().join("truncated.gguf");
    let mut head = Vec::new();
    fs::File::open(gemma())
        .and_then(|f| f.take(10 << 20).read_to_end(&mut head))
        .and_then(|_| fs::write(&truncated, &head))
        .map_err(|e| StoreError::io("writing", e))?;
    assert!(matches!(
        store.import(&truncated, "cut"),
        Err(StoreError::InvalidGguf { .. })
    ));
    let text = dir.path().join("model.gguf");
    fs::write(&text, "not a model").map_err(|e| StoreError::io("writing", e))?;
    assert!(matches!(
        store.import(&text, "text"),
        Err(StoreError::InvalidGguf { .. })
    ));
    // A directory that is not a Hugging Face model says what it holds and what it lacks.
    assert!(
        matches!(store.import(dir.path(), "dir"), Err(StoreError::Format(f)) if f.to_string().contains("without config.json"))
    );
    assert!(files_in(&dir.path().join("store/blobs")).is_empty());
    assert!(files_in(&dir.path().join("store/manifests")).is_empty());
    assert!(store.list()?.is_empty());
    Ok(())
}

#[test]
fn hostile_names_never_reach_the_file_system() -> Result<()> {
    let dir = temp();
    let store = Store::open(dir.path())?;
    for bad in [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "x:../../y",
        "sha256:abc",
        "a\\b",
        "",
    ] {
        assert!(
            matches!(store.get(bad), Err(StoreError::Invalid(_))),
            "get {bad}"
        );
        assert!(
            matches!(store.remove(bad), Err(StoreError::Invalid(_))),
            "remove {bad}"
        );
        assert!(
            matches!(store.copy("a", bad), Err(StoreError::Invalid(_))),
            "copy {bad}"
        );
        assert!(
            matches!(store.import(&gemma(), bad), Err(StoreError::Invalid(_))),
            "import {bad}"
        );
    }
    assert!(matches!(
        store.get("nothing:here"),
        Err(StoreError::NotFound(_))
    ));
    // A planted manifest pointing outside the blobs is never listed.
    let name = ModelName::parse("evil")?;
    let planted = r#"{"format_version":1,"name":"evil:latest","source":"x","digest":"../../etc/passwd","size":1,"modified_ms":0,"format":"gguf","architecture":null,"n_params":null,"quantization":null,"context_length":null,"chat_template":null,"license":null,"kv_bytes_per_token":null}"#;
    fs::write(
        dir.path()
            .join("manifests")
            .join(format!("{}.json", name.key())),
        planted,
    )
    .map_err(|e| StoreError::io("writing", e))?;
    assert!(store.list()?.is_empty());
    assert!(matches!(
        store.get("evil"),
        Err(StoreError::Manifest { .. })
    ));
    Ok(())
}

#[test]
fn library_errors_map_to_the_contract() {
    let dir = temp();
    let Ok(store) = Store::open(dir.path()) else {
        panic!("open")
    };
    let library: &dyn Library = &store;
    assert!(matches!(
        library.get("../x"),
        Err(minerva_core::CoreError::InvalidRequest { .. })
    ));
    assert!(
        matches!(library.get("absent"), Err(minerva_core::CoreError::ModelNotFound(n)) if n == "absent:latest")
    );
}
