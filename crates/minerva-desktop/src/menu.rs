//! The app menu (the window's menu bar on Linux) and the tray menu: the loaded models, "Keep
//! serving when the window closes", and Quit. What each item does is [`action`]; the loaded
//! models are read from the server's `/api/ps` and shown by [`model_lines`].

use serde_json::Value;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::{AppHandle, Runtime};

/// Menu item ids.
pub const QUIT: &str = "quit";
pub const SHOW: &str = "show";
pub const KEEP_SERVING: &str = "keep-serving";

/// What a menu item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop the app's server (when it started one) and exit.
    Quit,
    /// Show and focus the window (hidden after a close while "keep serving" is on).
    Show,
    /// Closing the window keeps serving, or not (the check item's new state).
    KeepServing(bool),
}

/// The action of the menu item `id`; `checked` is the check item's state after the click.
/// None for items that do nothing (the loaded models).
pub fn action(id: &str, checked: impl FnOnce() -> bool) -> Option<Action> {
    match id {
        QUIT => Some(Action::Quit),
        SHOW => Some(Action::Show),
        KEEP_SERVING => Some(Action::KeepServing(checked())),
        _ => None,
    }
}

/// One line per model in an `/api/ps` answer (`{"models": [{"name", "size", "cpu_variant"}]}`):
/// `NAME · SIZE MB · CPU` (the CPU kernels when the server reports them). "No model loaded"
/// when there is none; None when `ps` is not such an answer.
pub fn model_lines(ps: &Value) -> Option<Vec<String>> {
    let models = ps.get("models")?.as_array()?;
    if models.is_empty() {
        return Some(vec!["No model loaded".to_string()]);
    }
    Some(
        models
            .iter()
            .filter_map(|m| {
                let name = m.get("name")?.as_str()?;
                let mut line = name.to_string();
                if let Some(size) = m.get("size").and_then(Value::as_u64) {
                    line.push_str(&format!(" · {} MB", size / 1_000_000));
                }
                if let Some(cpu) = m.get("cpu_variant").and_then(Value::as_str) {
                    line.push_str(&format!(" · {cpu}"));
                }
                Some(line)
            })
            .collect(),
    )
}

/// The menus and the items whose state changes.
pub struct Menus<R: Runtime> {
    /// The menu bar: "Minerva" (loaded models, keep serving, quit).
    pub app: Menu<R>,
    /// The tray's menu: show, loaded models, quit.
    pub tray: Menu<R>,
    /// "Keep serving when the window closes".
    pub keep_serving: CheckMenuItem<R>,
    /// The loaded-models submenus of both, refilled by [`Menus::show_models`].
    models: [Submenu<R>; 2],
    /// The lines shown now (the submenus are refilled only when they change).
    shown: std::sync::Mutex<Vec<String>>,
}

impl<R: Runtime> Menus<R> {
    /// Builds both menus; `keep_serving` is the check item's first state.
    ///
    /// # Errors
    /// Tauri's menu calls (the main thread is gone).
    pub fn build(app: &AppHandle<R>, keep_serving: bool) -> tauri::Result<Self> {
        let models_app = Submenu::with_id(app, "models-app", "Loaded models", true)?;
        let models_tray = Submenu::with_id(app, "models-tray", "Loaded models", true)?;
        let keep = CheckMenuItem::with_id(
            app,
            KEEP_SERVING,
            "Keep serving when the window closes",
            true,
            keep_serving,
            None::<&str>,
        )?;
        let quit = MenuItem::with_id(app, QUIT, "Quit Minerva", true, Some("CmdOrCtrl+Q"))?;
        let minerva = Submenu::with_items(
            app,
            "Minerva",
            true,
            &[
                &models_app,
                &PredefinedMenuItem::separator(app)?,
                &keep,
                &PredefinedMenuItem::separator(app)?,
                &quit,
            ],
        )?;
        let app_menu = Menu::with_items(app, &[&minerva])?;
        let tray = Menu::with_items(
            app,
            &[
                &MenuItem::with_id(app, SHOW, "Show Minerva", true, None::<&str>)?,
                &models_tray,
                &PredefinedMenuItem::separator(app)?,
                &MenuItem::with_id(app, format!("{QUIT}-tray"), "Quit", true, None::<&str>)?,
            ],
        )?;
        let menus = Menus {
            app: app_menu,
            tray,
            keep_serving: keep,
            models: [models_app, models_tray],
            shown: std::sync::Mutex::new(Vec::new()),
        };
        menus.show_models(app, &["Starting…".to_string()])?;
        Ok(menus)
    }

    /// Shows `lines` as the loaded models (disabled items), when they differ from those shown.
    ///
    /// # Errors
    /// Tauri's menu calls.
    pub fn show_models(&self, app: &AppHandle<R>, lines: &[String]) -> tauri::Result<()> {
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.as_slice() == lines {
            return Ok(());
        }
        for submenu in &self.models {
            while submenu.remove_at(0)?.is_some() {}
            for line in lines {
                submenu.append(&MenuItem::new(app, line, false, None::<&str>)?)?;
            }
        }
        *shown = lines.to_vec();
        Ok(())
    }
}

/// The tray's Quit has its own id (an id may appear once per menu set); it quits all the same.
pub fn normalize(id: &str) -> &str {
    id.strip_suffix("-tray").unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions() {
        assert_eq!(action(QUIT, || unreachable!()), Some(Action::Quit));
        assert_eq!(
            action(normalize("quit-tray"), || unreachable!()),
            Some(Action::Quit)
        );
        assert_eq!(action(SHOW, || unreachable!()), Some(Action::Show));
        assert_eq!(
            action(KEEP_SERVING, || true),
            Some(Action::KeepServing(true))
        );
        assert_eq!(
            action(KEEP_SERVING, || false),
            Some(Action::KeepServing(false))
        );
        assert_eq!(action("models-app", || false), None);
    }

    #[test]
    fn loaded_models_lines() {
        let ps = json!({"models": [
            {"name": "qwen2.5-coder:0.5b", "size": 491_000_000u64, "cpu_variant": "zen4"},
            {"name": "tiny-vlm", "size": 12_000_000u64},
            {"size": 1}
        ]});
        assert_eq!(
            model_lines(&ps).unwrap(),
            vec!["qwen2.5-coder:0.5b · 491 MB · zen4", "tiny-vlm · 12 MB"]
        );
        assert_eq!(
            model_lines(&json!({"models": []})).unwrap(),
            vec!["No model loaded"]
        );
        assert_eq!(model_lines(&json!({"error": "unauthorized"})), None);
    }
}
