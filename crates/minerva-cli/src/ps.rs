//! `minerva ps`: what a running server has loaded, asked over its Ollama API (`/api/ps`), as
//! `ollama ps` does.

use crate::library::{human_size, print_table};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use std::time::{Duration, SystemTime};

#[derive(Args)]
pub struct PsArgs {
    /// The server's host.
    #[arg(long, default_value = "127.0.0.1", env = "MINERVA_HOST")]
    pub host: String,
    /// The server's port.
    #[arg(long, default_value_t = 11434, env = "MINERVA_PORT")]
    pub port: u16,
    /// The key of a server started with `--api-key` (sent as `Authorization: Bearer`); the
    /// first of MINERVA_API_KEY's comma-separated keys when not given.
    #[arg(long = "api-key", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub fn ps(args: PsArgs) -> Result<()> {
    let url = format!("http://{}:{}/api/ps", args.host, args.port);
    let key = args.api_key.or_else(|| {
        std::env::var("MINERVA_API_KEY").ok().and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find(|k| !k.is_empty())
                .map(str::to_string)
        })
    });
    let mut request = ureq::get(&url).timeout(Duration::from_secs(10));
    if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
        request = request.set("Authorization", &format!("Bearer {}", key.trim()));
    }
    let text = request
        .call()
        .with_context(|| format!("asking {url} (is `minerva serve` running?)"))?
        .into_string()
        .context("reading /api/ps")?;
    let body: Value = serde_json::from_str(&text).context("reading /api/ps")?;
    let models = body
        .get("models")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = |m: &Value, key: &str| m.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                text(m, "name"),
                text(m, "digest").chars().take(12).collect(),
                human_size(m.get("size").and_then(Value::as_u64).unwrap_or(0)),
                text(m, "state"),
                m.get("pid")
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".into(), |p| p.to_string()),
                text(m, "backend"),
                // The llama.cpp CPU variant (zen4, haswell, ...); "-" for other backends.
                m.get("cpu_variant")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
                until(&text(m, "expires_at")),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "ID", "SIZE", "STATE", "PID", "BACKEND", "CPU", "UNTIL",
        ],
        &rows,
    );
    Ok(())
}

/// When a model unloads, as `ollama ps` says it.
fn until(expires_at: &str) -> String {
    let Some(at) = minerva_ollama::parse_timestamp(expires_at) else {
        return String::new();
    };
    match at.duration_since(SystemTime::now()) {
        Err(_) => "Stopping...".into(),
        Ok(left) if left > Duration::from_secs(100 * 365 * 86_400) => "Forever".into(),
        Ok(left) => {
            let secs = left.as_secs();
            let (n, unit) = match secs {
                0..60 => (secs, "second"),
                60..3600 => (secs / 60, "minute"),
                3600..86_400 => (secs / 3600, "hour"),
                _ => (secs / 86_400, "day"),
            };
            format!("{n} {unit}{} from now", if n == 1 { "" } else { "s" })
        }
    }
}
