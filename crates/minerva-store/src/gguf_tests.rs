//! The GGUF reader on the project's two real models, truncated copies and corrupt headers.

use super::*;
use std::io::Write;

/// A real test model; a missing one is a failure, never a skip.
pub(crate) fn model(env: &str, file: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".local/share/minerva/models").join(file));
    assert!(
        path.is_file(),
        "{env} (or {}) must be the test model (run minerva fetch)",
        path.display()
    );
    path
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

pub(crate) fn qwen() -> PathBuf {
    model(
        "MINERVA_QWEN_GGUF",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    )
}

pub(crate) fn gemma() -> PathBuf {
    model("MINERVA_GEMMA_GGUF", "gemma-3-270m-q4_k_m.gguf")
}

/// The tiny vision model's language model (`$MINERVA_VLM_DIR/model.gguf`): 896-wide, as Qwen.
pub(crate) fn vlm_model() -> PathBuf {
    projector().with_file_name("model.gguf")
}

/// The tiny vision model's projector (`$MINERVA_VLM_DIR/mmproj.gguf`, which scripts/test.sh
/// builds); a missing one is a failure.
pub(crate) fn projector() -> PathBuf {
    let dir = std::env::var_os("MINERVA_VLM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cache/minerva/fixtures/tiny-vlm"));
    let path = dir.join("mmproj.gguf");
    assert!(
        path.is_file(),
        "MINERVA_VLM_DIR (or {}) must hold the tiny vision model's mmproj.gguf (run scripts/test.sh)",
        dir.display()
    );
    path
}

#[test]
fn reads_a_projector_and_tells_it_from_a_model() -> Result<()> {
    let info = read_projector(&projector())?;
    assert_eq!(info.architecture.as_deref(), Some("clip"));
    assert!(info.has_vision_encoder);
    assert_eq!(info.projector_type.as_deref(), Some("qwen2vl_merger"));
    // A projector is not a model, and a model is not a projector.
    assert!(
        matches!(read_model(&projector()), Err(StoreError::InvalidGguf { reason, .. }) if reason.contains("--mmproj"))
    );
    assert!(
        matches!(read_projector(&qwen()), Err(StoreError::NotAProjector { reason, .. }) if reason.contains("'qwen2'"))
    );
    assert!(!read_model(&qwen())?.has_vision_encoder);
    // A clip file without a vision encoder (an audio projector) is no vision projector.
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let audio = minimal_with(
        dir.path(),
        "audio.gguf",
        &[("general.architecture", "clip")],
        &[
            ("clip.has_vision_encoder", false),
            ("clip.has_audio_encoder", true),
        ],
        true,
    );
    assert!(
        matches!(read_projector(&audio), Err(StoreError::NotAProjector { reason, .. }) if reason.contains("no vision encoder"))
    );
    let vision = minimal_with(
        dir.path(),
        "vision.gguf",
        &[("general.architecture", "clip")],
        &[("clip.has_vision_encoder", true)],
        true,
    );
    assert!(read_projector(&vision)?.has_vision_encoder);
    Ok(())
}

#[test]
fn reads_qwen() -> Result<()> {
    let info = read(&qwen())?;
    assert_eq!(info.version, 3);
    assert_eq!(info.architecture.as_deref(), Some("qwen2"));
    assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(info.context_length, Some(32768));
    assert!(info
        .chat_template
        .as_deref()
        .is_some_and(|t| t.contains("<|im_start|>")));
    // 24 layers × 2 KV heads × (64 + 64) × 2 bytes.
    assert_eq!(info.kv_bytes_per_token, Some(12288));
    // <|fim_prefix|>, <|fim_suffix|> and <|fim_middle|> are in its vocabulary (no fim_* keys).
    assert!(info.fill_in_middle);
    // 494 M weights plus the untied 136 M output matrix.
    assert!(
        (620_000_000..640_000_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    assert_eq!(
        info.data_end,
        std::fs::metadata(qwen())
            .map_err(|e| StoreError::io("", e))?
            .len()
    );
    Ok(())
}

#[test]
fn reads_gemma() -> Result<()> {
    let info = read(&gemma())?;
    assert_eq!(info.architecture.as_deref(), Some("gemma3"));
    assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(info.context_length, Some(32768));
    // This GGUF carries no chat template (Minerva's template crate supplies Gemma's).
    assert_eq!(info.chat_template, None);
    assert_eq!(info.license.as_deref(), Some("gemma"));
    // 18 layers × 1 KV head × (256 + 256) × 2 bytes.
    assert_eq!(info.kv_bytes_per_token, Some(18432));
    assert!(!info.fill_in_middle);
    assert!(
        (260_000_000..280_000_000).contains(&info.n_params),
        "{}",
        info.n_params
    );
    Ok(())
}

/// A copy of the model's header, extended to `len` bytes with zeros (a sparse file: the reader
/// checks where tensor data lies, it does not read it).
fn cut_copy(src: &Path, header: u64, len: u64, dir: &Path) -> PathBuf {
    let out = dir.join(format!("cut-{len}.gguf"));
    let mut data = Vec::new();
    let result = File::open(src).and_then(|f| f.take(header.min(len)).read_to_end(&mut data));
    assert!(result.is_ok(), "reading {}", src.display());
    let written = File::create(&out).and_then(|mut f| {
        f.write_all(&data)?;
        f.set_len(len)
    });
    assert!(written.is_ok(), "writing {}", out.display());
    out
}

fn assert_rejected(path: &Path, what: &str) {
    match read(path) {
        Err(StoreError::InvalidGguf { reason, .. }) => assert!(!reason.is_empty()),
        other => panic!("{what}: expected InvalidGguf, got {other:?}"),
    }
}

#[test]
fn truncated_copies_are_rejected() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    for src in [qwen(), gemma()] {
        let info = read(&src)?;
        let len = info.data_end;
        // The header copy padded with zeros to the full length is accepted: the cuts below fail
        // because of where they cut, not because of the zeros.
        assert_eq!(
            read(&cut_copy(&src, info.data_start, len, dir.path()))?.n_params,
            info.n_params
        );
        for cut in [
            0,
            3,
            6,
            12,
            23,
            100,
            info.data_start / 2,
            info.data_start - 1,
            info.data_start + 1000,
            len / 2,
            len - 1,
        ] {
            assert_rejected(
                &cut_copy(&src, info.data_start, cut, dir.path()),
                &format!("cut at {cut}"),
            );
        }
    }
    Ok(())
}

/// The model's header with `patch` applied at `at`.
fn patched(dir: &Path, at: usize, patch: &[u8]) -> PathBuf {
    let src = gemma();
    let info = read(&src);
    let Ok(info) = info else {
        panic!("reading gemma: {info:?}")
    };
    let out = cut_copy(&src, info.data_start, info.data_end, dir);
    let mut header = Vec::new();
    assert!(File::open(&out)
        .and_then(|f| f.take(64).read_to_end(&mut header))
        .is_ok());
    header[at..at + patch.len()].copy_from_slice(patch);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .and_then(|mut f| f.write_all(&header));
    assert!(written.is_ok());
    out
}

#[test]
fn corrupt_headers_are_rejected() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let huge = u64::MAX.to_le_bytes();
    let cases: [(&str, usize, &[u8]); 7] = [
        ("magic", 0, b"GGML"),
        ("version 1", 4, &1u32.to_le_bytes()),
        ("version 99", 4, &99u32.to_le_bytes()),
        ("tensor count", 8, &huge),
        ("metadata count", 16, &huge),
        ("first key length", 24, &huge),
        (
            "first key length, large but in range",
            24,
            &(1u64 << 40).to_le_bytes(),
        ),
    ];
    for (what, at, patch) in cases {
        assert_rejected(&patched(dir.path(), at, patch), what);
    }
    // The first value's type (after the 8-byte key length and the key).
    let mut header = Vec::new();
    File::open(gemma())
        .and_then(|f| f.take(64).read_to_end(&mut header))
        .map_err(|e| StoreError::io("reading", e))?;
    let key_len = u64::from_le_bytes(
        header[24..32]
            .try_into()
            .map_err(|_| StoreError::Invalid("slice".into()))?,
    ) as usize;
    assert_rejected(
        &patched(dir.path(), 32 + key_len, &200u32.to_le_bytes()),
        "value type",
    );
    // Not a GGUF at all.
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, b"hello").map_err(|e| StoreError::io("writing", e))?;
    assert_rejected(&text, "text file");
    assert!(!has_magic(&text)?);
    assert!(has_magic(&gemma())?);
    Ok(())
}

/// A GGUF v3 file with the given metadata strings and one 1-element F32 tensor (or none).
fn minimal(dir: &Path, name: &str, meta: &[(&str, &str)], tensor: bool) -> PathBuf {
    minimal_with(dir, name, meta, &[], tensor)
}

/// [`minimal`] with boolean metadata too.
pub(crate) fn minimal_with(
    dir: &Path,
    name: &str,
    meta: &[(&str, &str)],
    flags: &[(&str, bool)],
    tensor: bool,
) -> PathBuf {
    let mut b: Vec<u8> = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(u64::from(tensor).to_le_bytes());
    b.extend(((meta.len() + flags.len()) as u64).to_le_bytes());
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    };
    for (k, v) in meta {
        string(&mut b, k);
        b.extend(8u32.to_le_bytes()); // string
        string(&mut b, v);
    }
    for (k, v) in flags {
        string(&mut b, k);
        b.extend(7u32.to_le_bytes()); // bool
        b.push(u8::from(*v));
    }
    if tensor {
        string(&mut b, "t");
        b.extend(1u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(0u64.to_le_bytes());
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.extend([0u8; 4]);
    b.extend(vec![0u8; 64 * 1024]);
    let path = dir.join(name);
    std::fs::write(&path, b).expect("write");
    path
}

#[test]
fn a_header_without_tensors_or_architecture_is_not_a_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reason = |path: &Path| match read(path) {
        Err(StoreError::InvalidGguf { reason, .. }) => reason,
        other => panic!("expected InvalidGguf, got {other:?}"),
    };
    let empty = minimal(dir.path(), "empty.gguf", &[], false);
    assert!(reason(&empty).contains("no tensors"));
    let nameless = minimal(dir.path(), "nameless.gguf", &[("general.name", "x")], true);
    assert!(reason(&nameless).contains("no general.architecture"));
    let fine = minimal(
        dir.path(),
        "fine.gguf",
        &[("general.architecture", "llama")],
        true,
    );
    let info = read(&fine).expect("a minimal model with an architecture and a tensor reads");
    assert_eq!(info.architecture.as_deref(), Some("llama"));
    assert_eq!(info.n_tensors, 1);
}

/// A projector made for another model (its embeddings' width is not the model's) is refused
/// with both widths named; the tiny vision model's own pair passes.
#[test]
fn a_projector_must_fit_its_model() -> Result<()> {
    let projector_info = read_projector(&projector())?;
    assert_eq!(projector_info.projection_dim, Some(896));
    let qwen = read_model(&qwen())?;
    assert_eq!(qwen.embedding_length, Some(896));
    check_pair(&qwen, &projector_info, &projector())?;
    let gemma = read_model(&gemma())?;
    assert!(matches!(
        check_pair(&gemma, &projector_info, &projector()),
        Err(StoreError::NotAProjector { reason, .. }) if reason.contains("896") && reason.contains("640")
    ));
    Ok(())
}
