//! `minerva serve`: the whole library over HTTP, models loaded on demand (and `--model`, a
//! path or a name, loaded at start and kept loaded).

use crate::with_catalog::WithCatalog;
use crate::{catalog, library, load, LoadArgs};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use minerva_core::Library;
use minerva_engine::{Engine, KeepAlive, ManagerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// A model to serve beside the library: a GGUF file (served under its file name), a Hugging
    /// Face model directory (served with MLX under its directory name), a known model's name or
    /// a model in the store. Repeatable; the first is loaded at start and kept loaded, the
    /// others load on their first request.
    #[arg(long, short = 'm')]
    pub model: Vec<String>,
    /// Start with an empty library as it is, instead of fetching the default model into it
    /// first (the chat UI then offers the default model for download).
    #[arg(long, env = "MINERVA_NO_DEFAULT_MODEL")]
    pub no_default_model: bool,
    /// Fetch http(s) image URLs that requests name (at most 20 MB each, 10 s). Off by default:
    /// only inline images (data URIs, base64) are read. On, the server fetches whatever URL a
    /// client sends, local network included.
    #[arg(long, env = "MINERVA_IMAGE_URLS")]
    pub image_urls: bool,
    /// Let `/api/pull` fetch plain `http://` URLs and hosts on loopback, private or link-local
    /// addresses. Off by default: over the API a URL must be `https://` on a public address, so
    /// a client cannot make the server fetch from its own network (`minerva pull` on this
    /// machine and hub names such as `hf.co/OWNER/REPO` are not limited).
    #[arg(long, env = "MINERVA_PULL_PRIVATE_URLS")]
    pub pull_private_urls: bool,
    #[command(flatten)]
    pub load: LoadArgs,
    #[arg(long, default_value = "127.0.0.1", env = "MINERVA_HOST")]
    pub host: String,
    #[arg(long, default_value_t = 11434, env = "MINERVA_PORT")]
    pub port: u16,
    /// How long a model stays loaded after its last request, unless the request says
    /// (Ollama's keep_alive: "5m", "1h", "0" unloads at once, "-1" never).
    #[arg(long, default_value = "5m", env = "MINERVA_KEEP_ALIVE")]
    pub keep_alive: String,
    /// Memory the loaded models may take together ("8G", "900M", bytes); the least recently
    /// used idle model is unloaded to make room [default: 3/4 of the machine's memory].
    #[arg(long, env = "MINERVA_MAX_MEMORY")]
    pub max_memory: Option<String>,
    /// Most models loaded at once [default: no limit but memory].
    #[arg(long, env = "MINERVA_MAX_LOADED_MODELS")]
    pub max_loaded: Option<usize>,
    /// Run models inside the server process instead of a worker process each (for debugging:
    /// a crash in a model then takes the server down).
    #[arg(long)]
    pub no_worker: bool,
    /// How many days `/v1/responses` keeps responses (for `previous_response_id` and
    /// `GET /v1/responses/{id}`) in the conversation database; 0 keeps none.
    #[arg(long, default_value_t = 30, env = "MINERVA_KEEP_RESPONSES_DAYS")]
    pub keep_responses_days: u64,
    /// The web UI's conversation database (SQLite) [default: minerva.db in the models root].
    #[arg(long, env = "MINERVA_UI_DB")]
    pub ui_db: Option<PathBuf>,
    /// The Python that runs Hugging Face models with mlx-lm [default: MINERVA_PYTHON, else
    /// python3 on PATH if it imports mlx_lm, else the one of `minerva mlx setup`].
    #[arg(long)]
    pub python: Option<std::path::PathBuf>,
    /// Require this API key (`Authorization: Bearer KEY` or `x-api-key: KEY`) on every API;
    /// repeatable, or comma-separated in MINERVA_API_KEY.
    #[arg(
        long = "api-key",
        env = "MINERVA_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// Read API keys from this file, one a line (blank lines and lines starting with # skipped).
    #[arg(long, env = "MINERVA_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// An admin key: needed (once any is set) to pull, delete, copy or unload models; it also
    /// works as an API key. Repeatable, or comma-separated in MINERVA_ADMIN_KEY.
    #[arg(
        long = "admin-key",
        env = "MINERVA_ADMIN_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_keys: Vec<String>,
    /// Allow browser pages from this origin besides the local ones (`https://chat.example.com`,
    /// `https://*.example.com`, `*` for any); repeatable, or comma-separated in MINERVA_ORIGINS.
    #[arg(long = "cors-origin", env = "MINERVA_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// While listening on loopback, also answer requests for this host name (the others are
    /// refused, against DNS rebinding); repeatable, or comma-separated in MINERVA_ALLOWED_HOSTS.
    #[arg(
        long = "allowed-host",
        env = "MINERVA_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// On SIGTERM or Ctrl-C, how long the streams in flight may go on (seconds) before they
    /// are ended with an error event and the server exits.
    #[arg(long, default_value_t = 10.0, env = "MINERVA_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: f64,
    /// Most tokens one request may generate, as llama-server's `--n-predict`: a request asking
    /// for more (`max_tokens`, `num_predict`, ...) or for no limit gets this many; -1 (the
    /// default) is no cap but the context.
    #[arg(
        long = "n-predict",
        visible_alias = "predict",
        env = "MINERVA_N_PREDICT",
        allow_negative_numbers = true,
        value_parser = parse_n_predict
    )]
    pub n_predict: Option<NPredict>,
    /// The llama.cpp CPU backend variant GGUF models run on (`haswell` is x86-64-v3; others:
    /// `skylakex`, `icelake`, `zen4`, `sapphirerapids`, ...) instead of the best this CPU runs;
    /// the start-up log lists those this CPU runs. A variant that is not installed or that this
    /// CPU cannot run stops the server at start. The variants are looked for beside the
    /// binary, in ../lib/minerva, or only in MINERVA_BACKEND_DIR when that is set.
    #[arg(long, env = "MINERVA_CPU_VARIANT")]
    pub cpu_variant: Option<String>,
}

/// Finds the CPU kernels GGUF models will run on before any model loads, and says which. A
/// variant or a directory the user named that does not work stops the server here; otherwise a
/// missing or broken installation is a warning (models of other backends still serve), and each
/// GGUF load reports it.
fn check_cpu_kernels() -> Result<()> {
    use minerva_llama::kernels;
    // `--cpu-variant` was copied into the environment above.
    let named = std::env::var_os(kernels::VARIANT_ENV).is_some_and(|v| !v.is_empty())
        || std::env::var_os(kernels::BACKEND_DIR_ENV).is_some_and(|v| !v.is_empty());
    match kernels::probe() {
        Ok((chosen, usable)) => {
            tracing::info!(
                variant = %chosen.variant,
                usable = %usable.join(","),
                "llama.cpp CPU kernels for GGUF models"
            );
            Ok(())
        }
        Err(e) if named => Err(anyhow!("{e}")),
        Err(e) => {
            tracing::warn!("GGUF models will not load: {e}");
            Ok(())
        }
    }
}

/// `--n-predict`: a cap (`Some`) or none (-1).
#[derive(Debug, Clone, Copy)]
pub struct NPredict(pub Option<u32>);

fn parse_n_predict(text: &str) -> std::result::Result<NPredict, String> {
    match text.trim().parse::<i64>() {
        Ok(-1) => Ok(NPredict(None)),
        Ok(n) if n >= 1 => u32::try_from(n)
            .map(|n| NPredict(Some(n)))
            .map_err(|_| format!("{n} is more than {}", u32::MAX)),
        _ => Err(format!(
            "'{text}' is not a token count: give -1 (no cap) or a number from 1 to {}",
            u32::MAX
        )),
    }
}

fn clean(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The keys of `args` (the key file read now, before any model is loaded).
fn keys(args: &ServeArgs) -> Result<minerva_server::Keys> {
    // An empty key (`--api-key "$UNSET"`, `MINERVA_ADMIN_KEY=,`) would quietly leave the
    // server open: refuse to start instead.
    for (option, values) in [
        ("--api-key (MINERVA_API_KEY)", &args.api_keys),
        ("--admin-key (MINERVA_ADMIN_KEY)", &args.admin_keys),
    ] {
        if values.iter().any(|k| k.trim().is_empty()) {
            bail!("{option} was given an empty key: give a key, or leave the option out");
        }
    }
    let mut api = clean(&args.api_keys);
    if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key file {}", path.display()))?;
        api.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        if api.is_empty() {
            bail!("the API key file {} holds no key", path.display());
        }
    }
    Ok(minerva_server::Keys {
        api,
        admin: clean(&args.admin_keys),
    })
}

/// The trust settings of `args` for a server listening on `local`.
fn trust(args: &ServeArgs, keys: minerva_server::Keys, local: SocketAddr) -> minerva_server::Trust {
    let loopback = local.ip().is_loopback();
    if !loopback && keys.api.is_empty() {
        tracing::warn!(address = %local, "listening beyond this machine without an API key");
        let can = if keys.admin.is_empty() {
            "use, pull and delete models"
        } else {
            "use the models"
        };
        eprintln!(
            "WARNING: Minerva listens on {local}, reachable from other machines, and asks for no API key: anyone who can reach it can {can}. Set --api-key (and --admin-key)."
        );
    }
    minerva_server::Trust {
        cors_origins: clean(&args.cors_origins),
        keys,
        allowed_hosts: clean(&args.allowed_hosts),
        loopback,
    }
}

/// `minerva serve`: serves until SIGTERM or Ctrl-C.
pub fn serve(args: ServeArgs, root: &Path) -> Result<()> {
    serve_until(args, root, shutdown_signal(), |_| {})
}

/// Starts the server of `args` on the models root `root` (the whole of `minerva serve`: the
/// kernel check, the library, the engine with its backends, the UI and the trust settings),
/// calls `ready` with the address once it listens (after the `--model` preload), and serves
/// until `shutdown` resolves; streams in flight then get `--shutdown-timeout` to end. Blocks
/// the calling thread, on a Tokio runtime of its own.
///
/// # Errors
/// Bad settings (sizes, durations, keys, an unusable `--cpu-variant`), a model that cannot be
/// resolved or preloaded, the UI database, or the address (in use, unresolvable).
pub fn serve_until(
    args: ServeArgs,
    root: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr) + Send,
) -> Result<()> {
    if let Some(variant) = &args.cpu_variant {
        // Read by minerva_llama::kernels in this process and in every worker, which inherits
        // the environment. Set before any thread starts.
        std::env::set_var(minerva_llama::kernels::VARIANT_ENV, variant);
    }
    check_cpu_kernels()?;
    let keys = keys(&args)?;
    let policy = if args.pull_private_urls {
        minerva_store::UrlPolicy::Any
    } else {
        minerva_store::UrlPolicy::PublicHttps
    };
    let store = WithCatalog::new(library::open(root)?.with_url_policy(policy), root);
    let default_keep_alive = minerva_server::parse_keep_alive(&args.keep_alive)
        .ok_or_else(|| anyhow!("--keep-alive '{}' is not a duration", args.keep_alive))?;
    let budget_bytes = match &args.max_memory {
        Some(text) => parse_bytes(text)
            .ok_or_else(|| anyhow!("--max-memory '{text}' is not a size such as 8G or 900M"))?,
        None => total_memory().map_or(u64::MAX, |total| total / 4 * 3),
    };
    let mut extra = Vec::new();
    for (i, model) in args.model.iter().enumerate() {
        let mmproj = args.load.mmproj.as_deref().filter(|_| i == 0);
        extra.push(load::describe(
            model,
            args.load.backend.as_deref(),
            mmproj,
            root,
        )?);
    }
    if args.load.mmproj.is_some() && args.model.is_empty() {
        bail!("--mmproj goes with a model named with --model");
    }
    if args.load.backend.is_some() && args.model.is_empty() {
        bail!("--backend applies to the models named with --model; for a library model use minerva config NAME --backend");
    }
    if args.model.is_empty() && !args.no_default_model && store.list()?.is_empty() {
        // An empty library serves the default model, fetched (and verified) first.
        let entry = catalog::find(catalog::DEFAULT_MODEL)
            .ok_or_else(|| anyhow!("the default model is not in the catalog"))?;
        eprintln!(
            "The library is empty: fetching {} ({} MB; --no-default-model skips this)",
            entry.name,
            entry.size / 1_000_000
        );
        let path = catalog::ensure(entry, &catalog::cache_dir(root))?;
        library::import_fetched(store.store(), entry, &path)?;
    }
    let store: Arc<dyn Library> = Arc::new(store);
    let preload = extra.first().map(|m| m.name.clone());
    // Models served by path have no digest until their files are hashed (in the background).
    let undigested: Vec<(String, PathBuf)> = extra
        .iter()
        .filter(|m| m.digest.is_empty())
        .map(|m| (m.name.clone(), m.path.clone()))
        .collect();
    let config = ManagerConfig {
        budget_bytes,
        max_loaded: args.max_loaded,
        default_keep_alive,
        load: load::options(&args.load)?,
        n_predict: args.n_predict.and_then(|n| n.0),
        ..ManagerConfig::default()
    };
    tracing::info!(
        budget_mib = budget_bytes >> 20,
        keep_alive = %args.keep_alive,
        max_loaded = ?args.max_loaded,
        "model manager"
    );
    let placement = if args.no_worker {
        load::Placement::InProcess
    } else {
        load::Placement::Worker
    };
    let backends = load::backends(placement, args.python.as_deref())?;
    let engine = Engine::with_library(Some(store), backends, extra, config);
    let ui_db = args
        .ui_db
        .clone()
        .unwrap_or_else(|| root.join("minerva.db"));
    let conversations = Arc::new(
        minerva_ui::Store::open(&ui_db)
            .with_context(|| format!("opening the UI's conversations at {}", ui_db.display()))?,
    );
    tracing::info!(db = %ui_db.display(), built = minerva_ui::is_built(), "web UI");
    let facts = minerva_ui::ServerFacts {
        memory_budget_bytes: (budget_bytes != u64::MAX).then_some(budget_bytes),
        catalog: catalog::CATALOG
            .iter()
            .map(|e| minerva_ui::Offer {
                name: e.name.to_string(),
                size_bytes: e.size,
                default: e.name == catalog::DEFAULT_MODEL,
            })
            .collect(),
    };

    let drain = std::time::Duration::try_from_secs_f64(args.shutdown_timeout)
        .map_err(|_| anyhow!("--shutdown-timeout must be a number of seconds, 0 or more"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let digest_root = root.to_path_buf();
    rt.block_on(async move {
        digest_in_background(&engine, undigested, digest_root);
        if let Some(name) = preload {
            // The model named on the command line is ready before the server says it is
            // healthy, and stays loaded (as llama-server's does).
            engine
                .model_with(Some(&name), Some(KeepAlive::Forever))
                .await
                .with_context(|| format!("loading {name}"))?;
        }
        let addr = address(&args.host, args.port)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tracing::info!("listening on http://{local}");
        ready(local);
        eprintln!(
            "Minerva is ready: chat UI at http://{local}/ (OpenAI, Ollama and Anthropic APIs at http://{local})"
        );
        let trust = trust(&args, keys, local);
        tracing::info!(
            keys = trust.keys.api.len(),
            admin_keys = trust.keys.admin.len(),
            cors_origins = ?trust.cors_origins,
            host_check = trust.loopback,
            pull_private_urls = args.pull_private_urls,
            "trust"
        );
        let responses = (args.keep_responses_days > 0).then(|| {
            Arc::new(crate::kept_responses::KeptResponses {
                store: Arc::clone(&conversations),
                retention: std::time::Duration::from_secs(args.keep_responses_days * 86_400),
            }) as Arc<dyn minerva_server::ResponseStore>
        });
        let app = minerva_server::protect(
            minerva_ui::attach(
                minerva_server::router_with(
                    engine,
                    minerva_server::Options {
                        responses,
                        image_urls: args.image_urls.then(minerva_server::ImageUrls::default),
                    },
                ),
                conversations,
                facts,
            ),
            trust,
        );
        minerva_server::serve(listener, app, shutdown, drain).await?;
        tracing::info!("server stopped");
        Ok(())
    })
}

/// Hashes the models served by path on a blocking thread, one after the other, and hands each
/// digest to the engine once known (cached across starts, see [`minerva_store::PathDigests`]).
fn digest_in_background(engine: &Engine, models: Vec<(String, PathBuf)>, root: PathBuf) {
    if models.is_empty() {
        return;
    }
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let digests = minerva_store::PathDigests::new(&root);
        for (name, path) in models {
            match digests.digest(&path) {
                Ok(digest) => {
                    tracing::info!(model = %name, %digest, "digest of a model served by path");
                    engine.set_digest(&name, digest);
                }
                Err(e) => tracing::warn!(model = %name, error = %e, "could not hash the model"),
            }
        }
    });
}

/// The address `minerva serve` binds for `--host` and `--port`: `host` as an IP address, else
/// the first address it resolves to.
///
/// # Errors
/// `host` resolves to no address.
pub fn address(host: &str, port: u16) -> Result<SocketAddr> {
    if let Ok(addr) = format!("{host}:{port}").parse() {
        return Ok(addr);
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow!("cannot resolve {host}"))
}

/// "8G", "900M", "1.5GiB", "512k" or a number of bytes.
fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The machine's memory (`MemTotal` of /proc/meminfo).
fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("900M"), Some(900 << 20));
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1G"), None);
    }
}
