//! Directory models (Hugging Face safetensors, MLX-quantized): one blob per file, and a
//! snapshot directory of links to them that a backend loads, as the hub's own cache does.
//!
//! ```text
//! <dir>/snapshots/<digest>/<file name> -> ../../blobs/sha256-<hex>
//! ```
//!
//! The digest of a directory model is the sha256 of its file list (names and digests), so two
//! names of one model share a snapshot. Every file is hashed on its way in (an import) or
//! verified against the hub's sha256 and size (a pull); the assembled snapshot is then read as
//! a model ([`hf::read_config`]: config, tokenizer configs, every safetensors header against
//! its file) before the manifest is written, so a directory that does not load never gets a
//! name. A snapshot removed by hand is made again from the blobs.

use crate::download::{self, remove};
use crate::hub;
use crate::manifest::{blob_path, now_ms, snapshot_digest, unique_temp, Manifest, ManifestFile};
use crate::name::{is_sha256_hex, ModelName};
use crate::store::{status, Store};
use crate::{Result, StoreError};
use minerva_core::{hf, LibraryModel, PullProgress};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A file on its way into the store.
struct Staged {
    /// Its name in the model directory.
    name: String,
    digest: String,
    size: u64,
    /// The verified file to rename to its blob name (`None`: the blob is already there).
    tmp: Option<PathBuf>,
}

impl Store {
    /// Adds a Hugging Face model directory: every model file ([`hf::is_model_file`]) is
    /// hard-linked (or copied) into the blobs and hashed.
    pub(crate) fn import_dir(
        &self,
        dir: &Path,
        name: &ModelName,
        source: Option<String>,
    ) -> Result<LibraryModel> {
        hf::read_config(dir)?;
        let files = hf::model_files(dir)?;
        let mut staged: Vec<Staged> = Vec::with_capacity(files.len());
        let result = (|| {
            for file in &files {
                // The file itself, not a link to it (hard-linking a link links the link).
                let src = fs::canonicalize(dir.join(file)).map_err(|e| {
                    StoreError::io(format!("reading {}", dir.join(file).display()), e)
                })?;
                let tmp = unique_temp(&self.blobs.join("import.partial"));
                staged.push(Staged {
                    name: file.clone(),
                    digest: String::new(),
                    size: 0,
                    tmp: Some(tmp.clone()),
                });
                let (digest, size) = self.import_blob(&src, &tmp, None)?;
                if let Some(last) = staged.last_mut() {
                    last.digest = digest;
                    last.size = size;
                }
            }
            let source = source.unwrap_or_else(|| {
                fs::canonicalize(dir)
                    .unwrap_or_else(|_| dir.to_path_buf())
                    .display()
                    .to_string()
            });
            self.commit_dir(name, source, &mut staged)
        })();
        for tmp in staged.iter().filter_map(|s| s.tmp.as_deref()) {
            remove(tmp);
        }
        result
    }

    /// Downloads a model directory's `files` from `base` (`…/resolve/main`), each verified and
    /// resumable like a GGUF pull, then adds the model.
    pub(crate) fn pull_dir(
        &self,
        name: &ModelName,
        base: &str,
        files: &[String],
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> Result<LibraryModel> {
        let mut staged = Vec::with_capacity(files.len());
        // Each partial's lock is held until the files are in the store.
        let mut locks = Vec::new();
        for file in files {
            let url = format!("{base}/{}", hub::encode_path(file));
            let got = download::download(&self.agent, &url, &self.blobs, progress, cancel, false)?;
            let tmp = got.partial.map(|(path, lock)| {
                locks.push(lock);
                path
            });
            staged.push(Staged {
                name: file.clone(),
                digest: got.sha256,
                size: got.size,
                tmp,
            });
        }
        progress(status("writing manifest"));
        let source = base
            .strip_suffix("/resolve/main")
            .unwrap_or(base)
            .to_string();
        self.commit_dir(name, source, &mut staged)
    }

    /// Under the lock: renames the staged files to their blob names, makes the snapshot, reads
    /// it as a model and writes the manifest. A snapshot that does not read as a model is
    /// removed with its blobs (unless another model uses them).
    fn commit_dir(
        &self,
        name: &ModelName,
        source: String,
        staged: &mut [Staged],
    ) -> Result<LibraryModel> {
        let _guard = self.guard();
        for file in staged.iter_mut() {
            let blob = blob_path(&self.blobs, &file.digest);
            match file.tmp.take() {
                Some(tmp) if !blob.exists() => fs::rename(&tmp, &blob).map_err(|e| {
                    StoreError::io(
                        format!("renaming {} to {}", tmp.display(), blob.display()),
                        e,
                    )
                })?,
                Some(tmp) => remove(&tmp),
                None if !blob.is_file() => {
                    return Err(StoreError::NotFound(format!(
                        "blob sha256:{} (removed while pulling; pull again)",
                        file.digest
                    )))
                }
                None => {}
            }
        }
        let files: Vec<ManifestFile> = staged
            .iter()
            .map(|f| ManifestFile {
                name: f.name.clone(),
                digest: f.digest.clone(),
                size: f.size,
            })
            .collect();
        let digest = snapshot_digest(&files);
        let snapshot = self.ensure_snapshot(&name.to_string(), &digest, &files)?;
        let config = match hf::read_config(&snapshot) {
            Ok(config) => config,
            Err(e) => {
                self.collect_garbage()?;
                return Err(e.into());
            }
        };
        let described = config.library_model(
            name.to_string(),
            source,
            digest,
            snapshot,
            std::time::UNIX_EPOCH,
        );
        let manifest = Manifest::directory(&described, files, now_ms());
        self.write_manifest(name, &manifest)?;
        tracing::info!(model = %name, digest = %manifest.digest, files = manifest.files.len(), size = manifest.size, format = %manifest.format, "added to the store");
        Ok(self.model(&manifest))
    }

    /// The snapshot directory `digest` of the directory model `model`, made (or mended) from
    /// the blobs of its `files`.
    pub(crate) fn ensure_snapshot(
        &self,
        model: &str,
        digest: &str,
        files: &[ManifestFile],
    ) -> Result<PathBuf> {
        let dir = self.snapshots.join(digest);
        if snapshot_complete(&dir, files) {
            return Ok(dir);
        }
        for file in files {
            if !blob_path(&self.blobs, &file.digest).is_file() {
                return Err(StoreError::NotFound(format!(
                    "file {} of model '{model}' (blob sha256:{}); pull or import the model again",
                    file.name, file.digest
                )));
            }
        }
        let tmp = unique_temp(&dir);
        let io =
            |what: &str, path: &Path, e| StoreError::io(format!("{what} {}", path.display()), e);
        fs::create_dir_all(&tmp).map_err(|e| io("creating", &tmp, e))?;
        let made = (|| {
            for file in files {
                let link = tmp.join(&file.name);
                link_blob(&self.blobs, &file.digest, &link).map_err(|e| io("linking", &link, e))?;
            }
            if dir.exists() {
                fs::remove_dir_all(&dir).map_err(|e| io("removing", &dir, e))?;
            }
            fs::rename(&tmp, &dir).map_err(|e| io("renaming to", &dir, e))
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&tmp);
            // Another thread may have made it meanwhile.
            if snapshot_complete(&dir, files) {
                return Ok(dir);
            }
        }
        made?;
        Ok(dir)
    }

    /// Removes every snapshot whose digest is not in `keep` (the caller holds the lock).
    pub(crate) fn remove_snapshots_but(&self, keep: &HashSet<&str>) -> Result<()> {
        let entries = fs::read_dir(&self.snapshots)
            .map_err(|e| StoreError::io(format!("reading {}", self.snapshots.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if is_sha256_hex(name) && !keep.contains(name) {
                fs::remove_dir_all(entry.path()).map_err(|e| {
                    StoreError::io(format!("removing {}", entry.path().display()), e)
                })?;
                tracing::info!(snapshot = %name, "removed unused snapshot");
            }
        }
        Ok(())
    }
}

/// The link target of a file in a snapshot (relative, so the store can move).
fn link_target(digest: &str) -> PathBuf {
    Path::new("../../blobs").join(format!("sha256-{digest}"))
}

#[cfg(unix)]
fn link_blob(_blobs: &Path, digest: &str, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(link_target(digest), link)
}

#[cfg(not(unix))]
fn link_blob(blobs: &Path, digest: &str, link: &Path) -> std::io::Result<()> {
    fs::hard_link(blob_path(blobs, digest), link)
}

/// True when the snapshot has a link to the right blob for every file.
fn snapshot_complete(dir: &Path, files: &[ManifestFile]) -> bool {
    files.iter().all(|f| {
        let link = dir.join(&f.name);
        if cfg!(unix) {
            fs::read_link(&link).is_ok_and(|t| t == link_target(&f.digest)) && link.is_file()
        } else {
            link.is_file()
        }
    })
}

#[cfg(test)]
#[path = "dir_tests.rs"]
mod tests;
