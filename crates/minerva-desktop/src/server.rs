//! The server the window shows: Minerva's own, started in this process on a thread of its own
//! with the same code as `minerva serve` ([`minerva_cli::serve::serve_until`]), or the one that
//! already holds the port when that is a Minerva server (as Ollama's app does).

use minerva_cli::serve::ServeArgs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What became of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// This app's server listens at the address.
    Started(SocketAddr),
    /// A Minerva server (its `Server` header says so) already held the address; the app uses it.
    Attached(SocketAddr),
    /// The server could not start (the message says why), or stopped with an error.
    Failed(String),
    /// This app's server stopped (the app quit, or the process got SIGTERM or Ctrl-C).
    Stopped,
}

/// Who holds an address that was in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A Minerva server, with its `Server` header (`Minerva/0.1.0`).
    Minerva(String),
    /// Another program: what it answered (its `Server` header, a status) or why it did not.
    Other(String),
}

/// The app's own server, while it runs.
pub struct Running {
    quit: Arc<Notify>,
    done: mpsc::Receiver<()>,
}

impl Running {
    /// Asks the server to stop and waits, at most `timeout`, until it has (its streams drained,
    /// its models' worker processes told to go).
    pub fn stop(&self, timeout: Duration) {
        self.quit.notify_one();
        if self.done.recv_timeout(timeout).is_err() {
            tracing::warn!("the server did not stop in {timeout:?}; exiting anyway");
        }
    }
}

/// Starts the server of `args` on the models root `root` unless a server holds its address.
/// `report` gets each [`Status`], from the server's thread: first `Started`, `Attached` or
/// `Failed`, and `Stopped` (or `Failed`) when a started server ends. Returns the handle of the
/// server started here, None when attached or failed before starting.
pub fn start(
    args: ServeArgs,
    root: PathBuf,
    report: impl Fn(Status) + Send + Sync + 'static,
) -> Option<Running> {
    let addr = match minerva_cli::serve::address(&args.host, args.port) {
        Ok(addr) => addr,
        Err(e) => {
            report(Status::Failed(format!("{e:#}")));
            return None;
        }
    };
    if let Err(e) = TcpListener::bind(addr) {
        if e.kind() != std::io::ErrorKind::AddrInUse {
            report(Status::Failed(format!("cannot listen on {addr}: {e}")));
            return None;
        }
        match holder(addr) {
            Holder::Minerva(server) => {
                tracing::info!(%addr, %server, "a Minerva server already serves here; the app uses it");
                report(Status::Attached(addr));
            }
            Holder::Other(what) => report(Status::Failed(format!(
                "{addr} is in use by another program ({what}). Quit it, or start the app on another port (--port or MINERVA_PORT)."
            ))),
        }
        return None;
    }
    let quit = Arc::new(Notify::new());
    let (done_tx, done) = mpsc::channel();
    let report = Arc::new(report);
    let shutdown = {
        let quit = Arc::clone(&quit);
        async move {
            tokio::select! {
                _ = quit.notified() => {}
                _ = signal() => tracing::info!("signal received: stopping the server"),
            }
        }
    };
    let spawned = std::thread::Builder::new()
        .name("minerva-server".into())
        .spawn(move || {
            let ready = {
                let report = Arc::clone(&report);
                move |local| report(Status::Started(local))
            };
            match minerva_cli::serve::serve_until(args, &root, shutdown, ready) {
                Ok(()) => report(Status::Stopped),
                Err(e) => {
                    tracing::error!("the server failed: {e:#}");
                    report(Status::Failed(format!("{e:#}")));
                }
            }
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => Some(Running { quit, done }),
        Err(e) => {
            tracing::error!("cannot start the server thread: {e}");
            None
        }
    }
}

/// An address to connect to: the unspecified address (0.0.0.0, ::) becomes loopback.
pub fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}

/// Asks what answers at `addr` (`GET /health`, 3 s), by the `Server` header Minerva sends on
/// every answer ([`minerva_server::SERVER_HEADER`]); a key-protected Minerva says so too, on
/// its 401. An unspecified address (0.0.0.0) is asked on loopback.
pub fn holder(addr: SocketAddr) -> Holder {
    let ask = loopback(addr);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .redirects(0)
        .build();
    let response = match agent.get(&format!("http://{ask}/health")).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Holder::Other(format!("no HTTP answer: {e}")),
    };
    match response.header("server") {
        Some(s) if s.starts_with("Minerva/") => Holder::Minerva(s.to_string()),
        Some(s) => Holder::Other(format!("Server: {s}")),
        None => Holder::Other(format!(
            "HTTP {} without a Server header",
            response.status()
        )),
    }
}

/// SIGTERM or Ctrl-C (SIGINT): the app stops as when quit from its menu.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server answering with `head` (status line and headers).
    fn answer_once(head: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(head.as_bytes());
        });
        addr
    }

    #[test]
    fn tells_minerva_from_other_programs() {
        let minerva =
            answer_once("HTTP/1.1 200 OK\r\nServer: Minerva/0.1.0\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(holder(minerva), Holder::Minerva("Minerva/0.1.0".into()));
        let locked = answer_once(
            "HTTP/1.1 401 Unauthorized\r\nServer: Minerva/0.1.0\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(matches!(holder(locked), Holder::Minerva(_)));
        let other = answer_once("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(holder(other), Holder::Other("Server: nginx".into()));
        let bare = answer_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(holder(bare), Holder::Other(m) if m.contains("without a Server")));
    }

    #[test]
    fn an_address_held_by_another_program_is_reported() {
        let other = answer_once("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n");
        let listener_held = TcpListener::bind(other);
        assert!(listener_held.is_err(), "the port is held");
        let args = crate::serve_args(&["--port", &other.port().to_string()]).unwrap();
        let (tx, rx) = mpsc::channel();
        let running = start(args, std::env::temp_dir(), move |s| {
            let _ = tx.send(s);
        });
        assert!(running.is_none());
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            Status::Failed(m) => assert!(m.contains("in use by another program"), "{m}"),
            s => panic!("{s:?}"),
        }
    }
}
