//! [`Store`]: manifests over content-addressed blobs, implementing [`Library`].

use crate::download::{self, remove};
use crate::gguf::{self, GgufInfo};
use crate::hub::{self, Source};
use crate::manifest::{blob_path, now_ms, unique_temp, Manifest, FORMAT_VERSION};
use crate::name::{is_sha256_hex, parse_digest, ModelName};
use crate::{http, Result, StoreError};
use minerva_core::{Library, LibraryModel, PullProgress};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

/// A model store in a directory (see the crate's note for the layout).
///
/// Changes that make or drop a name (a blob renamed into place and its manifest written; a
/// manifest removed and the blobs collected) hold the store's lock, so a pull and a removal in
/// one process never race. Two processes on one store only share the per-download lock files.
pub struct Store {
    dir: PathBuf,
    pub(crate) blobs: PathBuf,
    pub(crate) snapshots: PathBuf,
    manifests: PathBuf,
    pub(crate) endpoint: String,
    pub(crate) agent: ureq::Agent,
    lock: Mutex<()>,
}

/// How [`Store::import_with`] treats the file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// What the manifest records as the source (default: the file's path).
    pub source: Option<String>,
    /// The file's sha256 when the caller has already verified it (`minerva fetch`): the file
    /// is not hashed again. Its GGUF structure is always checked.
    pub verified_sha256: Option<String>,
}

impl Store {
    /// Opens (creating when needed) the store in `dir`. The hub is `$HF_ENDPOINT` or
    /// huggingface.co ([`hub::default_endpoint`]).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let dir = dir.into();
        let blobs = dir.join("blobs");
        let manifests = dir.join("manifests");
        let snapshots = dir.join("snapshots");
        for d in [&blobs, &manifests, &snapshots] {
            fs::create_dir_all(d)
                .map_err(|e| StoreError::io(format!("creating {}", d.display()), e))?;
        }
        Ok(Store {
            dir,
            blobs,
            snapshots,
            manifests,
            endpoint: hub::default_endpoint(),
            agent: http::agent(),
            lock: Mutex::new(()),
        })
    }

    /// Uses another hub base URL (e.g. a local stand-in).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Store {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn guard(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock leaves no half-state the files do not show: go on.
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn manifest_path(&self, name: &ModelName) -> PathBuf {
        self.manifests.join(format!("{}.json", name.key()))
    }

    /// The library's view of a manifest (with the blob's or the snapshot's path).
    pub(crate) fn model(&self, manifest: &Manifest) -> LibraryModel {
        manifest.to_model(&self.blobs, &self.snapshots)
    }

    /// Every model, sorted by name. Unreadable manifests are skipped with a warning.
    pub fn list(&self) -> Result<Vec<LibraryModel>> {
        let mut models: Vec<LibraryModel> =
            self.manifests()?.iter().map(|m| self.model(m)).collect();
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    fn manifests(&self) -> Result<Vec<Manifest>> {
        let entries = fs::read_dir(&self.manifests)
            .map_err(|e| StoreError::io(format!("reading {}", self.manifests.display()), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_suffix(".json"))
            else {
                continue;
            };
            if !is_sha256_hex(stem) {
                continue;
            }
            match Manifest::read(&path) {
                Ok(m) if ModelName::parse(&m.name).is_ok_and(|n| n.key() == stem) => out.push(m),
                Ok(m) => {
                    tracing::warn!(path = %path.display(), name = %m.name, "manifest filed under another name; skipped")
                }
                Err(e) => tracing::warn!(error = %e, "skipped"),
            }
        }
        Ok(out)
    }

    /// The model with this name (no tag means `latest`).
    pub fn get(&self, name: &str) -> Result<LibraryModel> {
        let name = ModelName::parse(name)?;
        let path = self.manifest_path(&name);
        if !path.is_file() {
            return Err(StoreError::NotFound(name.to_string()));
        }
        let manifest = Manifest::read(&path)?;
        if !manifest.files.is_empty() {
            // A snapshot removed by hand is made again from the blobs.
            self.ensure_snapshot(&manifest.name, &manifest.digest, &manifest.files)?;
        }
        Ok(self.model(&manifest))
    }

    /// Records the backend `name` is to be loaded with (`None`: by its format). Backend names
    /// are short identifiers (`llama.cpp`, `mlx`); which backend can load which format is the
    /// engine's to check.
    pub fn set_backend(&self, name: &str, backend: Option<&str>) -> Result<LibraryModel> {
        let name = ModelName::parse(name)?;
        if let Some(b) = backend {
            let ok = !b.is_empty()
                && b.len() <= 32
                && b.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._+-".contains(c));
            if !ok {
                return Err(StoreError::Invalid(format!("invalid backend name '{b}'")));
            }
        }
        let path = self.manifest_path(&name);
        let _guard = self.guard();
        if !path.is_file() {
            return Err(StoreError::NotFound(name.to_string()));
        }
        let mut manifest = Manifest::read(&path)?;
        manifest.backend = backend.map(str::to_string);
        manifest.write(&path)?;
        tracing::info!(model = %name, backend = ?backend, "backend set");
        Ok(self.model(&manifest))
    }

    /// Deletes the model's manifest, then every blob no manifest uses.
    pub fn remove(&self, name: &str) -> Result<()> {
        let name = ModelName::parse(name)?;
        let path = self.manifest_path(&name);
        let _guard = self.guard();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_string()))
            }
            Err(e) => return Err(StoreError::io(format!("removing {}", path.display()), e)),
        }
        tracing::info!(model = %name, "removed");
        self.collect_garbage()?;
        Ok(())
    }

    /// Deletes the blobs and snapshots no manifest uses (partial downloads stay, to be
    /// resumed). Returns how many blobs went. The caller holds the lock.
    pub(crate) fn collect_garbage(&self) -> Result<usize> {
        let manifests = self.manifests()?;
        let snapshots: HashSet<&str> = manifests
            .iter()
            .filter(|m| !m.files.is_empty())
            .map(|m| m.digest.as_str())
            .collect();
        self.remove_snapshots_but(&snapshots)?;
        let used: HashSet<&str> = manifests
            .iter()
            .flat_map(|m| {
                let files = m.files.iter().map(|f| f.digest.as_str());
                std::iter::once(m.digest.as_str())
                    .filter(|_| m.files.is_empty())
                    .chain(files)
            })
            .collect();
        let entries = fs::read_dir(&self.blobs)
            .map_err(|e| StoreError::io(format!("reading {}", self.blobs.display()), e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(hex) = file.to_str().and_then(|f| f.strip_prefix("sha256-")) else {
                continue;
            };
            if is_sha256_hex(hex) && !used.contains(hex) {
                fs::remove_file(entry.path()).map_err(|e| {
                    StoreError::io(format!("removing {}", entry.path().display()), e)
                })?;
                tracing::info!(blob = %hex, "removed unused blob");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Makes `to` a second name for the model `from` (same blob; `to` is replaced if it exists).
    pub fn copy(&self, from: &str, to: &str) -> Result<LibraryModel> {
        let from = ModelName::parse(from)?;
        let to = ModelName::parse(to)?;
        let path = self.manifest_path(&from);
        if !path.is_file() {
            return Err(StoreError::NotFound(from.to_string()));
        }
        let _guard = self.guard();
        let mut manifest = Manifest::read(&path)?;
        manifest.name = to.to_string();
        manifest.modified_ms = now_ms();
        manifest.write(&self.manifest_path(&to))?;
        tracing::info!(from = %from, to = %to, "copied");
        Ok(self.model(&manifest))
    }

    /// Adds a local GGUF file under `name` (see [`Store::import_with`]).
    pub fn import(&self, path: &Path, name: &str) -> Result<LibraryModel> {
        self.import_with(path, name, &ImportOptions::default())
    }

    /// Adds a local GGUF file or Hugging Face model directory under `name`. The file is
    /// validated before anything enters the store; then it is hard-linked into the blobs (on
    /// the same file system) or copied, and hashed either way unless `options.verified_sha256`
    /// vouches for it. A directory goes file by file ([`Store::import_dir`]).
    pub fn import_with(
        &self,
        path: &Path,
        name: &str,
        options: &ImportOptions,
    ) -> Result<LibraryModel> {
        let name = ModelName::parse(name)?;
        let trusted = options
            .verified_sha256
            .as_deref()
            .map(parse_digest)
            .transpose()?;
        let meta = fs::metadata(path)
            .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
        if meta.is_dir() {
            return self.import_dir(path, &name, options.source.clone());
        }
        if !gguf::has_magic(path)? {
            return Err(StoreError::InvalidGguf {
                path: path.to_path_buf(),
                reason: "not a GGUF file (it does not start with the GGUF magic)".into(),
            });
        }
        gguf::read(path)?;
        let tmp = unique_temp(&self.blobs.join("import.partial"));
        let result = self
            .import_blob(path, &tmp, trusted.as_deref())
            .and_then(|(sha, size)| {
                let info = gguf::read(&tmp)?;
                let source = options.source.clone().unwrap_or_else(|| {
                    fs::canonicalize(path)
                        .unwrap_or_else(|_| path.to_path_buf())
                        .display()
                        .to_string()
                });
                self.commit(&name, source, &sha, size, &info, Some(&tmp))
            });
        remove(&tmp);
        result
    }

    /// Hard-links (or copies) `src` to `tmp` and returns its sha256 and size.
    pub(crate) fn import_blob(
        &self,
        src: &Path,
        tmp: &Path,
        trusted: Option<&str>,
    ) -> Result<(String, u64)> {
        let io = |what: &str, e| StoreError::io(format!("{what} {}", tmp.display()), e);
        if fs::hard_link(src, tmp).is_ok() {
            let size = fs::metadata(tmp).map_err(|e| io("reading", e))?.len();
            if let Some(sha) = trusted {
                return Ok((sha.to_string(), size));
            }
            let mut hasher = Sha256::new();
            let mut file = fs::File::open(tmp).map_err(|e| io("reading", e))?;
            let size = stream(&mut file, &mut |buf| {
                hasher.update(buf);
                Ok(())
            })
            .map_err(|e| io("reading", e))?;
            return Ok((hex::encode(hasher.finalize()), size));
        }
        let mut out = fs::File::create(tmp).map_err(|e| io("creating", e))?;
        let mut hasher = Sha256::new();
        let mut input = fs::File::open(src)
            .map_err(|e| StoreError::io(format!("reading {}", src.display()), e))?;
        let size = stream(&mut input, &mut |buf| {
            hasher.update(buf);
            out.write_all(buf)
        })
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                StoreError::DiskFull(tmp.to_path_buf())
            } else {
                io("copying to", e)
            }
        })?;
        out.sync_all().map_err(|e| io("writing", e))?;
        let sha = hex::encode(hasher.finalize());
        if let Some(expected) = trusted.filter(|t| *t != sha) {
            return Err(StoreError::DigestMismatch {
                what: src.display().to_string(),
                expected: expected.to_string(),
                actual: sha,
            });
        }
        Ok((sha, size))
    }

    /// Under the lock: renames the verified `file` (if any) to its blob name and writes the
    /// manifest.
    fn commit(
        &self,
        name: &ModelName,
        source: String,
        sha: &str,
        size: u64,
        info: &GgufInfo,
        file: Option<&Path>,
    ) -> Result<LibraryModel> {
        let _guard = self.guard();
        let blob = blob_path(&self.blobs, sha);
        match file {
            Some(file) if !blob.exists() => {
                fs::rename(file, &blob).map_err(|e| {
                    StoreError::io(
                        format!("renaming {} to {}", file.display(), blob.display()),
                        e,
                    )
                })?;
            }
            Some(file) => remove(file),
            None if !blob.is_file() => {
                return Err(StoreError::NotFound(format!(
                    "blob sha256:{sha} (removed while pulling; pull again)"
                )));
            }
            None => {}
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            name: name.to_string(),
            source,
            digest: sha.to_string(),
            size,
            modified_ms: now_ms(),
            format: "gguf".into(),
            architecture: info.architecture.clone(),
            n_params: Some(info.n_params),
            quantization: info.quantization.clone(),
            context_length: info.context_length,
            chat_template: info.chat_template.clone(),
            license: info.license.clone(),
            kv_bytes_per_token: info.kv_bytes_per_token,
            fill_in_middle: info.fill_in_middle,
            files: Vec::new(),
            backend: None,
            projector: None,
        };
        manifest.write(&self.manifest_path(name))?;
        tracing::info!(model = %name, digest = %sha, size, "added to the store");
        Ok(self.model(&manifest))
    }

    /// Downloads, verifies and adds a model (see the `hub` module for the sources).
    pub fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> Result<LibraryModel> {
        let parsed = Source::parse(source)?;
        let name = match name {
            Some(n) => ModelName::parse(n)?,
            None => ModelName::parse(&parsed.default_name())
                .map_err(|e| StoreError::Invalid(format!("{e}; give the model a name (--name)")))?,
        };
        progress(status("pulling manifest"));
        let url = match self.resolve(&parsed)? {
            Resolved::File(url) => url,
            Resolved::Directory { base, files } => {
                tracing::info!(%source, %base, model = %name, files = files.len(), "pulling a model directory");
                let model = self.pull_dir(&name, &base, &files, progress, cancel)?;
                progress(status("success"));
                return Ok(model);
            }
        };
        tracing::info!(%source, %url, model = %name, "pulling");
        let got = download::download(&self.agent, &url, &self.blobs, progress, cancel, true)?;
        progress(status("writing manifest"));
        let partial = got.partial.as_ref().map(|(p, _lock)| p.as_path());
        let Some(info) = &got.info else {
            return Err(StoreError::Invalid(format!("{url}: not read as GGUF")));
        };
        let model = self.commit(&name, url, &got.sha256, got.size, info, partial)?;
        progress(status("success"));
        Ok(model)
    }

    /// The URL of the file a source names (listing the repository for a quantization), or the
    /// files of a Hugging Face model directory when the repository has no GGUF.
    fn resolve(&self, source: &Source) -> Result<Resolved> {
        let (owner, repo, file) = match source {
            Source::Url(url) => return Ok(Resolved::File(url.clone())),
            Source::HubFile { owner, repo, file } => (owner, repo, file.clone()),
            Source::HubRepo { owner, repo, quant } => {
                let api = format!("{}/api/models/{owner}/{repo}", self.endpoint);
                let listing = http::get_json(&self.agent, &api)?;
                let files: Vec<String> = listing
                    .get("siblings")
                    .and_then(|s| s.as_array())
                    .map(|s| {
                        s.iter()
                            .filter_map(|f| {
                                f.get("rfilename")
                                    .and_then(|n| n.as_str())
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let reference = format!("{owner}/{repo}");
                if let Some(files) = hub::model_directory(&files, quant.as_deref(), &reference)? {
                    return Ok(Resolved::Directory {
                        base: format!("{}/{owner}/{repo}/resolve/main", self.endpoint),
                        files,
                    });
                }
                let file = hub::pick_file(&files, quant.as_deref(), &reference)?;
                (owner, repo, file)
            }
        };
        Ok(Resolved::File(format!(
            "{}/{owner}/{repo}/resolve/main/{}",
            self.endpoint,
            hub::encode_path(&file)
        )))
    }
}

/// What a pull source resolves to.
enum Resolved {
    /// One GGUF file.
    File(String),
    /// A Hugging Face model directory: its files under `base`.
    Directory { base: String, files: Vec<String> },
}

pub(crate) fn status(s: &str) -> PullProgress {
    PullProgress::status(s)
}

/// Reads `input` to its end in 1 MiB chunks; returns the byte count.
fn stream(
    input: &mut dyn Read,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink(&buf[..n])?;
        total += n as u64;
    }
}

impl Library for Store {
    fn list(&self) -> minerva_core::Result<Vec<LibraryModel>> {
        Ok(Store::list(self)?)
    }

    fn get(&self, name: &str) -> minerva_core::Result<LibraryModel> {
        Ok(Store::get(self, name)?)
    }

    fn remove(&self, name: &str) -> minerva_core::Result<()> {
        Ok(Store::remove(self, name)?)
    }

    fn copy(&self, from: &str, to: &str) -> minerva_core::Result<()> {
        Store::copy(self, from, to)?;
        Ok(())
    }

    fn set_backend(&self, name: &str, backend: Option<&str>) -> minerva_core::Result<LibraryModel> {
        Ok(Store::set_backend(self, name, backend)?)
    }

    fn import(&self, path: &Path, name: &str) -> minerva_core::Result<LibraryModel> {
        Ok(Store::import(self, path, name)?)
    }

    fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> minerva_core::Result<LibraryModel> {
        Ok(Store::pull(self, source, name, progress, cancel)?)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(crate) mod tests;
