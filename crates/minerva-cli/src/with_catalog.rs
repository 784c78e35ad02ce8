//! The store as the server and `minerva pull` see it: a known model's name (the catalog, as
//! `minerva fetch` fetches it) pulls like a hub reference, with the same progress and cancel.

use crate::{catalog, library};
use minerva_core::{CoreError, Library, LibraryModel, PullProgress};
use minerva_store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// A [`Store`] that also pulls the catalog's models by name.
pub struct WithCatalog {
    store: Store,
    /// `minerva fetch`'s download cache (`<models root>/models`).
    cache: PathBuf,
}

impl WithCatalog {
    pub fn new(store: Store, root: &Path) -> Self {
        WithCatalog {
            store,
            cache: catalog::cache_dir(root),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn pull_known(
        &self,
        entry: &catalog::Entry,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> minerva_core::Result<LibraryModel> {
        progress(PullProgress::status("pulling manifest"));
        let path = catalog::ensure_with(entry, &self.cache, progress, cancel).map_err(|e| {
            match e.downcast_ref::<catalog::Cancelled>() {
                Some(cancelled) => CoreError::Unavailable(cancelled.to_string()),
                None => CoreError::Backend(format!("fetching {}: {e:#}", entry.name)),
            }
        })?;
        progress(PullProgress::status("writing manifest"));
        let model = library::import_fetched(&self.store, entry, &path)
            .map_err(|e| CoreError::Backend(format!("{e:#}")))?;
        progress(PullProgress::status("success"));
        Ok(model)
    }
}

impl Library for WithCatalog {
    fn list(&self) -> minerva_core::Result<Vec<LibraryModel>> {
        Library::list(&self.store)
    }

    fn get(&self, name: &str) -> minerva_core::Result<LibraryModel> {
        Library::get(&self.store, name)
    }

    fn remove(&self, name: &str) -> minerva_core::Result<()> {
        Library::remove(&self.store, name)
    }

    fn copy(&self, from: &str, to: &str) -> minerva_core::Result<()> {
        Library::copy(&self.store, from, to)
    }

    fn set_backend(&self, name: &str, backend: Option<&str>) -> minerva_core::Result<LibraryModel> {
        Library::set_backend(&self.store, name, backend)
    }

    fn import(
        &self,
        path: &Path,
        projector: Option<&Path>,
        name: &str,
    ) -> minerva_core::Result<LibraryModel> {
        Library::import(&self.store, path, projector, name)
    }

    fn set_settings(
        &self,
        name: &str,
        settings: minerva_core::ModelSettings,
    ) -> minerva_core::Result<LibraryModel> {
        Library::set_settings(&self.store, name, settings)
    }

    fn has_blob(&self, digest: &str) -> minerva_core::Result<bool> {
        Library::has_blob(&self.store, digest)
    }

    fn upload_blob(&self, digest: &str) -> minerva_core::Result<Box<dyn minerva_core::BlobUpload>> {
        Library::upload_blob(&self.store, digest)
    }

    fn create_from_blobs(
        &self,
        name: &str,
        files: &[(String, String)],
    ) -> minerva_core::Result<LibraryModel> {
        Library::create_from_blobs(&self.store, name, files)
    }

    /// A catalog name (stored under that name; another name is refused) fetches the catalog's
    /// file; anything else is the store's pull.
    fn pull(
        &self,
        source: &str,
        name: Option<&str>,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> minerva_core::Result<LibraryModel> {
        match catalog::find(source) {
            Some(entry) if name.is_none_or(|n| n.eq_ignore_ascii_case(entry.name)) => {
                self.pull_known(entry, progress, cancel)
            }
            Some(entry) => Err(CoreError::invalid(
                format!(
                    "{} is a known model and is stored under its own name; pull it, then give it another name with minerva cp (or /api/copy)",
                    entry.name
                ),
                Some("name"),
            )),
            None => Library::pull(&self.store, source, name, progress, cancel).map_err(|e| match e {
                // A bare name that is not a known model: say which names are known.
                CoreError::InvalidRequest { message, param }
                    if !source.contains('/') && message.contains("unknown pull source") =>
                {
                    CoreError::InvalidRequest {
                        message: format!("{message}; or a known model's name: {}", catalog::known_names()),
                        param,
                    }
                }
                other => other,
            }),
        }
    }
}
