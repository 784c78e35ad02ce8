//! Manifests: one JSON file per model name, written atomically.

use crate::name::is_sha256_hex;
use crate::{Result, StoreError};
use minerva_core::{LibraryModel, ModelSettings};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest format of a single-file (GGUF) model.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The manifest format of a directory model (with `files`); Minerva before it skips these.
pub(crate) const DIR_FORMAT_VERSION: u32 = 2;

/// One file of a directory model: its name in the directory and its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestFile {
    pub name: String,
    pub digest: String,
    pub size: u64,
}

/// What a manifest file holds: every fact of a [`LibraryModel`] but its path (the blob's path,
/// or for a directory model its snapshot's, follows from the digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub source: String,
    /// Hex sha256 of the model file (its blob), or of a directory model's file list
    /// ([`snapshot_digest`]; its snapshot directory).
    pub digest: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: u64,
    pub format: String,
    pub architecture: Option<String>,
    pub n_params: Option<u64>,
    pub quantization: Option<String>,
    pub context_length: Option<u64>,
    pub chat_template: Option<String>,
    pub license: Option<String>,
    pub kv_bytes_per_token: Option<u64>,
    /// The vocabulary has FIM tokens (absent in manifests written before it was recorded).
    #[serde(default)]
    pub fill_in_middle: bool,
    /// A directory model's files (empty for a GGUF file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ManifestFile>,
    /// The backend the user chose (`None`: by the format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Hex sha256 of the vision projector's blob (llama.cpp's `mmproj` GGUF) kept with the
    /// model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<String>,
    /// A created model's own settings (`/api/create`).
    #[serde(default, skip_serializing_if = "ModelSettings::is_empty")]
    pub settings: ModelSettings,
}

impl Manifest {
    /// The library's view of this manifest, with the blob's (or the snapshot's) path.
    pub fn to_model(&self, blobs: &Path, snapshots: &Path) -> LibraryModel {
        LibraryModel {
            name: self.name.clone(),
            source: self.source.clone(),
            digest: self.digest.clone(),
            size: self.size,
            modified: UNIX_EPOCH + Duration::from_millis(self.modified_ms),
            format: self.format.clone(),
            architecture: self.architecture.clone(),
            n_params: self.n_params,
            quantization: self.quantization.clone(),
            context_length: self.context_length,
            chat_template: self.chat_template.clone(),
            license: self.license.clone(),
            kv_bytes_per_token: self.kv_bytes_per_token,
            fill_in_middle: self.fill_in_middle,
            backend: self.backend.clone(),
            path: if self.files.is_empty() {
                blob_path(blobs, &self.digest)
            } else {
                snapshots.join(&self.digest)
            },
            projector: self.projector.as_ref().map(|d| blob_path(blobs, d)),
            settings: self.settings.clone(),
        }
    }

    /// The blobs this manifest uses: a GGUF model's file and its projector, or a directory
    /// model's files.
    pub fn blob_digests(&self) -> impl Iterator<Item = &str> {
        let file = self.files.is_empty().then_some(self.digest.as_str());
        file.into_iter()
            .chain(self.projector.as_deref())
            .chain(self.files.iter().map(|f| f.digest.as_str()))
    }

    /// The manifest of a directory model described as `model`, made of `files`.
    pub fn directory(model: &LibraryModel, files: Vec<ManifestFile>, modified_ms: u64) -> Manifest {
        Manifest {
            format_version: DIR_FORMAT_VERSION,
            name: model.name.clone(),
            source: model.source.clone(),
            digest: model.digest.clone(),
            size: files.iter().map(|f| f.size).sum(),
            modified_ms,
            format: model.format.clone(),
            architecture: model.architecture.clone(),
            n_params: model.n_params,
            quantization: model.quantization.clone(),
            context_length: model.context_length,
            chat_template: model.chat_template.clone(),
            license: model.license.clone(),
            kv_bytes_per_token: model.kv_bytes_per_token,
            fill_in_middle: model.fill_in_middle,
            files,
            backend: model.backend.clone(),
            projector: None,
            settings: model.settings.clone(),
        }
    }

    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read(path)
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, path)
    }

    /// Parses and checks a manifest's bytes; `path` only names it in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Manifest> {
        let bad = |reason: String| StoreError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let manifest: Manifest = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let expected = if manifest.files.is_empty() {
            FORMAT_VERSION
        } else {
            DIR_FORMAT_VERSION
        };
        if manifest.format_version != expected {
            return Err(bad(format!(
                "format version {} (this Minerva reads {FORMAT_VERSION} and {DIR_FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        // Digests name blobs and file names name links in a snapshot: a manifest must never
        // point outside the store.
        if !is_sha256_hex(&manifest.digest)
            || manifest
                .projector
                .as_ref()
                .is_some_and(|d| !is_sha256_hex(d))
        {
            return Err(bad("a digest is not 64 hex characters".into()));
        }
        for file in &manifest.files {
            if !is_sha256_hex(&file.digest) || !minerva_core::hf::is_model_file(&file.name) {
                return Err(bad(format!("invalid file entry '{}'", file.name)));
            }
        }
        if !manifest.files.is_empty() && snapshot_digest(&manifest.files) != manifest.digest {
            return Err(bad("the digest does not match the file list".into()));
        }
        Ok(manifest)
    }

    /// Writes the manifest to `path` atomically (a temporary file renamed over it).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| StoreError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let tmp = unique_temp(path);
        let result = write_synced(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io(format!("writing {}", path.display()), e));
        }
        Ok(())
    }
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// `<path>.tmp-<pid>-<n>`: a name no other writer uses.
pub(crate) fn unique_temp(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    PathBuf::from(name)
}

/// The digest of a directory model: sha256 of `name<TAB>digest<LF>` for each file, by name.
pub(crate) fn snapshot_digest(files: &[ManifestFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&ManifestFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hasher = Sha256::new();
    for f in sorted {
        hasher.update(format!("{}\t{}\n", f.name, f.digest).as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// `blobs/sha256-<hex>`.
pub(crate) fn blob_path(blobs: &Path, hex: &str) -> PathBuf {
    blobs.join(format!("sha256-{hex}"))
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
