//! Resumable, verified downloads into the blobs directory.
//!
//! A download streams into `blobs/sha256-<expected>.partial` (or a name derived from the URL
//! when the server announces no sha256), hashing as it goes. A dropped connection is retried
//! with `Range: bytes=<have>-`, and a partial left by an earlier pull is resumed the same way
//! after its bytes are hashed again; the server must answer 206 with a matching
//! `Content-Range`, and a 200 starts over. The file is renamed to `sha256-<hex>` only after its
//! size, its sha256 and its GGUF structure check out. A mismatch or a full disk deletes the
//! partial; a network failure or a cancel keeps it for the next pull. A `.lock` file beside the
//! partial keeps two pulls from writing the same file.

use crate::gguf::{self, GgufInfo};
use crate::http::{self, Failure};
use crate::manifest::blob_path;
use crate::{Result, StoreError};
use minerva_core::PullProgress;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Attempts in a row that may fail without progress before the pull gives up.
const MAX_ATTEMPTS: u32 = 5;
/// Bytes read per chunk (the cancel flag is checked between chunks).
const CHUNK: usize = 256 * 1024;
/// Least time between two progress reports (besides every 1%).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A verified model file: a partial download waiting to be renamed to its blob name (under
/// the store's lock, with its manifest), or a blob the store already had.
pub(crate) struct Downloaded {
    pub sha256: String,
    pub size: u64,
    /// What the GGUF says about itself (when the download was checked as a GGUF).
    pub info: Option<GgufInfo>,
    /// The verified partial file (`None` when the blob was already present), and its lock.
    pub partial: Option<(PathBuf, PartialLock)>,
}

impl Downloaded {
    /// Removes the verified partial file, if any (a pull that fails after this file was
    /// verified leaves nothing of it behind).
    pub(crate) fn discard(self) {
        if let Some((path, _lock)) = self.partial {
            remove(&path);
        }
    }

    /// The verified partial file, if any.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.partial.as_ref().map(|(path, _)| path.as_path())
    }
}

/// What the server says about the file before the download.
struct Probe {
    sha256: Option<String>,
    size: Option<u64>,
}

/// Downloads `url` into `blobs`, verifies it (its size and sha256, and its GGUF structure when
/// `check_gguf`) and names it by its sha256.
pub(crate) fn download(
    agent: &ureq::Agent,
    url: &str,
    blobs: &Path,
    progress: &mut dyn FnMut(PullProgress),
    cancel: &AtomicBool,
    check_gguf: bool,
) -> Result<Downloaded> {
    let probe = probe(agent, url, cancel)?;
    let what = url.rsplit('/').next().unwrap_or(url).to_string();
    if let Some(sha) = &probe.sha256 {
        let blob = blob_path(blobs, sha);
        if blob.is_file() {
            // Already in the store (another name uses it): only its structure is checked again.
            tracing::info!(%url, sha256 = %sha, "blob already present");
            let info = check_gguf.then(|| gguf::read(&blob)).transpose()?;
            let size = std::fs::metadata(&blob)
                .map_err(|e| StoreError::io(format!("reading {}", blob.display()), e))?
                .len();
            progress(pulling(sha, Some(size), size));
            return Ok(Downloaded {
                sha256: sha.clone(),
                size,
                info,
                partial: None,
            });
        }
    }
    let partial = match &probe.sha256 {
        Some(sha) => blobs.join(format!("sha256-{sha}.partial")),
        None => blobs.join(format!(
            "url-{}.partial",
            &hex::encode(Sha256::digest(url.as_bytes()))[..32]
        )),
    };
    let lock = PartialLock::acquire(&partial)?;
    let mut job = Job {
        agent,
        url,
        partial: &partial,
        what: &what,
        expected_sha: probe.sha256.clone(),
        size: probe.size,
        hasher: Sha256::new(),
        have: 0,
        label: probe.sha256.clone().unwrap_or_else(|| "unknown".into()),
        last_report: (Instant::now(), 0),
    };
    let mut file = job.open_partial()?;
    job.fetch(&mut file, progress, cancel)?;
    drop(file);
    progress(PullProgress {
        status: "verifying sha256 digest".into(),
        digest: None,
        total: None,
        completed: None,
    });
    let Job {
        hasher,
        have,
        size,
        expected_sha,
        ..
    } = job;
    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = size.filter(|s| *s != have) {
        remove(&partial);
        return Err(StoreError::SizeMismatch {
            what,
            expected,
            actual: have,
        });
    }
    if let Some(expected) = expected_sha.filter(|s| *s != actual) {
        remove(&partial);
        return Err(StoreError::DigestMismatch {
            what,
            expected,
            actual,
        });
    }
    let info = match check_gguf.then(|| gguf::read(&partial)).transpose() {
        Ok(info) => info,
        Err(e) => {
            remove(&partial);
            return Err(e);
        }
    };
    tracing::info!(%url, sha256 = %actual, size = have, "downloaded and verified");
    Ok(Downloaded {
        sha256: actual,
        size: have,
        info,
        partial: Some((partial, lock)),
    })
}

/// Asks the server (HEAD, redirects followed by hand) for the file's sha256 and size.
fn probe(agent: &ureq::Agent, url: &str, cancel: &AtomicBool) -> Result<Probe> {
    let mut attempt = 0;
    loop {
        check_cancel(cancel)?;
        match http::request(agent, "HEAD", url, None) {
            Ok(reply) => {
                let size = reply.linked_size.or_else(|| {
                    reply
                        .response
                        .header("content-length")
                        .and_then(|s| s.trim().parse().ok())
                });
                return Ok(Probe {
                    sha256: reply.sha256,
                    size,
                });
            }
            // Servers that refuse HEAD: the GET will tell what it can.
            Err(Failure::Status(405 | 501, _)) => {
                return Ok(Probe {
                    sha256: None,
                    size: None,
                });
            }
            Err(Failure::Fatal(e) | Failure::Status(_, e)) => return Err(e),
            Err(Failure::Network(e)) => {
                attempt += 1;
                if attempt >= MAX_ATTEMPTS {
                    return Err(crate::http::network_error(url, e));
                }
                tracing::warn!(%url, error = %e, attempt, "retrying");
                std::thread::sleep(backoff(attempt));
            }
        }
    }
}

struct Job<'a> {
    agent: &'a ureq::Agent,
    url: &'a str,
    partial: &'a Path,
    what: &'a str,
    expected_sha: Option<String>,
    size: Option<u64>,
    hasher: Sha256,
    have: u64,
    label: String,
    last_report: (Instant, u64),
}

/// What one attempt ended with.
enum Attempt {
    Done,
    /// The connection dropped or failed: retry (`true` when bytes arrived first).
    Dropped(String, bool),
}

impl Job<'_> {
    /// Opens (or creates) the partial file and hashes what an earlier pull left in it.
    fn open_partial(&mut self) -> Result<File> {
        let io = |e| StoreError::io(format!("opening {}", self.partial.display()), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.partial)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if self.size.is_some_and(|s| len > s) {
            file.set_len(0).map_err(io)?;
            return Ok(file);
        }
        if len > 0 {
            tracing::info!(partial = %self.partial.display(), bytes = len, "resuming an earlier download");
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                self.hasher.update(&buf[..n]);
                self.have += n as u64;
            }
        }
        Ok(file)
    }

    /// Downloads the rest of the file, retrying dropped connections.
    fn fetch(
        &mut self,
        file: &mut File,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> Result<()> {
        let mut failures = 0;
        loop {
            check_cancel(cancel)?;
            if self.size.is_some_and(|s| self.have == s) {
                break;
            }
            match self.attempt(file, progress, cancel)? {
                Attempt::Done => break,
                Attempt::Dropped(why, progressed) => {
                    failures = if progressed { 1 } else { failures + 1 };
                    if failures >= MAX_ATTEMPTS {
                        return Err(StoreError::Http(format!(
                            "{}: {why} (gave up after {MAX_ATTEMPTS} attempts; the partial download is kept and resumes next time)",
                            self.url
                        )));
                    }
                    tracing::warn!(url = %self.url, error = %why, have = self.have, "connection dropped; resuming");
                    std::thread::sleep(backoff(failures));
                }
            }
        }
        self.report(progress, true);
        file.sync_all().map_err(|e| self.write_error(e))
    }

    fn attempt(
        &mut self,
        file: &mut File,
        progress: &mut dyn FnMut(PullProgress),
        cancel: &AtomicBool,
    ) -> Result<Attempt> {
        let from = (self.have > 0).then_some(self.have);
        let reply = match http::request(self.agent, "GET", self.url, from) {
            Ok(r) => r,
            Err(Failure::Network(e)) => return Ok(Attempt::Dropped(e, false)),
            Err(Failure::Status(code @ 500..=599, e)) => {
                return Ok(Attempt::Dropped(format!("HTTP {code}: {e}"), false))
            }
            // 416: the range starts at or past the end; the partial is complete or wrong.
            Err(Failure::Status(416, _)) if from.is_some() => {
                if self.size.is_none_or(|s| s != self.have) {
                    self.restart(file)?;
                    return Ok(Attempt::Dropped(
                        "the server refused the range; starting over".into(),
                        true,
                    ));
                }
                return Ok(Attempt::Done);
            }
            Err(Failure::Fatal(e) | Failure::Status(_, e)) => return Err(e),
        };
        if self.expected_sha.is_none() {
            self.expected_sha = reply.sha256.clone();
        }
        let response = reply.response;
        let length: Option<u64> = response
            .header("content-length")
            .and_then(|s| s.trim().parse().ok());
        match (from, response.status()) {
            (Some(from), 206) => {
                let range = response
                    .header("content-range")
                    .and_then(parse_content_range);
                let ok = range.is_some_and(|(start, total)| {
                    start == from && self.size.is_none_or(|s| total.is_none_or(|t| t == s))
                });
                if !ok {
                    self.restart(file)?;
                    return Ok(Attempt::Dropped(
                        "the server answered another range; starting over".into(),
                        true,
                    ));
                }
            }
            (Some(_), 200) => {
                tracing::info!(url = %self.url, "the server ignored the range; starting over");
                self.restart(file)?;
                if self.size.is_none() {
                    self.size = length;
                }
            }
            (None, 200) => {
                if self.size.is_none() {
                    self.size = length;
                }
            }
            (_, status) => {
                return Err(StoreError::Http(format!(
                    "{}: unexpected HTTP {status}",
                    self.url
                )));
            }
        }
        file.seek(SeekFrom::Start(self.have))
            .map_err(|e| self.write_error(e))?;
        let mut body = response.into_reader();
        let mut buf = vec![0u8; CHUNK];
        let start = self.have;
        loop {
            check_cancel(cancel)?;
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Attempt::Dropped(e.to_string(), self.have > start)),
            };
            if self.size.is_some_and(|s| self.have + n as u64 > s) {
                remove(self.partial);
                return Err(StoreError::SizeMismatch {
                    what: self.what.to_string(),
                    expected: self.size.unwrap_or(0),
                    actual: self.have + n as u64,
                });
            }
            file.write_all(&buf[..n]).map_err(|e| self.write_error(e))?;
            self.hasher.update(&buf[..n]);
            self.have += n as u64;
            self.report(progress, false);
        }
        if self.size.is_some_and(|s| self.have < s) {
            return Ok(Attempt::Dropped(
                "the connection closed early".into(),
                self.have > start,
            ));
        }
        Ok(Attempt::Done)
    }

    /// Throws the partial's bytes away (the server will send the whole file).
    fn restart(&mut self, file: &mut File) -> Result<()> {
        file.set_len(0).map_err(|e| self.write_error(e))?;
        self.hasher = Sha256::new();
        self.have = 0;
        Ok(())
    }

    /// A write failure: the partial cannot be trusted or resumed, so it goes.
    fn write_error(&self, e: std::io::Error) -> StoreError {
        remove(self.partial);
        if e.kind() == std::io::ErrorKind::StorageFull {
            return StoreError::DiskFull(self.partial.to_path_buf());
        }
        StoreError::io(format!("writing {}", self.partial.display()), e)
    }

    /// Reports progress every 1% or `PROGRESS_EVERY`, and always when `force`.
    fn report(&mut self, progress: &mut dyn FnMut(PullProgress), force: bool) {
        let (at, bytes) = self.last_report;
        let step = self.size.map_or(u64::MAX, |s| (s / 100).max(1));
        if force || self.have.saturating_sub(bytes) >= step || at.elapsed() >= PROGRESS_EVERY {
            progress(pulling(&self.label, self.size, self.have));
            self.last_report = (Instant::now(), self.have);
        }
    }
}

/// `pulling <short digest>` with the byte counts.
fn pulling(sha: &str, total: Option<u64>, completed: u64) -> PullProgress {
    PullProgress {
        status: format!("pulling {}", &sha[..sha.len().min(12)]),
        digest: crate::name::is_sha256_hex(sha).then(|| format!("sha256:{sha}")),
        total,
        completed: Some(completed),
    }
}

/// `bytes <start>-<end>/<total or *>` → (start, total).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        return Err(StoreError::Cancelled);
    }
    Ok(())
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500 * u64::from(attempt))
}

pub(crate) fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove");
        }
    }
}

/// `<partial>.lock`, holding the pid of the pull that writes the partial; removed on drop. A
/// lock whose process is gone (a pull that was killed) is taken over. A lock held by this
/// process is waited for a moment ([`OWN_LOCK_WAIT`]): a pull whose client went away lets go
/// within one read, and the client's next pull (a resume) should not fail for it.
pub(crate) struct PartialLock {
    path: PathBuf,
}

/// Longest a pull waits for a lock this process holds.
const OWN_LOCK_WAIT: Duration = Duration::from_secs(5);

impl PartialLock {
    fn acquire(partial: &Path) -> Result<PartialLock> {
        let began = std::time::Instant::now();
        loop {
            match Self::try_acquire(partial) {
                Err(StoreError::Busy(file))
                    if held_by_us(partial) && began.elapsed() < OWN_LOCK_WAIT =>
                {
                    tracing::debug!(%file, "waiting for this process's earlier pull to let go");
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn try_acquire(partial: &Path) -> Result<PartialLock> {
        let path = lock_path(partial);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(PartialLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if holder_alive(&path) {
                        let file = partial
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        return Err(StoreError::Busy(file));
                    }
                    tracing::warn!(lock = %path.display(), "taking over a stale lock");
                    remove(&path);
                }
                Err(e) => return Err(StoreError::io(format!("creating {}", path.display()), e)),
            }
        }
        Err(StoreError::Busy(path.display().to_string()))
    }
}

impl Drop for PartialLock {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// True when the process named in the lock file may still run.
fn lock_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// True when the partial's lock names this process.
fn held_by_us(partial: &Path) -> bool {
    std::fs::read_to_string(lock_path(partial))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        == Some(std::process::id())
}

fn holder_alive(lock: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        // Being written right now, or garbage: garbage older than a minute is stale.
        return std::fs::metadata(lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < Duration::from_secs(60));
    };
    let proc = Path::new("/proc");
    if proc.is_dir() {
        return proc.join(pid.to_string()).exists();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 5-9/10"), None);
    }

    #[test]
    fn a_lock_excludes_a_second_pull_and_goes_with_it() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let partial = dir.path().join("sha256-x.partial");
        let lock = PartialLock::acquire(&partial)?;
        assert!(matches!(
            PartialLock::try_acquire(&partial),
            Err(StoreError::Busy(_))
        ));
        drop(lock);
        let _again = PartialLock::acquire(&partial)?;
        // A lock left by a process that is gone is taken over.
        drop(_again);
        std::fs::write(dir.path().join("sha256-y.partial.lock"), "4000000000")
            .map_err(|e| StoreError::io("w", e))?;
        PartialLock::acquire(&dir.path().join("sha256-y.partial")).map(|_| ())
    }

    #[test]
    fn a_lock_this_process_lets_go_of_soon_is_waited_for() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
        let partial = dir.path().join("sha256-z.partial");
        let lock = PartialLock::acquire(&partial)?;
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(lock);
        });
        let began = std::time::Instant::now();
        let _next = PartialLock::acquire(&partial)?;
        assert!(began.elapsed() >= Duration::from_millis(250));
        letting_go
            .join()
            .map_err(|_| StoreError::Invalid("thread".into()))?;
        Ok(())
    }
}
