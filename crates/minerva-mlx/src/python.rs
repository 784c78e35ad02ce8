//! Which Python runs mlx-lm: `--python` (or [`crate::MlxBackend::with_python`]), else
//! `MINERVA_PYTHON`, else `python3` on `PATH` when it imports `mlx_lm`, else the managed
//! environment's (the virtual environment that `minerva mlx setup` fills with mlx-lm).
//!
//! A Python named by the flag or the variable must import `mlx_lm`: a wrong one is an error,
//! never a silent fallback to another.

use minerva_core::{CoreError, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// How Minerva finds the Python that runs mlx-lm, for error messages.
pub const PYTHON_HELP: &str = "run `minerva mlx setup` (it creates a Python environment with mlx-lm that Minerva finds by itself), or install mlx-lm into a Python 3 (`pip install mlx-lm 'mlx[cpu]'` on Linux, `pip install mlx-lm` on macOS) and put that python3 first on PATH, or set MINERVA_PYTHON=/path/to/python (or pass --python)";

/// Where a Python came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonSource {
    /// `--python` (or [`crate::MlxBackend::with_python`]).
    Flag,
    /// The `MINERVA_PYTHON` environment variable.
    Env,
    /// `python3` on `PATH`.
    Path,
    /// The managed virtual environment in this directory.
    Managed(PathBuf),
}

impl fmt::Display for PythonSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PythonSource::Flag => f.write_str("--python"),
            PythonSource::Env => f.write_str("MINERVA_PYTHON"),
            PythonSource::Path => f.write_str("python3 on PATH"),
            PythonSource::Managed(dir) => {
                write!(f, "the managed environment {}", dir.display())
            }
        }
    }
}

/// A Python that imports mlx_lm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPython {
    pub python: PathBuf,
    pub source: PythonSource,
    /// `mlx_lm.__version__`.
    pub mlx_lm: String,
}

/// The interpreter of the virtual environment in `venv`.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// The mlx_lm version `python` imports, or why it cannot.
pub fn probe(python: &Path) -> std::result::Result<String, String> {
    let output = std::process::Command::new(python)
        .args([
            "-c",
            "import mlx_lm; print(getattr(mlx_lm, '__version__', '?'))",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr.lines().last().unwrap_or("").trim().to_string();
            Err(format!("cannot import mlx_lm ({last})"))
        }
        Err(e) => Err(format!("cannot be run ({e})")),
    }
}

/// The Python that imports mlx_lm (see the module's note). `managed_venv` is the managed
/// environment's directory, when there is one to look for.
pub fn find_python(explicit: Option<&Path>, managed_venv: Option<&Path>) -> Result<FoundPython> {
    let named = match (explicit, std::env::var_os("MINERVA_PYTHON")) {
        (Some(p), _) => Some((p.to_path_buf(), PythonSource::Flag)),
        (None, Some(p)) if !p.is_empty() => Some((PathBuf::from(p), PythonSource::Env)),
        _ => None,
    };
    let mut tried = Vec::new();
    let candidates = match named {
        Some(named) => vec![named],
        None => {
            let mut c = vec![(PathBuf::from("python3"), PythonSource::Path)];
            match managed_venv {
                Some(dir) if dir.exists() => {
                    c.push((venv_python(dir), PythonSource::Managed(dir.to_path_buf())));
                }
                Some(dir) => tried.push(format!(
                    "there is no managed environment in {} (`minerva mlx setup` makes it)",
                    dir.display()
                )),
                None => {}
            }
            c
        }
    };
    let mut failures = Vec::new();
    for (python, source) in candidates {
        match probe(&python) {
            Ok(mlx_lm) => {
                return Ok(FoundPython {
                    python,
                    source,
                    mlx_lm,
                })
            }
            Err(why) => failures.push(format!("{} (from {source}) {why}", python.display())),
        }
    }
    failures.extend(tried);
    Err(CoreError::Load(format!(
        "the MLX backend needs Python with mlx-lm, and {}: {PYTHON_HELP}",
        failures.join(", and ")
    )))
}
