//! [`Store`]: manifests over content-addressed blobs, implementing [`Library`].

use crate::download::{self, remove};
use crate::gguf::{self, GgufInfo};
use crate::guard::{self, UrlPolicy};
use crate::hub::{self, Source};
use crate::manifest::{blob_path, now_ms, unique_temp, Manifest, FORMAT_VERSION};
use crate::name::{is_sha256_hex, parse_digest, ModelName};
use crate::{http, Result, StoreError};
use minerva_core::{Library, LibraryModel, ModelSettings, PullProgress};
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
    /// What a pull of a plain URL may reach ([`Store::with_url_policy`]).
    url_policy: UrlPolicy,
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
    /// A vision projector (llama.cpp's `mmproj` GGUF) to keep with a GGUF model: checked
    /// ([`gguf::read_projector`]) before anything enters the store, added as a blob, and
    /// recorded in the manifest.
    pub projector: Option<PathBuf>,
}

/// A verified file on its way to its blob name.
pub(crate) struct Incoming<'a> {
    pub sha: String,
    pub size: u64,
    /// The file to rename to the blob's name (`None`: the blob is already in the store).
    pub file: Option<&'a Path>,
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
            url_policy: UrlPolicy::Any,
            lock: Mutex::new(()),
        })
    }

    /// Uses another hub base URL (e.g. a local stand-in).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Store {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// Restricts what a pull of a plain URL may reach (default [`UrlPolicy::Any`]). Under
    /// [`UrlPolicy::PublicHttps`] an `http://` URL is refused with [`StoreError::Invalid`], and
    /// so is a host (first or after a redirect) that resolves to no public address.
    pub fn with_url_policy(mut self, policy: UrlPolicy) -> Store {
        self.url_policy = policy;
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
        // A manifest this Minerva cannot read (another version's, a damaged one) may still
        // name blobs: every digest-like string in it is kept.
        let kept = self.digests_in_unreadable_manifests();
        let snapshots: HashSet<&str> = snapshots
            .into_iter()
            .chain(kept.iter().map(String::as_str))
            .collect();
        self.remove_snapshots_but(&snapshots)?;
        let used: HashSet<&str> = manifests
            .iter()
            .flat_map(Manifest::blob_digests)
            .chain(kept.iter().map(String::as_str))
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

    /// Every run of 64 hex digits in the manifest files that do not read as this Minerva's
    /// manifests: the blobs and snapshots they may name, which garbage collection keeps.
    fn digests_in_unreadable_manifests(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.manifests) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().and_then(|e| e.to_str()) != Some("json")
                || Manifest::read(&path).is_ok()
            {
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let bytes = text.as_bytes();
            let mut start = 0;
            while start < bytes.len() {
                let run = bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                    .count();
                if run == 64 {
                    out.push(text[start..start + 64].to_string());
                }
                start += run.max(1);
            }
        }
        out
    }

    /// Under the lock: writes `manifest` as `name`'s. When it replaces a manifest that used
    /// other files (another model file, a projector the new one does not have), the blobs no
    /// name uses any more are removed.
    pub(crate) fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path(name);
        let old = path.is_file().then(|| Manifest::read(&path).ok()).flatten();
        manifest.write(&path)?;
        let replaced = old.is_some_and(|old| {
            old.digest != manifest.digest || old.projector != manifest.projector
        });
        if replaced {
            if let Err(e) = self.collect_garbage() {
                tracing::warn!(model = %name, error = %e, "cannot remove the files the replaced model used");
            }
        }
        Ok(())
    }

    /// Makes `to` a second name for the model `from` (same blobs, the projector's too; `to` is
    /// replaced if it exists).
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
        self.write_manifest(&to, &manifest)?;
        tracing::info!(from = %from, to = %to, "copied");
        Ok(self.model(&manifest))
    }

    /// Adds a local GGUF file under `name` (see [`Store::import_with`]).
    pub fn import(&self, path: &Path, name: &str) -> Result<LibraryModel> {
        self.import_with(path, name, &ImportOptions::default())
    }

    /// Adds a local GGUF file or Hugging Face model directory under `name`. The file (and the
    /// projector, `options.projector`) is validated before anything enters the store; then it
    /// is hard-linked into the blobs (on the same file system) or copied, and hashed either way
    /// unless `options.verified_sha256` vouches for it. A directory goes file by file
    /// ([`Store::import_dir`]). A name that exists is replaced: its projector is the one given
    /// now (none without `options.projector`).
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
            if options.projector.is_some() {
                return Err(StoreError::Invalid(
                    "a projector (--mmproj) goes with a GGUF model file, not a model directory"
                        .into(),
                ));
            }
            return self.import_dir(path, &name, options.source.clone());
        }
        if !gguf::has_magic(path)? {
            return Err(StoreError::InvalidGguf {
                path: path.to_path_buf(),
                reason: "not a GGUF file (it does not start with the GGUF magic)".into(),
            });
        }
        let model_info = gguf::read_model(path)?;
        if let Some(projector) = &options.projector {
            let projector_info = gguf::read_projector(projector)?;
            gguf::check_pair(&model_info, &projector_info, projector)?;
        }
        let tmp = unique_temp(&self.blobs.join("import.partial"));
        let projector_tmp = options
            .projector
            .as_ref()
            .map(|_| unique_temp(&self.blobs.join("import.partial")));
        let result = (|| {
            let (sha, size) = self.import_blob(path, &tmp, trusted.as_deref())?;
            // What enters the store is the copy: it is read again.
            let info = gguf::read_model(&tmp)?;
            let projector = match (&options.projector, &projector_tmp) {
                (Some(src), Some(ptmp)) => {
                    let (sha, size) = self.import_blob(src, ptmp, None)?;
                    gguf::read_projector(ptmp)?;
                    Some(Incoming {
                        sha,
                        size,
                        file: Some(ptmp.as_path()),
                    })
                }
                _ => None,
            };
            let source = options.source.clone().unwrap_or_else(|| {
                fs::canonicalize(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .display()
                    .to_string()
            });
            let model = Incoming {
                sha,
                size,
                file: Some(&tmp),
            };
            self.commit(&name, source, model, &info, projector)
        })();
        remove(&tmp);
        if let Some(ptmp) = &projector_tmp {
            remove(ptmp);
        }
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

    /// The caller holds the lock: renames the verified file (if any) to its blob name, or
    /// checks that the blob is still there.
    fn place(&self, incoming: &Incoming) -> Result<()> {
        let sha = &incoming.sha;
        let blob = blob_path(&self.blobs, sha);
        match incoming.file {
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
        Ok(())
    }

    /// Under the lock: renames the verified model file and projector (if any) to their blob
    /// names and writes the manifest.
    pub(crate) fn commit(
        &self,
        name: &ModelName,
        source: String,
        model: Incoming,
        info: &GgufInfo,
        projector: Option<Incoming>,
    ) -> Result<LibraryModel> {
        let _guard = self.guard();
        self.place(&model)?;
        if let Some(projector) = &projector {
            self.place(projector)?;
        }
        let Incoming { sha, size, .. } = model;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            name: name.to_string(),
            source,
            digest: sha.clone(),
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
            projector: projector.map(|p| p.sha),
            settings: ModelSettings::default(),
        };
        self.write_manifest(name, &manifest)?;
        tracing::info!(model = %name, digest = %sha, size, projector = ?manifest.projector, "added to the store");
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
        let guarded;
        let agent = match (&parsed, self.url_policy) {
            (Source::Url(url), UrlPolicy::PublicHttps) => {
                guard::check_url(url)?;
                guarded = http::guarded_agent();
                &guarded
            }
            _ => &self.agent,
        };
        let name = match name {
            Some(n) => ModelName::parse(n)?,
            None => ModelName::parse(&parsed.default_name())
                .map_err(|e| StoreError::Invalid(format!("{e}; give the model a name (--name)")))?,
        };
        progress(status("pulling manifest"));
        let (url, projector) = match self.resolve(&parsed)? {
            Resolved::File { url, projector } => (url, projector),
            Resolved::Directory { base, files } => {
                tracing::info!(%source, %base, model = %name, files = files.len(), "pulling a model directory");
                let model = self.pull_dir(&name, &base, &files, progress, cancel)?;
                progress(status("success"));
                return Ok(model);
            }
        };
        tracing::info!(%source, %url, projector = ?projector, model = %name, "pulling");
        // The projector first: it is small, and one that fails its checks fails the pull
        // before the model is downloaded.
        let projector = projector
            .map(|url| self.pull_gguf(agent, &url, progress, cancel, gguf::check_projector))
            .transpose()?;
        let got = match self.pull_gguf(agent, &url, progress, cancel, gguf::check_model) {
            Ok(got) => got,
            Err(e) => {
                // A pull that stopped (cancelled, the network, another pull) resumes next
                // time; one that failed leaves nothing behind.
                let resumable = matches!(
                    e,
                    StoreError::Cancelled | StoreError::Http(_) | StoreError::Busy(_)
                );
                if let Some(projector) = projector.filter(|_| !resumable) {
                    projector.discard();
                }
                return Err(e);
            }
        };
        progress(status("writing manifest"));
        let Some(info) = got.info.clone() else {
            return Err(StoreError::Invalid(format!("{url}: not read as GGUF")));
        };
        // A projector made for another model: neither file enters the store.
        let mismatch = projector
            .as_ref()
            .and_then(|p| p.info.as_ref().map(|pinfo| (p, pinfo)))
            .and_then(|(p, pinfo)| {
                let at = p.file().map(Path::to_path_buf).unwrap_or_default();
                gguf::check_pair(&info, pinfo, &at).err()
            });
        if let Some(e) = mismatch {
            got.discard();
            if let Some(projector) = projector {
                projector.discard();
            }
            return Err(e);
        }
        let info = &info;
        let model = Incoming {
            sha: got.sha256.clone(),
            size: got.size,
            file: got.file(),
        };
        let incoming = projector.as_ref().map(|p| Incoming {
            sha: p.sha256.clone(),
            size: p.size,
            file: p.file(),
        });
        let model = self.commit(&name, url, model, info, incoming)?;
        progress(status("success"));
        Ok(model)
    }

    /// Downloads a GGUF file, verifies it (size, sha256, structure) and checks what it is
    /// (`check`: a model, a projector); a file that fails the check is removed.
    fn pull_gguf(
        &self,
        agent: &ureq::Agent,
        url: &str,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
        check: fn(&GgufInfo, &Path) -> Result<()>,
    ) -> Result<download::Downloaded> {
        let got = download::download(agent, url, &self.blobs, progress, cancel, true)?;
        let checked = match &got.info {
            Some(info) => check(info, Path::new(url)),
            None => Err(StoreError::Invalid(format!("{url}: not read as GGUF"))),
        };
        match checked {
            Ok(()) => Ok(got),
            Err(e) => {
                got.discard();
                Err(e)
            }
        }
    }

    /// The URL of the file a source names (listing the repository for a quantization, and
    /// finding the vision projector beside it, [`hub::pick_projector`]), or the files of a
    /// Hugging Face model directory when the repository has no GGUF.
    fn resolve(&self, source: &Source) -> Result<Resolved> {
        let url = |owner: &str, repo: &str, file: &str| {
            format!(
                "{}/{owner}/{repo}/resolve/main/{}",
                self.endpoint,
                hub::encode_path(file)
            )
        };
        match source {
            Source::Url(url) => Ok(Resolved::File {
                url: url.clone(),
                projector: None,
            }),
            Source::HubFile { owner, repo, file } => Ok(Resolved::File {
                url: url(owner, repo, file),
                projector: None,
            }),
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
                let projector = hub::pick_projector(&files, &file);
                if let Some(projector) = &projector {
                    tracing::info!(repo = %reference, model = %file, %projector, "pulling the repository's vision projector with the model");
                }
                Ok(Resolved::File {
                    url: url(owner, repo, &file),
                    projector: projector.map(|p| url(owner, repo, &p)),
                })
            }
        }
    }
}

/// What a pull source resolves to.
enum Resolved {
    /// One GGUF file, and the URL of its vision projector when the repository has one.
    File {
        url: String,
        projector: Option<String>,
    },
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

    fn import(
        &self,
        path: &Path,
        projector: Option<&Path>,
        name: &str,
    ) -> minerva_core::Result<LibraryModel> {
        let options = ImportOptions {
            projector: projector.map(Path::to_path_buf),
            ..ImportOptions::default()
        };
        Ok(Store::import_with(self, path, name, &options)?)
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

    fn has_blob(&self, digest: &str) -> minerva_core::Result<bool> {
        Ok(Store::has_blob(self, digest)?)
    }

    fn set_settings(
        &self,
        name: &str,
        settings: ModelSettings,
    ) -> minerva_core::Result<LibraryModel> {
        Ok(Store::set_settings(self, name, settings)?)
    }

    fn upload_blob(&self, digest: &str) -> minerva_core::Result<Box<dyn minerva_core::BlobUpload>> {
        Ok(Box::new(Store::upload_blob(self, digest)?))
    }

    fn create_from_blobs(
        &self,
        name: &str,
        files: &[(String, String)],
    ) -> minerva_core::Result<LibraryModel> {
        Ok(Store::create_from_blobs(self, name, files)?)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(crate) mod tests;
