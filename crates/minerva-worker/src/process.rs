//! Starting a worker process and loading a model in it: [`ProcessBackend`].

use crate::protocol::{read_message, write_message, FromWorker, ToWorker, PROTOCOL_VERSION};
use crate::remote::{Connected, RemoteModel};
use crate::WorkerError;
use minerva_core::{Backend, CoreError, Model, ModelInfo, ModelSpec, Result};
use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs each model it loads in a worker process: `exe worker --socket PATH [args...]`.
///
/// `exe` is normally the running `minerva` binary (`std::env::current_exe()`), whose hidden
/// `worker` subcommand calls [`crate::serve_worker`] with the llama.cpp backend.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    exe: PathBuf,
    args: Vec<OsString>,
    start_timeout: Duration,
    load_timeout: Duration,
    rpc_timeout: Duration,
}

impl ProcessBackend {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        ProcessBackend {
            exe: exe.into(),
            args: Vec::new(),
            start_timeout: Duration::from_secs(30),
            load_timeout: Duration::from_secs(15 * 60),
            rpc_timeout: Duration::from_secs(60),
        }
    }

    /// An argument appended to the worker's command line.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Longest a model may take to load (default 15 min).
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// Longest a worker may take to answer a tokenize, render or status call (default 60 s).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// Starts a worker, loads `spec` in it and returns the model it serves.
    pub fn load_remote(&self, spec: &ModelSpec) -> Result<RemoteModel> {
        let dir = PrivateDir::create().map_err(|e| load_error(spec, e))?;
        let socket = dir.path.join("worker.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| load_error(spec, e))?;
        let mut child = Command::new(&self.exe)
            .arg("worker")
            .arg("--socket")
            .arg(&socket)
            .args(&self.args)
            .stdin(Stdio::null())
            // The socket carries the protocol; anything native code prints goes to our stderr.
            .stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::inherit())
            // A terminal's Ctrl-C reaches the server, which then stops its workers.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                CoreError::Load(format!(
                    "cannot start the worker process {}: {e}",
                    self.exe.display()
                ))
            })?;
        let pid = child.id();
        tracing::info!(model = %spec.id, pid, "worker process started");
        let connected = self.connect(&listener, &mut child, spec);
        drop(listener);
        drop(dir);
        let (stream, info, memory_bytes) = match connected {
            Ok(connected) => connected,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        tracing::info!(model = %spec.id, pid, memory_bytes, "model loaded in its worker process");
        RemoteModel::start(Connected {
            stream,
            child,
            info,
            memory_bytes,
            rpc_timeout: self.rpc_timeout,
        })
        .map_err(|e| load_error(spec, e))
    }

    /// Accepts the worker's connection and has it load `spec`.
    fn connect(
        &self,
        listener: &UnixListener,
        child: &mut Child,
        spec: &ModelSpec,
    ) -> Result<(UnixStream, ModelInfo, u64)> {
        let stream = accept(listener, child, self.start_timeout)
            .map_err(|e| failed(child, spec, "while starting", e))?;
        let (info, memory_bytes) = self
            .handshake(&stream, child.id(), spec)
            .map_err(|e| failed(child, spec, "while loading", e))?;
        stream
            .set_read_timeout(None)
            .map_err(|e| load_error(spec, e))?;
        Ok((stream, info, memory_bytes))
    }

    /// Hello both ways, then `Load`; the model's info once it is loaded.
    fn handshake(
        &self,
        stream: &UnixStream,
        pid: u32,
        spec: &ModelSpec,
    ) -> std::result::Result<(ModelInfo, u64), WorkerError> {
        stream.set_read_timeout(Some(self.start_timeout))?;
        let mut input = stream;
        let mut output = stream;
        match read_message(&mut input)? {
            FromWorker::Hello { version, .. } if version != PROTOCOL_VERSION => {
                return Err(WorkerError::Version {
                    ours: PROTOCOL_VERSION,
                    theirs: version,
                })
            }
            FromWorker::Hello { pid: theirs, .. } if theirs != pid => {
                return Err(WorkerError::Protocol(format!(
                    "a process with pid {theirs} connected instead of the worker (pid {pid})"
                )))
            }
            FromWorker::Hello { .. } => {}
            other => return Err(WorkerError::Protocol(format!("{other:?} before hello"))),
        }
        write_message(
            &mut output,
            &ToWorker::Hello {
                version: PROTOCOL_VERSION,
            },
        )?;
        write_message(&mut output, &ToWorker::Load(spec.clone()))?;
        stream.set_read_timeout(Some(self.load_timeout))?;
        match read_message(&mut input)? {
            FromWorker::Loaded { info, memory_bytes } => Ok((*info, memory_bytes)),
            FromWorker::LoadFailed(e) => Err(WorkerError::Model(e.into())),
            other => Err(WorkerError::Protocol(format!(
                "{other:?} instead of loaded"
            ))),
        }
    }
}

impl Backend for ProcessBackend {
    /// The worker runs the llama.cpp backend.
    fn name(&self) -> &'static str {
        "llama.cpp"
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn Model>> {
        Ok(Arc::new(self.load_remote(spec)?))
    }
}

fn load_error(spec: &ModelSpec, e: impl std::fmt::Display) -> CoreError {
    CoreError::Load(format!("{}: {e}", spec.path.display()))
}

/// Waits for the worker to connect, giving up when it exits or the time is up.
fn accept(
    listener: &UnixListener,
    child: &mut Child,
    timeout: Duration,
) -> std::result::Result<UnixStream, WorkerError> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if child.try_wait()?.is_some() {
                    return Err(WorkerError::Closed);
                }
                if Instant::now() > deadline {
                    return Err(WorkerError::Io(std::io::Error::new(
                        ErrorKind::TimedOut,
                        format!("the worker did not connect within {} s", timeout.as_secs()),
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The load error for a worker that failed `when`: how it died, when it did.
fn failed(child: &mut Child, spec: &ModelSpec, when: &str, error: WorkerError) -> CoreError {
    if let WorkerError::Model(e) = error {
        return e;
    }
    let pid = child.id();
    let message = match wait_for_exit(child, Duration::from_secs(2)) {
        Some(status) => format!(
            "the worker process (pid {pid}) {} {when} {}",
            describe_exit(status),
            spec.path.display()
        ),
        None => format!(
            "the worker process (pid {pid}) failed {when} {}: {error}",
            spec.path.display()
        ),
    };
    tracing::error!(model = %spec.id, pid, "{message}");
    CoreError::Load(message)
}

/// Polls for the child's exit for up to `timeout`; its status once it exited (and was reaped).
pub(crate) fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// "exited with status 1", "was killed by signal 6 (SIGABRT)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        None => format!("ended ({status})"),
    }
}

/// A fresh directory only this user can enter, removed on drop: the socket lives there so
/// that no other user can connect to it first.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create() -> std::io::Result<PrivateDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("minerva-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_well() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
    }

    #[test]
    fn private_dirs_are_fresh_owner_only_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let a = PrivateDir::create().unwrap();
        let b = PrivateDir::create().unwrap();
        assert_ne!(a.path, b.path);
        let mode = std::fs::metadata(&a.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let path = a.path.clone();
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_executable_is_a_load_error() {
        let spec = ModelSpec {
            id: "m".into(),
            path: "/nonexistent.gguf".into(),
            ctx_size: None,
            threads: None,
            parallel: None,
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
        let err = ProcessBackend::new("/nonexistent/minerva")
            .load(&spec)
            .err()
            .unwrap();
        assert!(matches!(err, CoreError::Load(_)), "{err:?}");
    }
}
