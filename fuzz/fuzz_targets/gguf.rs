//! The GGUF reader (`minerva_store::gguf`) on arbitrary bytes: it never panics, and a file it
//! accepts has sane values (every tensor's data inside the file, a known version, an
//! architecture).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerva_store::gguf;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gguf");
    let Ok(info) = gguf::read_bytes(data, path) else {
        return;
    };
    let len = data.len() as u64;
    assert!(data.starts_with(b"GGUF"), "accepted without the magic");
    assert!(
        info.version == 2 || info.version == 3,
        "version {}",
        info.version
    );
    assert!(info.n_tensors > 0, "accepted with no tensors");
    assert!(
        info.architecture.as_deref().is_some_and(|a| !a.is_empty()),
        "accepted without an architecture"
    );
    // The header (magic, version, two counts) precedes the data, which lies inside the file.
    assert!(info.data_start >= 24, "data starts at {}", info.data_start);
    assert!(
        info.data_start <= info.data_end && info.data_end <= len,
        "data {}..{} in a file of {len} bytes",
        info.data_start,
        info.data_end
    );
    // Every tensor info takes at least 24 bytes of the header.
    assert!(
        info.n_tensors.saturating_mul(24) <= len,
        "{} tensors",
        info.n_tensors
    );
    if let Some(t) = &info.chat_template {
        assert!(
            t.len() <= 1 << 20,
            "a chat template of {} bytes was kept",
            t.len()
        );
    }
    // Reading the same bytes again gives the same facts: nothing depends on hidden state.
    assert_eq!(gguf::read_bytes(data, path).ok(), Some(info.clone()));
    // Comparing a model with a projector (here, with itself) only ever answers.
    let _ = gguf::check_pair(&info, &info, path);
});
