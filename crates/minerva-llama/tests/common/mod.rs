//! Shared helpers: the real test models (paths from the environment scripts/test.sh sets) and
//! the reference fixtures recorded by scripts/reference/record.py.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use minerva_core::{Backend, Model, ModelSpec};
use std::path::PathBuf;
use std::sync::Arc;

pub struct TestModel {
    pub name: &'static str,
    pub env: &'static str,
}

pub const QWEN: TestModel = TestModel {
    name: "qwen",
    env: "MINERVA_QWEN_GGUF",
};
pub const GEMMA: TestModel = TestModel {
    name: "gemma",
    env: "MINERVA_GEMMA_GGUF",
};

/// The model file; a missing model fails the test (never a silent skip).
pub fn model_path(m: &TestModel) -> PathBuf {
    let path = std::env::var(m.env).unwrap_or_else(|_| {
        panic!(
            "{} is not set: run the tests through scripts/test.sh, which fetches the models",
            m.env
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} = {} is not a file",
        m.env,
        path.display()
    );
    path
}

/// The CPU variant the reference llama.cpp matches: `scripts/reference/build.sh` compiles it for
/// x86-64-v3 (AVX2, FMA, F16C, BMI2), which is ggml's `haswell` variant.
pub const REFERENCE_VARIANT: &str = "haswell";

/// Makes this test process run [`REFERENCE_VARIANT`] unless MINERVA_CPU_VARIANT names another
/// (to see how far another variant is from the reference); call before the first model loads
/// (the variant is chosen once per process).
pub fn use_reference_kernels() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let var = minerva_llama::kernels::VARIANT_ENV;
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, REFERENCE_VARIANT);
        }
    });
}

pub fn load(m: &TestModel, ctx: u32, threads: u32) -> Arc<dyn Model> {
    load_parallel(m, ctx, threads, 1)
}

pub fn load_parallel(m: &TestModel, ctx: u32, threads: u32, parallel: u32) -> Arc<dyn Model> {
    let spec = ModelSpec {
        id: m.name.to_string(),
        path: model_path(m),
        ctx_size: Some(ctx),
        threads: Some(threads),
        parallel: Some(parallel),
        kv_size: None,
        kv_unified: None,
        flash_attn: None,
        queue: None,
        chat_template: None,
        queue_timeout: None,
        cache_bytes: None,
        sha256: None,
        projector: None,
    };
    minerva_llama::LlamaCppBackend::new()
        .load(&spec)
        .expect("load the model")
}

pub fn fixture(name: &str) -> serde_json::Value {
    // Read at run time: a path baked in at compile time can name another checkout that shares
    // the target directory.
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("run through cargo test");
    let text = std::fs::read_to_string(format!("{dir}/../../tests/fixtures/{name}"))
        .unwrap_or_else(|e| panic!("reading fixture {name}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}
