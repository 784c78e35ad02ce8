//! `minerva create NAME -f Modelfile`: a model made from a Modelfile, as `ollama create` makes
//! one, written straight into the store (as `minerva import` is; a running server sees it on
//! its next request).
//!
//! `FROM` names a model in the store or a known model (fetched when missing), a GGUF file (a
//! second `FROM` may add its vision projector), a Hugging Face directory, or an uploaded blob
//! (`@sha256:<hex>`). A path is read relative to the Modelfile's directory, as Ollama does.
//! Everything is checked before the store changes: a bad Modelfile leaves it as it was.

use crate::{catalog, library};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use minerva_ollama::{from_kind, read_modelfile, CreateRequest, FromKind, ModelfileRequest};
use minerva_server::create_settings;
use minerva_store::{ImportOptions, Store};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CreateArgs {
    /// The new model's name (tag `latest` when none is given).
    pub name: String,
    /// The Modelfile.
    #[arg(long, short = 'f', default_value = "Modelfile")]
    pub file: PathBuf,
}

/// Where the new model's weights come from.
enum Base {
    /// A model in the store (or a known model, fetched first).
    Model(usize, String),
    /// A GGUF file with its projector, or a Hugging Face directory.
    Files {
        model: PathBuf,
        projector: Option<PathBuf>,
    },
    /// Uploaded blobs, by `sha256:<hex>`, each with its line.
    Blobs(Vec<(usize, (String, String))>),
}

pub fn create(args: CreateArgs, root: &Path) -> Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("reading the Modelfile {}", args.file.display()))?;
    let text =
        decode(&bytes).with_context(|| format!("reading the Modelfile {}", args.file.display()))?;
    let m = read_modelfile(&text)?;
    for (line, name) in &m.ignored {
        eprintln!(
            "warning: Modelfile line {line}: PARAMETER {name} is deprecated in Ollama and ignored"
        );
    }
    if let Some((line, _)) = m.adapters.first() {
        bail!("Modelfile line {line}: ADAPTER: LoRA adapters are not supported");
    }
    let settings = create_settings(&request_of(&m)?).map_err(|e| match m.line_of(e.field) {
        Some(line) => anyhow!("Modelfile line {line}: {}", e.message),
        None => anyhow!("{e}"),
    })?;
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base = base_of(&m, &dir)?;
    let store = library::open(root)?;
    let name = if args.name.contains(':') {
        args.name.clone()
    } else {
        format!("{}:latest", args.name)
    };
    let model = match base {
        Base::Model(line, from) => {
            let from = stored(&store, &from, root)
                .with_context(|| format!("Modelfile line {line}: FROM {from}"))?;
            store.copy(&from, &name)?
        }
        Base::Files { model, projector } => {
            eprintln!("importing {}", model.display());
            let options = ImportOptions {
                projector,
                ..ImportOptions::default()
            };
            store.import_with(&model, &name, &options)?
        }
        Base::Blobs(files) => {
            for (line, (_, digest)) in &files {
                if !store.has_blob(digest)? {
                    bail!("Modelfile line {line}: FROM @{digest}: no such blob in the store");
                }
            }
            let files: Vec<(String, String)> = files.into_iter().map(|(_, f)| f).collect();
            store.create_from_blobs(&name, &files)?
        }
    };
    let model = match settings {
        Some(settings) => {
            let merged = model.settings.merged(settings);
            store.set_settings(&model.name, merged)?
        }
        None => model,
    };
    println!("created {}\tsha256:{}", model.name, model.digest);
    Ok(())
}

/// The Modelfile's settings as the fields of `/api/create`, for the checks the server makes.
fn request_of(m: &ModelfileRequest) -> Result<CreateRequest> {
    let mut req: CreateRequest = serde_json::from_value(serde_json::json!({}))?;
    m.fill(&mut req);
    Ok(req)
}

/// What the `FROM` lines name: one model, or files (a GGUF and its projector, or a
/// directory), or blobs; never a mix.
fn base_of(m: &ModelfileRequest, dir: &Path) -> Result<Base> {
    let mut names = Vec::new();
    let mut paths = Vec::new();
    let mut blobs = Vec::new();
    for (line, from) in &m.from {
        match from_kind(from) {
            FromKind::Name if !dir.join(from).exists() => names.push((*line, from.clone())),
            FromKind::Blob(digest) => blobs.push((*line, (format!("model-{line}.gguf"), digest))),
            FromKind::Name | FromKind::Path => {
                let path = expand(from, dir);
                if !path.exists() {
                    bail!("Modelfile line {line}: FROM {from}: no such file or directory");
                }
                paths.push((*line, path));
            }
        }
    }
    if let Some((line, _)) = names.get(1) {
        bail!("Modelfile line {line}: only one FROM may name a model");
    }
    // The line of the first FROM of another kind than the first's.
    let first = m.from.first().map_or(0, |f| f.0);
    let lines = [
        names.first().map(|n| n.0),
        paths.first().map(|p| p.0),
        blobs.first().map(|b| b.0),
    ];
    let mixed = lines
        .iter()
        .flatten()
        .filter(|&&l| l != first)
        .min()
        .copied();
    match (names.len(), paths.len(), blobs.len()) {
        (1, 0, 0) => Ok(names.remove(0)).map(|(l, n)| Base::Model(l, n)),
        (0, _, 0) => files(paths),
        (0, 0, _) => Ok(Base::Blobs(blobs)),
        _ => bail!(
            "Modelfile line {}: FROM names one model, or model files (a GGUF and its projector), or uploaded blobs, not a mix",
            mixed.unwrap_or(first)
        ),
    }
}

/// A GGUF file and at most one projector (told apart by their metadata), or one directory.
fn files(paths: Vec<(usize, PathBuf)>) -> Result<Base> {
    let mut model = None;
    let mut projector = None;
    for (line, path) in paths {
        let slot = if path.is_dir() {
            &mut model
        } else {
            let info = minerva_store::gguf::read(&path)
                .with_context(|| format!("Modelfile line {line}: FROM {}", path.display()))?;
            if info.projector_type.is_some() {
                &mut projector
            } else {
                &mut model
            }
        };
        if slot.replace(path).is_some() {
            bail!(
                "Modelfile line {line}: a second model file; FROM takes one model and at most one vision projector"
            );
        }
    }
    let model = model.context("FROM names a vision projector but no model")?;
    if projector.is_some() && model.is_dir() {
        bail!("a vision projector goes with a GGUF model, not a Hugging Face directory");
    }
    Ok(Base::Files { model, projector })
}

/// `~/` is the home directory; a relative path is relative to the Modelfile's directory.
fn expand(from: &str, dir: &Path) -> PathBuf {
    if let Some(rest) = from.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    dir.join(from.strip_prefix("./").unwrap_or(from))
}

/// A Modelfile's text: UTF-8 (a byte-order mark is dropped by the parser), or UTF-16 with its
/// byte-order mark, as Windows editors and PowerShell's `>` write it (Ollama reads both).
fn decode(bytes: &[u8]) -> Result<String> {
    let utf16 = |le: bool| -> Result<String> {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| {
                let pair = [c[0], c.get(1).copied().unwrap_or(0)];
                if le {
                    u16::from_le_bytes(pair)
                } else {
                    u16::from_be_bytes(pair)
                }
            })
            .collect();
        String::from_utf16(&units).context("the file is not valid UTF-16")
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        _ => String::from_utf8(bytes.to_vec())
            .context("the file is not text (UTF-8, or UTF-16 with a byte-order mark)"),
    }
}

/// The stored name of the model `from` names: in the store, or a known model fetched and
/// added under its name.
fn stored(store: &Store, from: &str, root: &Path) -> Result<String> {
    if let Ok(m) = store.get(from) {
        return Ok(m.name);
    }
    match catalog::find(from) {
        Some(entry) => {
            let path = catalog::ensure(entry, &catalog::cache_dir(root))?;
            Ok(library::import_fetched(store, entry, &path)?.name)
        }
        None => Err(anyhow!(
            "no such model in the store (minerva list) nor a known model ({})",
            catalog::known_names()
        )),
    }
}
