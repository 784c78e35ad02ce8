//! Entry points for the fuzz targets (`fuzz/` at the repository root), compiled only with the
//! `fuzzing` feature: the store's private parsers, fed bytes instead of files.

use crate::manifest::Manifest;
use crate::{Result, StoreError};
use std::path::{Path, PathBuf};

/// What a manifest that [`manifest`] accepted says, and where it points.
#[derive(Debug, Clone)]
pub struct ManifestView {
    /// The model's name as written in the manifest.
    pub name: String,
    /// The model file's (or snapshot's) digest.
    pub digest: String,
    /// The projector's digest, if any.
    pub projector: Option<String>,
    /// A directory model's files: name and digest.
    pub files: Vec<(String, String)>,
    /// The model's path under the store at [`STORE`].
    pub model_path: PathBuf,
    /// The projector's path under the store at [`STORE`].
    pub projector_path: Option<PathBuf>,
    /// The manifest written back and read again is written the same way.
    pub round_trips: bool,
}

/// The store directory [`ManifestView`]'s paths are under.
pub const STORE: &str = "/store";

/// Parses and checks a manifest's bytes as the store reads a manifest file.
pub fn manifest(bytes: &[u8]) -> Result<ManifestView> {
    let path = Path::new("fuzz.json");
    let parsed = Manifest::parse(bytes, path)?;
    let store = Path::new(STORE);
    let model = parsed.to_model(&store.join("blobs"), &store.join("snapshots"));
    let json = |m: &Manifest| {
        serde_json::to_vec_pretty(m).map_err(|e| StoreError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let written = json(&parsed)?;
    let round_trips = Manifest::parse(&written, path)
        .and_then(|again| json(&again))
        .is_ok_and(|again| again == written);
    Ok(ManifestView {
        name: parsed.name.clone(),
        digest: parsed.digest.clone(),
        projector: parsed.projector.clone(),
        files: parsed
            .files
            .iter()
            .map(|f| (f.name.clone(), f.digest.clone()))
            .collect(),
        model_path: model.path,
        projector_path: model.projector,
        round_trips,
    })
}
