//! Manifests: one JSON file per model name, written atomically.

use crate::name::is_sha256_hex;
use crate::{Result, StoreError};
use minerva_core::LibraryModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest format this code writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// What a manifest file holds: every fact of a [`LibraryModel`] but its path (the blob's path
/// follows from the digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub source: String,
    /// Hex sha256 of the model file (its blob).
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
}

impl Manifest {
    /// The library's view of this manifest, with the blob's path.
    pub fn to_model(&self, blobs: &Path) -> LibraryModel {
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
            path: blob_path(blobs, &self.digest),
        }
    }

    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> Result<Manifest> {
        let bad = |reason: String| StoreError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read(path)
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this Minerva reads {FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        // The digest names a blob: a manifest must never point outside the blobs directory.
        if !is_sha256_hex(&manifest.digest) {
            return Err(bad("the digest is not 64 hex characters".into()));
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
