//! The store's verbs: `minerva pull`, `import`, `list`, `show`, `rm`, and where the store lives.
//!
//! The models root is `--models-dir`, else `$MINERVA_MODELS`, else `$MINERVA_MODELS_DIR`, else
//! `<data dir>/minerva` (`~/.local/share/minerva` on Linux, following `$XDG_DATA_HOME` and
//! `$HOME`). The store's `blobs/` and `manifests/` sit in the root, as Ollama's do in
//! `OLLAMA_MODELS`; `minerva fetch` keeps its download cache in `<root>/models` and hard-links
//! what it fetched into the store.

use crate::catalog;
use anyhow::{Context, Result};
use clap::Args;
use minerva_core::LibraryModel;
use minerva_engine::backend_of;
use minerva_store::{ImportOptions, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

#[derive(Args)]
pub struct PullArgs {
    /// hf.co/OWNER/REPO[:QUANT] (a repository of GGUF files, or a Hugging Face model directory
    /// of safetensors), OWNER/REPO/FILE.gguf, an https:// URL of a GGUF file, or a known
    /// model's name (see minerva fetch).
    pub source: String,
    /// The name to store the model under (default: from the source, e.g. hf.co/owner/repo:quant).
    #[arg(long)]
    pub name: Option<String>,
    /// The backend the model loads with (default: by its format; see minerva config).
    #[arg(long)]
    pub backend: Option<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A GGUF file, or a Hugging Face model directory (config.json, tokenizer files,
    /// *.safetensors).
    pub path: PathBuf,
    /// The name to store the model under (default: the file's stem or the directory's name,
    /// tag latest).
    #[arg(long)]
    pub name: Option<String>,
    /// The backend the model loads with (default: by its format; see minerva config).
    #[arg(long)]
    pub backend: Option<String>,
    /// The vision projector (llama.cpp's mmproj GGUF) to keep with a GGUF model: the model
    /// then reads images. A re-import without it makes the name a text model again.
    #[arg(long, value_name = "FILE")]
    pub mmproj: Option<PathBuf>,
}

#[derive(Args)]
pub struct ConfigArgs {
    pub name: String,
    /// The backend to load the model with: llama.cpp (GGUF) or mlx (Hugging Face directories),
    /// or auto (by the model's format).
    #[arg(long)]
    pub backend: Option<String>,
}

#[derive(Args)]
pub struct ShowArgs {
    pub name: String,
    /// Print only the chat template.
    #[arg(long, conflicts_with_all = ["license", "modelfile"])]
    pub template: bool,
    /// Print only the licence.
    #[arg(long, conflicts_with = "modelfile")]
    pub license: bool,
    /// Print a Modelfile that makes the same model (minerva create NAME -f FILE).
    #[arg(long)]
    pub modelfile: bool,
}

#[derive(Args)]
pub struct CpArgs {
    /// The stored model.
    pub source: String,
    /// Its new name.
    pub destination: String,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// The models root (see the module's note).
pub fn models_root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    for var in ["MINERVA_MODELS", "MINERVA_MODELS_DIR"] {
        if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
    }
    let base =
        dirs::data_dir().context("cannot find the user's data directory; set MINERVA_MODELS")?;
    Ok(base.join("minerva"))
}

pub fn open(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("opening the model store in {}", root.display()))
}

pub fn pull(args: PullArgs, root: &Path) -> Result<()> {
    let library = crate::with_catalog::WithCatalog::new(open(root)?, root);
    let mut terminal = crate::progress::Terminal::new();
    let cancel = AtomicBool::new(false);
    let model = minerva_core::Library::pull(
        &library,
        &args.source,
        args.name.as_deref(),
        &mut |p| terminal.report(p),
        &cancel,
    );
    terminal.finish();
    let store = library.store();
    let model = model?;
    let model = choose_backend(store, model, args.backend.as_deref())?;
    println!("{}\tsha256:{}\t{}", model.name, model.digest, model.size);
    Ok(())
}

/// Records `--backend` for a model just added (checked against its format first).
fn choose_backend(
    store: &Store,
    model: LibraryModel,
    backend: Option<&str>,
) -> Result<LibraryModel> {
    let Some(backend) = backend.filter(|b| *b != "auto") else {
        return Ok(model);
    };
    minerva_engine::check_backend(backend, &model.format).with_context(|| {
        format!(
            "{} was added, but its backend is left as it was",
            model.name
        )
    })?;
    Ok(store.set_backend(&model.name, Some(backend))?)
}

/// `minerva config NAME [--backend B]`: sets what is given, then prints the settings.
pub fn config(args: ConfigArgs, root: &Path) -> Result<()> {
    let store = open(root)?;
    let mut model = store.get(&args.name)?;
    if let Some(backend) = args.backend.as_deref() {
        if backend == "auto" {
            model = store.set_backend(&model.name, None)?;
        } else {
            minerva_engine::check_backend(backend, &model.format)
                .with_context(|| format!("setting the backend of {}", model.name))?;
            model = store.set_backend(&model.name, Some(backend))?;
        }
    }
    println!("name\t{}", model.name);
    println!("format\t{}", model.format);
    let how = if model.backend.is_some() {
        "chosen"
    } else {
        "by format"
    };
    println!("backend\t{} ({how})", backend_of(&model));
    Ok(())
}

pub fn import(args: ImportArgs, root: &Path) -> Result<()> {
    let store = open(root)?;
    let name = match args.name {
        Some(n) => n,
        None => {
            let stem = if args.path.is_dir() {
                args.path
                    .canonicalize()?
                    .file_name()
                    .map(|s| s.to_os_string())
            } else {
                args.path.file_stem().map(|s| s.to_os_string())
            };
            format!("{}:latest", stem.unwrap_or_default().to_string_lossy())
        }
    };
    if let Some(backend) = args.backend.as_deref().filter(|b| *b != "auto") {
        // Checked before anything is copied.
        let format = minerva_core::hf::detect(&args.path)?;
        minerva_engine::check_backend(backend, format.as_str())?;
    }
    match &args.mmproj {
        Some(mmproj) => eprintln!(
            "importing {} with the projector {} as {name}",
            args.path.display(),
            mmproj.display()
        ),
        None => eprintln!("importing {} as {name}", args.path.display()),
    }
    let options = ImportOptions {
        projector: args.mmproj.clone(),
        ..ImportOptions::default()
    };
    let model = store.import_with(&args.path, &name, &options)?;
    let model = choose_backend(&store, model, args.backend.as_deref())?;
    println!("{}\tsha256:{}\t{}", model.name, model.digest, model.size);
    Ok(())
}

/// Adds a catalog model `minerva fetch` verified to the store under its catalog name: hard-linked,
/// not hashed again.
pub fn import_fetched(store: &Store, entry: &catalog::Entry, file: &Path) -> Result<LibraryModel> {
    if let Ok(model) = store.get(entry.name) {
        if model.digest == entry.sha256 && model.path.is_file() {
            return Ok(model);
        }
    }
    let verified = catalog::stamped_sha256(file).filter(|s| s == entry.sha256);
    let options = ImportOptions {
        source: Some(format!("minerva fetch {}", entry.name)),
        verified_sha256: verified,
        ..ImportOptions::default()
    };
    store
        .import_with(file, entry.name, &options)
        .with_context(|| format!("adding {} to the store", entry.name))
}

/// `minerva list`: the store's models, most recently modified first (as `ollama list`).
pub fn list(root: &Path) -> Result<()> {
    let mut models = open(root)?.list()?;
    models.sort_by_key(|m| std::cmp::Reverse(m.modified));
    let aliases = minerva_engine::aliases(&models);
    let rows: Vec<[String; 6]> = models
        .iter()
        .map(|m| {
            [
                m.name.clone(),
                m.digest.chars().take(12).collect(),
                human_size(m.size),
                ago(m.modified),
                backend_of(m),
                aliases.get(&m.name).cloned().unwrap_or_default(),
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    print_table(
        &["NAME", "ID", "SIZE", "MODIFIED", "BACKEND", "ALIAS OF"],
        &rows,
    );
    Ok(())
}

/// Columns padded to their widest cell, four spaces apart, as Ollama prints them.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("    ").trim_end());
    }
}

pub fn show(args: ShowArgs, root: &Path) -> Result<()> {
    let m = open(root)?.get(&args.name)?;
    let template = m
        .settings
        .template
        .as_deref()
        .or(m.chat_template.as_deref());
    let license = if m.settings.license.is_empty() {
        m.license.clone()
    } else {
        Some(m.settings.license.join("\n"))
    };
    if args.template {
        println!("{}", template.unwrap_or(""));
        return Ok(());
    }
    if args.license {
        println!("{}", license.as_deref().unwrap_or(""));
        return Ok(());
    }
    if args.modelfile {
        print!("{}", minerva_server::modelfile(&m, false));
        return Ok(());
    }
    let unknown = || "unknown".to_string();
    println!("  Model");
    let rows = [
        ("name", m.name.clone()),
        (
            "architecture",
            m.architecture.clone().unwrap_or_else(unknown),
        ),
        (
            "parameters",
            m.n_params.map(human_count).unwrap_or_else(unknown),
        ),
        (
            "quantization",
            m.quantization.clone().unwrap_or_else(unknown),
        ),
        (
            "context length",
            m.context_length
                .map(|c| c.to_string())
                .unwrap_or_else(unknown),
        ),
        (
            "kv cache",
            m.kv_bytes_per_token
                .map(|b| format!("{b} bytes per token"))
                .unwrap_or_else(unknown),
        ),
        ("format", m.format.clone()),
        (
            "backend",
            format!(
                "{} ({})",
                backend_of(&m),
                if m.backend.is_some() {
                    "chosen"
                } else {
                    "by format"
                }
            ),
        ),
        ("size", human_size(m.size)),
        ("digest", format!("sha256:{}", m.digest)),
        ("source", m.source.clone()),
        ("file", m.path.display().to_string()),
    ];
    for (k, v) in rows {
        println!("    {k:<16}{v}");
    }
    if let Some(projector) = &m.projector {
        let size = std::fs::metadata(projector)
            .map(|meta| human_size(meta.len()))
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        println!();
        println!("  Projector");
        if let Some(kind) = minerva_store::gguf::read(projector)
            .ok()
            .and_then(|info| info.projector_type)
        {
            println!("    {:<16}{kind}", "type");
        }
        println!("    {:<16}{size}", "size");
        println!("    {:<16}{}", "file", projector.display());
    }
    let parameters = minerva_ollama::parameter_lines(&m.settings.parameters);
    if !parameters.is_empty() {
        println!();
        println!("  Parameters");
        for line in parameters {
            println!("    {line}");
        }
    }
    if let Some(system) = &m.settings.system {
        println!();
        println!("  System");
        println!("    {}", first_lines(Some(system), 3, "--modelfile"));
    }
    if !m.settings.messages.is_empty() {
        println!();
        println!("  Messages");
        for message in &m.settings.messages {
            let field = |k: &str| message.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            let text = first_lines(Some(field("content")), 1, "--modelfile");
            println!("    {:<16}{text}", field("role"));
        }
    }
    println!();
    println!("  License");
    println!("    {}", first_lines(license.as_deref(), 3, "--license"));
    println!();
    println!("  Template");
    println!("    {}", first_lines(template, 5, "--template"));
    Ok(())
}

pub fn rm(args: RmArgs, root: &Path) -> Result<()> {
    let store = open(root)?;
    for name in &args.names {
        store.remove(name)?;
        println!("deleted '{name}'");
    }
    Ok(())
}

/// `minerva cp SOURCE DESTINATION`.
pub fn cp(args: CpArgs, root: &Path) -> Result<()> {
    let model = open(root)?.copy(&args.source, &args.destination)?;
    println!("copied '{}' to '{}'", args.source, model.name);
    Ok(())
}

fn first_lines(text: Option<&str>, n: usize, flag: &str) -> String {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return "(none in the model file)".into();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines
        .iter()
        .take(n)
        .copied()
        .collect::<Vec<_>>()
        .join("\n    ");
    if lines.len() > n {
        out.push_str(&format!(
            "\n    … ({} lines; {flag} prints it all)",
            lines.len()
        ));
    }
    out
}

pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000_000 => format!("{:.0} KB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

fn human_count(n: u64) -> String {
    let f = n as f64;
    match n {
        0..1_000_000_000 => format!("{:.2}M", f / 1e6),
        _ => format!("{:.2}B", f / 1e9),
    }
}

fn ago(t: SystemTime) -> String {
    let secs = t.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    let (n, unit) = match secs {
        0..60 => return "just now".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86_400 => (secs / 3600, "hour"),
        86_400..2_592_000 => (secs / 86_400, "day"),
        _ => (secs / 2_592_000, "month"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}
