//! Digests of models served by path (`minerva serve --model FILE|DIR`), which the store did
//! not hash on their way in: computed once, off the request path, and kept for the next start
//! in `<root>/path-digests.json`, keyed by the file's canonical path, size and modification
//! time (a file changed in place is hashed again).
//!
//! A GGUF file's digest is its sha256; a Hugging Face directory's is the sha256 of its file
//! list (see `dir.rs`), the digest `minerva import` would give the same directory.

use crate::manifest::{snapshot_digest, ManifestFile};
use crate::{Result, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

/// The cache file's name in the models root.
pub const CACHE_FILE: &str = "path-digests.json";

/// One cached digest and the file facts it is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    mtime_ns: u64,
    sha256: String,
}

/// The digests of files served by path, cached in a JSON file.
pub struct PathDigests {
    file: PathBuf,
    /// Serializes this process's updates of the cache file.
    lock: Mutex<()>,
}

impl PathDigests {
    /// The cache kept in the models root `root`.
    pub fn new(root: &Path) -> Self {
        PathDigests {
            file: root.join(CACHE_FILE),
            lock: Mutex::new(()),
        }
    }

    /// The digest of the model at `path`: a GGUF file's sha256, or a Hugging Face directory's
    /// file-list digest. Files are hashed only when the cache has no entry for their path,
    /// size and modification time. Blocking: call it from a blocking thread.
    pub fn digest(&self, path: &Path) -> Result<String> {
        if !path.is_dir() {
            return self.file_sha256(path);
        }
        let names = minerva_core::hf::model_files(path)?;
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let file = path.join(&name);
            let size = fs::metadata(&file)
                .map_err(|e| StoreError::io(format!("reading {}", file.display()), e))?
                .len();
            files.push(ManifestFile {
                digest: self.file_sha256(&file)?,
                name,
                size,
            });
        }
        Ok(snapshot_digest(&files))
    }

    /// The sha256 of one file, from the cache when its entry still matches.
    fn file_sha256(&self, path: &Path) -> Result<String> {
        let io = |e| StoreError::io(format!("reading {}", path.display()), e);
        let canonical = fs::canonicalize(path).map_err(io)?;
        let meta = fs::metadata(&canonical).map_err(io)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let key = canonical.display().to_string();
        if let Some(entry) = self.read().get(&key) {
            if entry.size == meta.len() && entry.mtime_ns == mtime_ns {
                return Ok(entry.sha256.clone());
            }
        }
        tracing::info!(path = %canonical.display(), bytes = meta.len(), "hashing a model served by path");
        let sha256 = sha256_of(&canonical)?;
        let entry = Entry {
            size: meta.len(),
            mtime_ns,
            sha256: sha256.clone(),
        };
        if let Err(e) = self.store(key, entry) {
            // The digest is still right; the next start hashes again.
            tracing::warn!(cache = %self.file.display(), error = %e, "could not save a model digest");
        }
        Ok(sha256)
    }

    fn read(&self) -> BTreeMap<String, Entry> {
        fs::read(&self.file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Adds an entry (read, modify, write to a temporary file, rename).
    fn store(&self, key: String, entry: Entry) -> Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read();
        all.insert(key, entry);
        let text = serde_json::to_vec_pretty(&all)
            .map_err(|e| StoreError::Invalid(format!("encoding the digest cache: {e}")))?;
        let tmp = self
            .file
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let write = |e| StoreError::io(format!("writing {}", tmp.display()), e);
        if let Some(dir) = self.file.parent() {
            fs::create_dir_all(dir).map_err(write)?;
        }
        fs::write(&tmp, text).map_err(write)?;
        fs::rename(&tmp, &self.file).map_err(write)
    }
}

/// The sha256 (hex) of a file's content.
fn sha256_of(path: &Path) -> Result<String> {
    let io = |e| StoreError::io(format!("reading {}", path.display()), e);
    let mut file = fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_and_cached_by_path_size_and_mtime() {
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("m.gguf");
        fs::write(&model, b"abc").unwrap();
        let digests = PathDigests::new(root.path());
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(digests.digest(&model).unwrap(), abc);
        let cached = fs::read_to_string(root.path().join(CACHE_FILE)).unwrap();
        assert!(cached.contains(abc));
        // The cache answers without reading the file: an entry that says otherwise wins...
        let key = fs::canonicalize(&model).unwrap().display().to_string();
        let mut all = digests.read();
        all.get_mut(&key).unwrap().sha256 = "cached".into();
        fs::write(
            root.path().join(CACHE_FILE),
            serde_json::to_vec(&all).unwrap(),
        )
        .unwrap();
        assert_eq!(digests.digest(&model).unwrap(), "cached");
        // ...until the file changes.
        fs::write(&model, b"abcd").unwrap();
        assert_ne!(digests.digest(&model).unwrap(), "cached");
    }
}
