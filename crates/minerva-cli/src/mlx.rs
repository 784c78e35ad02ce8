//! `minerva mlx setup` and `minerva mlx status`: the Python that runs Hugging Face models with
//! mlx-lm.
//!
//! The managed environment is a virtual environment that `setup` creates and fills with mlx-lm
//! (and `mlx[cpu]` on Linux). It lives in `$MINERVA_MLX_VENV`, else `<data dir>/minerva/mlx-venv`
//! (`~/.local/share/minerva/mlx-venv` on Linux). Minerva uses it when neither `--python`,
//! `MINERVA_PYTHON` nor `python3` on `PATH` gives a Python with mlx-lm (see `minerva_mlx::python`).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use minerva_core::CoreError;
use minerva_mlx::python::{probe, venv_python};
use minerva_mlx::MlxBackend;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Relocates the managed environment.
pub const VENV_ENV: &str = "MINERVA_MLX_VENV";

#[derive(Args)]
pub struct MlxArgs {
    #[command(subcommand)]
    command: MlxCommand,
}

#[derive(Subcommand)]
enum MlxCommand {
    /// Create (or update) the managed Python environment with mlx-lm, which runs Hugging Face
    /// models when no other Python with mlx-lm is named or on PATH.
    Setup(SetupArgs),
    /// Show which Python would run Hugging Face models, and its mlx-lm version.
    Status(StatusArgs),
}

#[derive(Args)]
struct SetupArgs {
    /// Where to create the environment [env: MINERVA_MLX_VENV; default:
    /// ~/.local/share/minerva/mlx-venv].
    #[arg(long)]
    venv: Option<PathBuf>,
    /// The Python 3 that creates the environment.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Upgrade mlx-lm and mlx to their newest versions.
    #[arg(long)]
    upgrade: bool,
}

#[derive(Args)]
struct StatusArgs {
    /// A Python to check, as `minerva serve --python` would use it.
    #[arg(long)]
    python: Option<PathBuf>,
}

pub fn run(args: MlxArgs) -> Result<()> {
    match args.command {
        MlxCommand::Setup(args) => setup(args),
        MlxCommand::Status(args) => status(args),
    }
}

/// The managed environment's directory (see the module's note).
pub fn venv_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(VENV_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base =
        dirs::data_dir().context("cannot find the user's data directory; set MINERVA_MLX_VENV")?;
    Ok(base.join("minerva").join("mlx-venv"))
}

/// The MLX backend: `python` when given, else the Python found when a model loads, the
/// managed environment last.
pub fn backend(python: Option<&Path>) -> MlxBackend {
    let backend = match python {
        Some(p) => MlxBackend::with_python(p),
        None => MlxBackend::new(),
    };
    match venv_dir() {
        Ok(dir) => backend.managed_venv(dir),
        Err(e) => {
            tracing::debug!("no managed Python environment: {e:#}");
            backend
        }
    }
}

/// What `setup` installs: mlx's CPU build is a separate package on Linux.
fn packages() -> &'static [&'static str] {
    if cfg!(target_os = "linux") {
        &["mlx-lm", "mlx[cpu]"]
    } else {
        &["mlx-lm"]
    }
}

fn setup(args: SetupArgs) -> Result<()> {
    let dir = match args.venv {
        Some(dir) => {
            std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))?
        }
        None => venv_dir()?,
    };
    let python = venv_python(&dir);
    if python.exists() {
        println!("updating the Python environment in {}", dir.display());
    } else {
        println!(
            "creating a Python environment in {} with {}",
            dir.display(),
            args.python.display()
        );
        step(
            Command::new(&args.python).args(["-m", "venv"]).arg(&dir),
            "creating the environment (on Debian and Ubuntu, `apt install python3-venv` first)",
        )?;
    }
    let packages = packages();
    println!(
        "installing {} with pip (a few hundred MB on first install)",
        packages.join(" ")
    );
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check"]);
    if args.upgrade {
        pip.arg("--upgrade");
    }
    step(pip.args(packages), "installing mlx-lm")?;
    match probe(&python) {
        Ok(version) => println!("{} imports mlx_lm {version}", python.display()),
        Err(why) => bail!("after the install, {} {why}", python.display()),
    }
    if venv_dir().ok().as_deref() != Some(dir.as_path()) {
        println!(
            "Minerva looks for the managed environment elsewhere: set {VENV_ENV}={} to use this one",
            dir.display()
        );
        return Ok(());
    }
    if let Err(e) = status(StatusArgs { python: None }) {
        println!("but Minerva would not use it: {e:#}");
    }
    Ok(())
}

/// Runs `command` with its output on the terminal; `what` names it in an error.
fn step(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot run {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn status(args: StatusArgs) -> Result<()> {
    let venv = venv_dir().ok();
    if let Some(dir) = &venv {
        let state = if venv_python(dir).exists() {
            "present"
        } else {
            "absent; `minerva mlx setup` creates it"
        };
        println!("managed environment: {} ({state})", dir.display());
    }
    let found =
        minerva_mlx::find_python(args.python.as_deref(), venv.as_deref()).map_err(|e| match e {
            CoreError::Load(why) => anyhow::anyhow!(why),
            other => other.into(),
        })?;
    println!("python: {}", found.python.display());
    println!("found as: {}", found.source);
    println!("mlx-lm: {}", found.mlx_lm);
    Ok(())
}
