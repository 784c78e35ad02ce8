//! Manifest parsing (`Manifest::parse` through `minerva_store::fuzzing::manifest`) on
//! arbitrary bytes: it never panics, and a manifest it accepts points only inside the store
//! (blobs named by 64-hex digests, snapshot files by plain names) and writes back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerva_store::fuzzing::{manifest, STORE};
use std::path::{Component, Path};

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `path` is a plain path below `dir`: no `..`, no root after the prefix.
fn inside(path: &Path, dir: &Path) -> bool {
    path.strip_prefix(dir).is_ok_and(|rest| {
        rest.components().count() == 1
            && rest.components().all(|c| matches!(c, Component::Normal(_)))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = manifest(data) else {
        return;
    };
    let store = Path::new(STORE);
    assert!(is_hex64(&m.digest), "digest {:?}", m.digest);
    if let Some(p) = &m.projector {
        assert!(is_hex64(p), "projector {p:?}");
    }
    for (name, digest) in &m.files {
        assert!(is_hex64(digest), "file digest {digest:?}");
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && name != ".",
            "file name {name:?}"
        );
    }
    let under = if m.files.is_empty() {
        "blobs"
    } else {
        "snapshots"
    };
    assert!(
        inside(&m.model_path, &store.join(under)),
        "{:?}",
        m.model_path
    );
    if let Some(p) = &m.projector_path {
        assert!(inside(p, &store.join("blobs")), "{p:?}");
    }
    assert!(
        m.round_trips,
        "the manifest {:?} does not write back the same",
        m.name
    );
});
