//! Which CPU kernels llama.cpp runs: the best of ggml's CPU backend variants for this CPU.
//!
//! Minerva's build (`.cargo/config.toml`) compiles ggml's CPU backend once per x86 variant
//! (`GGML_CPU_ALL_VARIANTS`; installed from the x86-64-v3 baseline up: `haswell`, `skylakex`,
//! `icelake`, `zen4`, `sapphirerapids`, …) as loadable modules `libggml-cpu-<variant>.so`, as
//! llama.cpp's own release binaries are built. Each module exports `ggml_backend_score()`: 0 when this CPU lacks
//! a feature the variant was compiled for, otherwise higher for more features. [`load`] scores
//! every module it finds and registers the best with ggml (`ggml_backend_load`), which is the rule
//! of llama.cpp's `ggml_backend_load_best` (ggml/src/ggml-backend-reg.cpp), done here so that the
//! choice has a name to report and can be forced.
//!
//! Where modules are looked for, first match wins:
//! 1. `MINERVA_BACKEND_DIR`, when set: that directory only;
//! 2. the executable's directory, then `../lib/minerva` from it (the installed layout,
//!    `scripts/install.sh`), then its parent (test binaries live in `target/<profile>/deps`).
//!
//! `MINERVA_CPU_VARIANT=<variant>` forces one variant (e.g. `haswell` to match a reference build
//! compiled for x86-64-v3); a variant this CPU cannot run, or one not found, is an error.
//!
//! In a build with ggml's CPU backend linked in (no `GGML_BACKEND_DL`), nothing is loaded and the
//! variant is reported as [`BUILT_IN`].

use std::ffi::{c_int, CString};
use std::path::{Path, PathBuf};

/// The name reported when the CPU backend is compiled into the binary rather than loaded.
pub const BUILT_IN: &str = "built-in";

/// Environment variable naming the directory to load CPU variants from.
pub const BACKEND_DIR_ENV: &str = "MINERVA_BACKEND_DIR";
/// Environment variable forcing one CPU variant by name (`haswell`, `zen4`, …).
pub const VARIANT_ENV: &str = "MINERVA_CPU_VARIANT";

const MODULE_STEM: &str = "ggml-cpu-";

/// Why no CPU kernels could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("no llama.cpp CPU backend ({prefix}{MODULE_STEM}<variant>{suffix}) found in {searched}; set {BACKEND_DIR_ENV} to the directory that holds them", prefix = std::env::consts::DLL_PREFIX, suffix = std::env::consts::DLL_SUFFIX)]
    NotFound { searched: String },
    #[error("{BACKEND_DIR_ENV}={dir}: no such directory")]
    NoDirectory { dir: String },
    #[error("{VARIANT_SOURCE}: no CPU variant '{wanted}' (variants there: {found}; this CPU runs: {usable})")]
    UnknownVariant {
        wanted: String,
        found: String,
        usable: String,
    },
    #[error("{VARIANT_SOURCE}: this CPU lacks features the '{wanted}' variant was compiled for (this CPU runs: {usable})")]
    Unsupported { wanted: String, usable: String },
    #[error("no CPU variant in {dir} runs on this CPU (found: {found})")]
    NoneUsable { dir: String, found: String },
    #[error("loading {path}: {message}")]
    Load { path: String, message: String },
}

/// How a forced variant is named in errors: either way of giving it.
const VARIANT_SOURCE: &str = "--cpu-variant / MINERVA_CPU_VARIANT";

/// The CPU kernels in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuKernels {
    /// The variant's name (`zen4`, `haswell`, …) or [`BUILT_IN`].
    pub variant: String,
    /// The module loaded; `None` for [`BUILT_IN`].
    pub path: Option<PathBuf>,
}

/// One `libggml-cpu-<variant>` module found on disk and its score on this CPU.
#[derive(Debug, Clone)]
struct Candidate {
    variant: String,
    path: PathBuf,
    /// `Ok(0)`: this CPU lacks a feature; `Err`: the module could not be opened or scored.
    score: Result<i32, String>,
}

impl Candidate {
    fn usable(&self) -> bool {
        self.score.as_ref().is_ok_and(|s| *s > 0)
    }
}

/// What was chosen among the modules found: `None` when the CPU backend is built in.
struct Selection {
    chosen: Candidate,
    forced: bool,
    /// The variants this CPU runs, best first.
    usable: Vec<String>,
}

fn built_in() -> CpuKernels {
    CpuKernels {
        variant: BUILT_IN.to_string(),
        path: None,
    }
}

/// Registers the CPU backend with ggml; call once per process, before `llama_backend_init`.
///
/// Errors: [`KernelError`] when no module is found, the forced variant is missing or cannot run
/// on this CPU, or ggml refuses the module.
pub fn load() -> Result<CpuKernels, KernelError> {
    let Some(Selection { chosen, forced, .. }) = select()? else {
        return Ok(built_in());
    };
    register(&chosen.path)?;
    tracing::info!(
        variant = %chosen.variant,
        path = %chosen.path.display(),
        score = chosen.score.as_ref().ok(),
        forced,
        "llama.cpp CPU kernels loaded"
    );
    Ok(CpuKernels {
        variant: chosen.variant,
        path: Some(chosen.path),
    })
}

/// What [`load`] would load in this process, without loading it, and the variants this CPU
/// runs (best first): for checking the settings when a server starts, before any model loads.
///
/// Errors: as [`load`], but ggml's own refusal of a module.
pub fn probe() -> Result<(CpuKernels, Vec<String>), KernelError> {
    let Some(Selection { chosen, usable, .. }) = select()? else {
        return Ok((built_in(), Vec::new()));
    };
    let kernels = CpuKernels {
        variant: chosen.variant,
        path: Some(chosen.path),
    };
    Ok((kernels, usable))
}

/// The forced variant's name, trimmed and lower-cased (ggml's are); `None` when unset or empty.
fn wanted() -> Option<String> {
    std::env::var(VARIANT_ENV)
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// The module to load (see [`Selection`]).
fn select() -> Result<Option<Selection>, KernelError> {
    if cpu_backend_registered() {
        return Ok(None);
    }
    let (dir, candidates) = find_candidates()?;
    let wanted = wanted();
    let chosen = choose(&dir, &candidates, wanted.as_deref())?.clone();
    Ok(Some(Selection {
        chosen,
        forced: wanted.is_some(),
        usable: usable_best_first(&candidates),
    }))
}

fn usable_best_first(candidates: &[Candidate]) -> Vec<String> {
    let mut usable: Vec<&Candidate> = candidates.iter().filter(|c| c.usable()).collect();
    usable.sort_by_key(|c| std::cmp::Reverse(c.score.as_ref().copied().unwrap_or(0)));
    usable.into_iter().map(|c| c.variant.clone()).collect()
}

fn cpu_backend_registered() -> bool {
    let Ok(name) = CString::new("CPU") else {
        return false;
    };
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the function only
    // reads the registry of backends.
    !unsafe { llama_cpp_sys_2::ggml_backend_reg_by_name(name.as_ptr()) }.is_null()
}

/// The directories searched, in order (see the module documentation).
fn search_dirs() -> Result<Vec<PathBuf>, KernelError> {
    if let Some(dir) = std::env::var_os(BACKEND_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(KernelError::NoDirectory {
                dir: dir.display().to_string(),
            });
        }
        return Ok(vec![dir]);
    }
    let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    else {
        return Ok(Vec::new());
    };
    let mut dirs = vec![exe_dir.clone()];
    if let Some(parent) = exe_dir.parent() {
        dirs.push(parent.join("lib/minerva"));
        dirs.push(parent.to_path_buf());
    }
    Ok(dirs)
}

/// The first searched directory holding any CPU module, with every module there scored.
fn find_candidates() -> Result<(PathBuf, Vec<Candidate>), KernelError> {
    let dirs = search_dirs()?;
    for dir in &dirs {
        let modules = modules_in(dir);
        if modules.is_empty() {
            continue;
        }
        let candidates = modules
            .into_iter()
            .map(|(variant, path)| {
                let score = score(&path);
                Candidate {
                    variant,
                    path,
                    score,
                }
            })
            .collect();
        return Ok((dir.clone(), candidates));
    }
    Err(KernelError::NotFound {
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// `(variant, path)` of every `libggml-cpu-<variant>` module in `dir`, sorted by name.
fn modules_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let prefix = format!("{}{MODULE_STEM}", std::env::consts::DLL_PREFIX);
    let suffix = std::env::consts::DLL_SUFFIX;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let variant = name.strip_prefix(&prefix)?.strip_suffix(suffix)?;
            (!variant.is_empty()).then(|| (variant.to_string(), entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// The module's `ggml_backend_score()` (0: this CPU lacks a feature it was compiled for), or why
/// it could not be opened or scored.
fn score(path: &Path) -> Result<i32, String> {
    // SAFETY: opening a ggml CPU module runs no code of ours; its initialisers are ggml's, and
    // ggml's own loader (ggml_backend_load_best) opens every variant the same way to score it.
    let library = match unsafe { libloading::Library::new(path) } {
        Ok(library) => library,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open CPU backend module");
            return Err(e.to_string());
        }
    };
    // SAFETY: ggml's backend modules export `int ggml_backend_score(void)` (ggml-backend-dl.h,
    // GGML_BACKEND_DL_SCORE_IMPL); the symbol is used only while `library` is open.
    let result = unsafe {
        library
            .get::<unsafe extern "C" fn() -> c_int>(b"ggml_backend_score\0")
            .map(|f| f())
    };
    result.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "CPU backend module has no score");
        e.to_string()
    })
}

/// The forced variant if given (it must run here), else the highest score (ties: the first by
/// name, as ggml's loader keeps the first best it meets).
fn choose<'a>(
    dir: &Path,
    candidates: &'a [Candidate],
    wanted: Option<&str>,
) -> Result<&'a Candidate, KernelError> {
    let usable = || {
        let names = usable_best_first(candidates);
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let found = || {
        candidates
            .iter()
            .map(|c| c.variant.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = wanted {
        let Some(candidate) = candidates.iter().find(|c| c.variant == wanted) else {
            return Err(KernelError::UnknownVariant {
                wanted: wanted.to_string(),
                found: found(),
                usable: usable(),
            });
        };
        return match &candidate.score {
            Ok(score) if *score > 0 => Ok(candidate),
            Ok(_) => Err(KernelError::Unsupported {
                wanted: wanted.to_string(),
                usable: usable(),
            }),
            Err(message) => Err(KernelError::Load {
                path: candidate.path.display().to_string(),
                message: message.clone(),
            }),
        };
    }
    let mut best: Option<&Candidate> = None;
    for candidate in candidates.iter().filter(|c| c.usable()) {
        if best.is_none_or(|b| candidate.score.as_ref().ok() > b.score.as_ref().ok()) {
            best = Some(candidate);
        }
    }
    best.ok_or_else(|| KernelError::NoneUsable {
        dir: dir.display().to_string(),
        found: found(),
    })
}

fn register(path: &Path) -> Result<(), KernelError> {
    let load_error = |message: String| KernelError::Load {
        path: path.display().to_string(),
        message,
    };
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| load_error("the path contains a NUL byte".to_string()))?;
    // SAFETY: `c_path` is a valid NUL-terminated path that outlives the call. ggml opens the
    // module, checks its API version and adds its registration to the process-wide registry,
    // where it stays for the life of the process.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_load(c_path.as_ptr()) };
    if reg.is_null() {
        return Err(load_error(
            "ggml refused the module (see the log above)".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(variant: &str, score: i32) -> Candidate {
        Candidate {
            variant: variant.to_string(),
            path: PathBuf::from(format!("/k/libggml-cpu-{variant}.so")),
            score: Ok(score),
        }
    }

    #[test]
    fn the_highest_score_wins_and_unusable_variants_never_do() {
        let all = [
            candidate("haswell", 9),
            candidate("sapphirerapids", 0),
            candidate("x64", 1),
            candidate("zen4", 40),
        ];
        let dir = Path::new("/k");
        assert_eq!(choose(dir, &all, None).unwrap().variant, "zen4");
        assert_eq!(
            choose(dir, &all, Some("haswell")).unwrap().variant,
            "haswell"
        );
        let err = choose(dir, &all, Some("sapphirerapids")).unwrap_err();
        assert!(matches!(err, KernelError::Unsupported { .. }), "{err}");
        // The usable ones, best first.
        assert!(err.to_string().contains("zen4, haswell, x64"), "{err}");
        // A module that cannot be opened is not "this CPU lacks features".
        let broken = [Candidate {
            score: Err("file too short".to_string()),
            ..candidate("zen4", 0)
        }];
        let err = choose(dir, &broken, Some("zen4")).unwrap_err();
        assert!(
            matches!(err, KernelError::Load { .. }) && err.to_string().contains("file too short"),
            "{err}"
        );
        let err = choose(dir, &all, Some("avx9000")).unwrap_err();
        assert!(matches!(err, KernelError::UnknownVariant { .. }), "{err}");
        let none = [candidate("sapphirerapids", 0)];
        assert!(matches!(
            choose(dir, &none, None),
            Err(KernelError::NoneUsable { .. })
        ));
    }

    #[test]
    fn modules_are_named_by_their_variant() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libggml-cpu-zen4.so",
            "libggml-cpu-haswell.so",
            "libggml-base.so",
            "libggml-cpu-.so",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let found: Vec<String> = modules_in(dir.path()).into_iter().map(|(v, _)| v).collect();
        assert_eq!(found, ["haswell", "zen4"]);
    }
}
