//! Puts llama.cpp's shared libraries beside the binaries that need them.
//!
//! With the workspace's build settings (`.cargo/config.toml`: `GGML_BACKEND_DL`,
//! `GGML_CPU_ALL_VARIANTS`, `LLAMA_BUILD_SHARED_LIBS`) llama-cpp-sys-2 builds `libllama.so`,
//! `libggml.so`, `libggml-base.so`, `libmtmd.so` (linked by every binary) and one
//! `libggml-cpu-<variant>.so` per x86 variant (loaded at run time, see `src/kernels.rs`). It
//! installs them in its `OUT_DIR` (`lib/` and `bin/`), which no binary looks in. This script copies
//! them into the profile directory (`target/<profile>/`, where `minerva` is written) and its
//! `deps/` (where test binaries are), so every binary finds them through its `$ORIGIN` rpath.
//!
//! A copy is written to a temporary name and renamed over the old one, so a running server keeps
//! the file it mapped. Nothing is copied in a static build (no shared libraries in `OUT_DIR`).
//!
//! Not copied: `libllama-common` (no binary links it) and the CPU variants below the x86-64-v3
//! baseline the whole of llama.cpp is compiled for (`CMAKE_C_FLAGS` in `.cargo/config.toml`):
//! compiled with that baseline, they would only be slower copies of `haswell`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CMAKE_C_FLAGS");
    // Set by llama-cpp-sys-2 (`links = "llama"`): `<its OUT_DIR>/lib/cmake`.
    let Ok(cmake_dir) = env::var("DEP_LLAMA_GGML_CMAKE_DIR") else {
        println!("cargo:warning=llama-cpp-sys-2 did not say where it installed llama.cpp");
        return;
    };
    let Some(sys_out) = Path::new(&cmake_dir).parent().and_then(Path::parent) else {
        return;
    };
    let Ok(out_dir) = env::var("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return;
    };

    let skipped = not_installed();
    let libs = shared_libraries(sys_out, &skipped);
    if libs.is_empty() {
        return;
    }
    for dest_dir in [profile_dir.to_path_buf(), profile_dir.join("deps")] {
        if let Err(e) = fs::create_dir_all(&dest_dir) {
            panic!("creating {}: {e}", dest_dir.display());
        }
        for name in &skipped {
            let _ = fs::remove_file(dest_dir.join(name));
        }
        for lib in &libs {
            println!("cargo:rerun-if-changed={}", lib.display());
            let Some(name) = lib.file_name() else {
                continue;
            };
            copy_if_changed(lib, &dest_dir.join(name));
        }
    }
}

/// `lib/*.so` and `bin/libggml-cpu-*.so` (or the platform's equivalents) under `out`, but the
/// `skipped` names.
fn shared_libraries(out: &Path, skipped: &[String]) -> Vec<PathBuf> {
    let (prefix, suffix) = (env::consts::DLL_PREFIX, env::consts::DLL_SUFFIX);
    let mut found = Vec::new();
    for dir in ["lib", "lib64", "bin"] {
        let Ok(entries) = fs::read_dir(out.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_file()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
                && !skipped.contains(&name)
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The file names left out (see the top of this file).
fn not_installed() -> Vec<String> {
    let (prefix, suffix) = (env::consts::DLL_PREFIX, env::consts::DLL_SUFFIX);
    let mut names = vec![format!("{prefix}llama-common{suffix}")];
    if env::var("CMAKE_C_FLAGS").is_ok_and(|f| f.contains("-march=x86-64-v3")) {
        for variant in ["x64", "sse42", "sandybridge", "ivybridge", "piledriver"] {
            names.push(format!("{prefix}ggml-cpu-{variant}{suffix}"));
        }
    }
    names
}

fn copy_if_changed(from: &Path, to: &Path) {
    let same = match (fs::read(from), fs::read(to)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return;
    }
    let tmp = to.with_extension("tmp-copy");
    if let Err(e) = fs::copy(from, &tmp).and_then(|_| fs::rename(&tmp, to)) {
        panic!("copying {} to {}: {e}", from.display(), to.display());
    }
}
