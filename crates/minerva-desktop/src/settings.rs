//! The app's own settings (what the CLI has no flag for), in `desktop.json` of the user's
//! config directory (`~/.config/minerva/desktop.json` on Linux, or `MINERVA_DESKTOP_CONFIG`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file's contents. Unknown fields are ignored and missing ones take their default, so an
/// older or newer app reads the file without losing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Closing the window hides it and the server keeps serving (quit from the menu or the
    /// tray); off, closing the window quits the app and stops its server.
    pub keep_serving_on_close: bool,
}

/// Where the settings live: `MINERVA_DESKTOP_CONFIG` when set, else `minerva/desktop.json` in
/// the config directory (None where there is none).
pub fn path() -> Option<PathBuf> {
    match std::env::var_os("MINERVA_DESKTOP_CONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::config_dir().map(|d| d.join("minerva").join("desktop.json")),
    }
}

/// The settings at `path`; the defaults when the file is missing, and (with a warning) when it
/// cannot be read or parsed: a broken settings file must not keep the app from starting.
pub fn load(path: &Path) -> Settings {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable settings");
            Settings::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the settings");
            Settings::default()
        }
    }
}

/// Writes `settings` to `path` (its directory made when missing), through a temporary file
/// renamed into place so that a crash never leaves half a file.
///
/// # Errors
/// The directory cannot be made or the file written.
pub fn save(path: &Path, settings: &Settings) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(settings).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() {
        let dir = std::env::temp_dir().join(format!("minerva-desktop-{}", std::process::id()));
        let file = dir.join("sub").join("desktop.json");
        assert_eq!(load(&file), Settings::default(), "missing file");
        let on = Settings {
            keep_serving_on_close: true,
        };
        save(&file, &on).unwrap();
        assert_eq!(load(&file), on);
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(load(&file), Settings::default(), "broken file");
        std::fs::write(&file, r#"{"keep_serving_on_close": true, "later": 1}"#).unwrap();
        assert_eq!(load(&file), on, "unknown fields are ignored");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
