//! Files uploaded by their digest (Ollama's `HEAD` and `POST /api/blobs/sha256:<hex>`), and
//! models made from them (`/api/create` with `files`), and created models' own settings.
//!
//! An upload streams into a temporary file beside the blobs while its sha256 is computed; only
//! a body whose digest is the one named is renamed to the blob's name. A wrong digest, an
//! error while writing (a full disk) or an upload dropped before it finished leaves nothing
//! behind. A blob no manifest uses is removed with the next model that is deleted, as any
//! unused blob is ([`Store::remove`]).

use crate::gguf::{self, GgufInfo};
use crate::manifest::{blob_path, unique_temp};
use crate::name::{parse_digest, ModelName};
use crate::store::{Incoming, Store};
use crate::{Result, StoreError};
use minerva_core::{LibraryModel, ModelSettings};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

/// A blob being uploaded ([`Store::upload_blob`]).
pub struct Upload {
    expected: String,
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
}

impl Upload {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Invalid("the upload is over".into()));
        };
        file.write_all(bytes)
            .map_err(|e| StoreError::io(format!("writing {}", self.tmp.display()), e))?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Checks the digest and keeps the blob; its size in bytes. A mismatch is `Invalid`, and
    /// the file is gone.
    pub fn finish(mut self) -> Result<u64> {
        let Some(file) = self.file.take() else {
            return Err(StoreError::Invalid("the upload is over".into()));
        };
        file.sync_all()
            .map_err(|e| StoreError::io(format!("writing {}", self.tmp.display()), e))?;
        drop(file);
        let got = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if got != self.expected {
            return Err(StoreError::Invalid(format!(
                "digest mismatch: the upload's sha256 is {got}, not {}",
                self.expected
            )));
        }
        if self.dest.is_file() {
            // The same bytes are there already.
            return Ok(self.size);
        }
        fs::rename(&self.tmp, &self.dest)
            .map_err(|e| StoreError::io(format!("renaming {}", self.tmp.display()), e))?;
        tracing::info!(digest = %self.expected, size = self.size, "blob uploaded");
        Ok(self.size)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Unfinished, refused or already renamed: nothing of the temporary file stays.
        crate::download::remove(&self.tmp);
    }
}

impl Store {
    /// Records a created model's own settings (replacing any it had).
    pub fn set_settings(&self, name: &str, settings: ModelSettings) -> Result<LibraryModel> {
        let name = ModelName::parse(name)?;
        let path = self.manifest_path(&name);
        let _guard = self.guard();
        if !path.is_file() {
            return Err(StoreError::NotFound(name.to_string()));
        }
        let mut manifest = crate::manifest::Manifest::read(&path)?;
        manifest.settings = settings;
        manifest.modified_ms = crate::manifest::now_ms();
        manifest.write(&path)?;
        tracing::info!(model = %name, "settings recorded");
        Ok(self.model(&manifest))
    }

    /// Whether the blob `sha256:<hex>` (or `sha256-<hex>`) is in the store. A malformed
    /// digest is `Invalid`.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        let hex = parse_digest(digest)?;
        Ok(blob_path(&self.blobs, &hex).is_file())
    }

    /// Starts an upload of the blob `digest` (`sha256:<hex>`).
    pub fn upload_blob(&self, digest: &str) -> Result<Upload> {
        let expected = parse_digest(digest)?;
        let dest = blob_path(&self.blobs, &expected);
        let tmp = unique_temp(&self.blobs.join(format!("upload-{expected}.partial")));
        let file = File::create(&tmp)
            .map_err(|e| StoreError::io(format!("creating {}", tmp.display()), e))?;
        Ok(Upload {
            expected,
            tmp,
            dest,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Adds a model `name` made of uploaded blobs: `files` pairs a file name with its digest,
    /// as Ollama's `/api/create` `files`. One GGUF model, and at most one vision projector
    /// (a GGUF whose architecture is `clip`); nothing is copied. Safetensors files (a Hugging
    /// Face directory) are refused: import the directory instead.
    pub fn create_from_blobs(
        &self,
        name: &str,
        files: &[(String, String)],
    ) -> Result<LibraryModel> {
        let name = ModelName::parse(name)?;
        if files.is_empty() {
            return Err(StoreError::Invalid(
                "files is empty: name a GGUF model's blob".into(),
            ));
        }
        let mut model: Option<(String, u64, GgufInfo)> = None;
        let mut projector: Option<(String, u64, GgufInfo)> = None;
        for (file, digest) in files {
            let hex = parse_digest(digest)?;
            let path = blob_path(&self.blobs, &hex);
            let size = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta.len(),
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "files: {file}: no blob sha256:{hex} (upload it with POST /api/blobs/sha256:{hex} first)"
                    )))
                }
            };
            if !file.to_ascii_lowercase().ends_with(".gguf") && !gguf::has_magic(&path)? {
                return Err(StoreError::Invalid(format!(
                    "files: {file}: only GGUF files can make a model here (import a Hugging Face directory with `minerva import DIR`)"
                )));
            }
            let info = gguf::read(&path)?;
            if info.architecture.as_deref() == Some(gguf::PROJECTOR_ARCHITECTURE) {
                gguf::check_projector(&info, &path)?;
                if projector.replace((hex, size, info)).is_some() {
                    return Err(StoreError::Invalid("files: more than one projector".into()));
                }
            } else {
                gguf::check_model(&info, &path)?;
                if model.replace((hex, size, info)).is_some() {
                    return Err(StoreError::Invalid(
                        "files: more than one GGUF model".into(),
                    ));
                }
            }
        }
        let Some((sha, size, info)) = model else {
            return Err(StoreError::Invalid(
                "files: no GGUF model among them (only a projector)".into(),
            ));
        };
        if let Some((phex, _, pinfo)) = &projector {
            gguf::check_pair(&info, pinfo, &blob_path(&self.blobs, phex))?;
        }
        let source = format!("sha256:{sha}");
        let model = Incoming {
            sha,
            size,
            file: None,
        };
        let projector = projector.map(|(sha, size, _)| Incoming {
            sha,
            size,
            file: None,
        });
        self.commit(&name, source, model, &info, projector)
    }
}

impl minerva_core::BlobUpload for Upload {
    fn write(&mut self, bytes: &[u8]) -> minerva_core::Result<()> {
        Ok(Upload::write(self, bytes)?)
    }

    fn finish(self: Box<Self>) -> minerva_core::Result<u64> {
        Ok(Upload::finish(*self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::files_in;

    #[test]
    fn an_upload_is_kept_only_under_its_own_digest() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let store = Store::open(dir.path())?;
        let body = b"some bytes that are not a model".repeat(1000);
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        assert!(!store.has_blob(&digest)?);

        // A wrong digest: refused, nothing left.
        let mut wrong = store.upload_blob(&format!("sha256:{}", "0".repeat(64)))?;
        wrong.write(&body)?;
        assert!(
            matches!(wrong.finish(), Err(StoreError::Invalid(m)) if m.contains("digest mismatch"))
        );
        assert_eq!(files_in(&dir.path().join("blobs")), Vec::<String>::new());

        // Dropped before the end (the client went away): nothing left.
        let mut dropped = store.upload_blob(&digest)?;
        dropped.write(&body[..10])?;
        drop(dropped);
        assert_eq!(files_in(&dir.path().join("blobs")), Vec::<String>::new());

        // In pieces, with the right digest: kept under its name.
        let mut upload = store.upload_blob(&digest)?;
        for piece in body.chunks(777) {
            upload.write(piece)?;
        }
        assert_eq!(upload.finish()?, body.len() as u64);
        assert!(store.has_blob(&digest)?);
        assert_eq!(
            files_in(&dir.path().join("blobs")),
            vec![format!("sha256-{}", &digest[7..])]
        );

        // Not a model: create refuses it and makes no name.
        let made = store.create_from_blobs("junk:latest", &[("x.bin".into(), digest)]);
        assert!(made.is_err());
        assert!(store.list()?.is_empty());
        assert!(matches!(
            store.has_blob("sha256:xyz"),
            Err(StoreError::Invalid(_))
        ));
        Ok(())
    }
}
