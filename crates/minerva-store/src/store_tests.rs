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
        ..ImportOptions::default()
    };
    let model = store.import_with(&gemma(), "gemma3:270m", &options)?;
    assert_eq!(model.digest, GEMMA_SHA256);
    assert_eq!(model.source, "catalog");
    let bad = ImportOptions {
        source: None,
        verified_sha256: Some("sha256:abc".into()),
        projector: None,
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

/// The sha256 of a file, hex.
fn sha256_of(path: &Path) -> String {
    let data = fs::read(path);
    let Ok(data) = data else {
        panic!("reading {}: {data:?}", path.display())
    };
    hex::encode(Sha256::digest(&data))
}

fn with_projector(projector: &Path) -> ImportOptions {
    ImportOptions {
        projector: Some(projector.to_path_buf()),
        ..ImportOptions::default()
    }
}

#[test]
fn a_vision_model_keeps_its_projector_through_copy_and_remove() -> Result<()> {
    use crate::gguf::tests::{projector, qwen, vlm_model};
    let dir = temp();
    let store = Store::open(dir.path())?;
    let projector_sha = sha256_of(&projector());
    let qwen_sha = sha256_of(&qwen());
    let model = store.import_with(&qwen(), "vision", &with_projector(&projector()))?;
    let projector_blob = dir
        .path()
        .join("blobs")
        .join(format!("sha256-{projector_sha}"));
    assert_eq!(model.projector.as_deref(), Some(projector_blob.as_path()));
    assert_eq!(model.digest, qwen_sha);
    let mut both = vec![
        format!("sha256-{qwen_sha}"),
        format!("sha256-{projector_sha}"),
    ];
    both.sort();
    assert_eq!(files_in(&dir.path().join("blobs")), both);
    assert_eq!(store.get("vision")?, model);

    // A second name shares both blobs; removing one name keeps them for the other.
    let copy = store.copy("vision", "vision-copy")?;
    assert_eq!(copy.projector, model.projector);
    store.remove("vision")?;
    assert!(projector_blob.is_file() && model.path.is_file());
    store.remove("vision-copy")?;
    assert!(files_in(&dir.path().join("blobs")).is_empty());

    // Two models (of the projector's width) sharing one projector: removing one keeps it.
    store.import_with(&vlm_model(), "a", &with_projector(&projector()))?;
    store.import_with(&qwen(), "b", &with_projector(&projector()))?;
    store.remove("a")?;
    assert!(projector_blob.is_file(), "b still uses the projector");
    assert_eq!(
        store.get("b")?.projector.as_deref(),
        Some(projector_blob.as_path())
    );
    store.remove("b")?;
    assert!(files_in(&dir.path().join("blobs")).is_empty());
    Ok(())
}

#[test]
fn a_re_import_replaces_the_projector() -> Result<()> {
    use crate::gguf::tests::{projector, qwen};
    let dir = temp();
    let store = Store::open(dir.path())?;
    store.import_with(&qwen(), "v", &with_projector(&projector()))?;
    // Imported again without one: a text model, and the projector no name uses is gone.
    let again = store.import(&qwen(), "v")?;
    assert_eq!(again.projector, None);
    assert_eq!(store.get("v")?.projector, None);
    assert_eq!(
        files_in(&dir.path().join("blobs")),
        [format!("sha256-{}", sha256_of(&qwen()))]
    );
    // And with one again; another model's projector (Gemma's embeddings are 640 wide) is not.
    let vision = store.import_with(&qwen(), "v", &with_projector(&projector()))?;
    assert!(matches!(
        store.import_with(&gemma(), "g", &with_projector(&projector())),
        Err(StoreError::NotAProjector { reason, .. }) if reason.contains("640")
    ));
    assert!(vision.projector.as_deref().is_some_and(Path::is_file));
    Ok(())
}

#[test]
fn an_invalid_projector_is_refused_and_leaves_nothing_behind() -> Result<()> {
    use crate::gguf::tests::{projector, qwen};
    let dir = temp();
    let store = Store::open(dir.path().join("store"))?;
    // A model given as the projector.
    assert!(matches!(
        store.import_with(&gemma(), "x", &with_projector(&qwen())),
        Err(StoreError::NotAProjector { .. })
    ));
    // Not a GGUF at all, or absent.
    let text = dir.path().join("mmproj.gguf");
    fs::write(&text, "not a projector").map_err(|e| StoreError::io("writing", e))?;
    assert!(matches!(
        store.import_with(&gemma(), "x", &with_projector(&text)),
        Err(StoreError::InvalidGguf { .. })
    ));
    assert!(matches!(
        store.import_with(
            &gemma(),
            "x",
            &with_projector(&dir.path().join("absent.gguf"))
        ),
        Err(StoreError::Io { .. })
    ));
    // The projector is no model, and a directory model takes no projector.
    assert!(matches!(
        store.import(&projector(), "x"),
        Err(StoreError::InvalidGguf { .. })
    ));
    assert!(matches!(
        store.import_with(dir.path(), "x", &with_projector(&projector())),
        Err(StoreError::Invalid(_))
    ));
    assert!(files_in(&dir.path().join("store/blobs")).is_empty());
    assert!(files_in(&dir.path().join("store/manifests")).is_empty());
    Ok(())
}

#[test]
fn a_manifest_with_a_projector_round_trips() -> Result<()> {
    let dir = temp();
    let path = dir.path().join("m.json");
    let projector = "b".repeat(64);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        name: "v:latest".into(),
        source: "s".into(),
        digest: "a".repeat(64),
        size: 1,
        modified_ms: 2,
        format: "gguf".into(),
        architecture: Some("qwen2vl".into()),
        n_params: None,
        quantization: None,
        context_length: None,
        chat_template: None,
        license: None,
        kv_bytes_per_token: None,
        fill_in_middle: false,
        files: Vec::new(),
        backend: None,
        projector: Some(projector.clone()),
        settings: minerva_core::ModelSettings {
            system: Some("Be brief.".into()),
            parameters: serde_json::json!({"temperature": 0, "stop": ["\n"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            messages: vec![serde_json::json!({"role": "user", "content": "hi"})],
            template: Some("{{ messages }}".into()),
            license: vec!["MIT".into()],
        },
    };
    manifest.write(&path)?;
    let read = Manifest::read(&path)?;
    assert_eq!(read.projector.as_deref(), Some(projector.as_str()));
    assert_eq!(read.settings, manifest.settings);
    let blobs = dir.path().join("blobs");
    let model = read.to_model(&blobs, &dir.path().join("snapshots"));
    assert_eq!(model.projector, Some(blob_path(&blobs, &projector)));
    assert_eq!(
        read.blob_digests().collect::<Vec<_>>(),
        ["a".repeat(64), projector]
    );
    // Without one, the key is left out (and older Minerva reads the file as before).
    let text = Manifest {
        projector: None,
        ..read
    }
    .write(&path)
    .and_then(|()| fs::read_to_string(&path).map_err(|e| StoreError::io("reading", e)))?;
    assert!(!text.contains("projector"));
    // A projector digest that is not one is refused (it names a path).
    let bad = text.replacen("\"format\"", "\"projector\": \"../../x\",\n  \"format\"", 1);
    fs::write(&path, bad).map_err(|e| StoreError::io("writing", e))?;
    assert!(matches!(
        Manifest::read(&path),
        Err(StoreError::Manifest { .. })
    ));
    Ok(())
}

/// A manifest this Minerva cannot read (a newer format, a damaged file) keeps the blobs it
/// names when another name is removed: nothing is deleted that may still be in use.
#[test]
fn an_unreadable_manifest_keeps_its_blobs() -> Result<()> {
    let dir = temp();
    let store = Store::open(dir.path())?;
    let model = store.import(&gemma(), "gemma3:270m")?;
    store.copy("gemma3:270m", "other")?;
    let other = ModelName::parse("other")?;
    let path = store.manifest_path(&other);
    let text = fs::read_to_string(&path).map_err(|e| StoreError::io("reading", e))?;
    fs::write(
        &path,
        text.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .map_err(|e| StoreError::io("writing", e))?;
    assert!(Manifest::read(&path).is_err());
    store.remove("gemma3:270m")?;
    assert!(
        model.path.is_file(),
        "the unreadable manifest's blob was deleted"
    );
    Ok(())
}
