//! Digests of command-line models computed after start ([`Engine::set_digest`]).

use crate::{Backends, Engine, ManagerConfig};
use minerva_core::LibraryModel;

fn by_path(name: &str, digest: &str) -> LibraryModel {
    LibraryModel {
        name: name.into(),
        source: format!("/models/{name}.gguf"),
        digest: digest.into(),
        size: 1,
        modified: std::time::UNIX_EPOCH,
        format: "gguf".into(),
        architecture: None,
        n_params: None,
        quantization: None,
        context_length: None,
        chat_template: None,
        license: None,
        kv_bytes_per_token: None,
        fill_in_middle: false,
        backend: None,
        path: format!("/models/{name}.gguf").into(),
        projector: None,
        settings: Default::default(),
    }
}

#[tokio::test]
async fn a_digest_computed_after_start_shows_in_listings_and_lookups() {
    let engine = Engine::with_library(
        None,
        Backends::new(),
        vec![by_path("mine", ""), by_path("known", "abc")],
        ManagerConfig::default(),
    );
    let digest_of = |models: Vec<crate::ModelEntry>, name: &str| {
        models
            .into_iter()
            .find(|e| e.model.name == name)
            .map(|e| e.model.digest)
    };
    assert_eq!(
        digest_of(engine.models().await.unwrap(), "mine").as_deref(),
        Some("")
    );
    engine.set_digest("mine", "f00d".into());
    // A digest the model already had is kept.
    engine.set_digest("known", "other".into());
    let models = engine.models().await.unwrap();
    assert_eq!(digest_of(models.clone(), "mine").as_deref(), Some("f00d"));
    assert_eq!(digest_of(models, "known").as_deref(), Some("abc"));
    assert_eq!(
        engine.resolve(Some("mine:latest")).await.unwrap().digest,
        "f00d"
    );
    assert_eq!(engine.resolve(None).await.unwrap().digest, "f00d");
}
