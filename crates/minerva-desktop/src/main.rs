//! `minerva-desktop`: Minerva in a window. The engine and the server run in this process with
//! the code of `minerva serve` (`minerva_cli::serve::serve_until`, the same options and
//! environment variables), the window shows the chat UI the server serves, and models run in
//! worker processes of this same executable (its hidden `worker` mode). When a Minerva server
//! already holds the port, the window shows that one instead of starting a second.
//!
//! The models root and the port are the CLI's (`MINERVA_MODELS`, `MINERVA_PORT`, ...), so the
//! app and `minerva` share their models. An empty library is not filled silently: the chat UI
//! offers the default model for download (as `minerva serve --no-default-model`).

mod menu;
mod server;
mod settings;

use clap::{Parser, Subcommand};
use menu::{Action, Menus};
use minerva_cli::serve::ServeArgs;
use server::{Running, Status};
use settings::Settings;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tauri::webview::PageLoadEvent;
use tauri::{AppHandle, Manager, RunEvent, WebviewUrl, WebviewWindowBuilder, WindowEvent};

/// The window's label.
const MAIN: &str = "main";

#[derive(Parser)]
#[command(
    name = "minerva-desktop",
    version,
    about = "Minerva's desktop app: the server of `minerva serve` and its chat UI in a window",
    args_conflicts_with_subcommands = true
)]
struct DesktopCli {
    /// The models root, as `minerva --models-dir` [env: MINERVA_MODELS or MINERVA_MODELS_DIR;
    /// default: ~/.local/share/minerva].
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// The options of `minerva serve` (port, memory budget, keys, ...).
    #[command(flatten)]
    serve: Box<ServeArgs>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve one model for the app's server (internal).
    #[command(hide = true)]
    Worker(minerva_cli::worker::WorkerArgs),
}

/// `minerva serve`'s options from the app's command line `argv` (without the program name), as
/// the app uses them ([`app_args`]).
#[cfg(test)]
fn serve_args(argv: &[&str]) -> Result<ServeArgs, clap::Error> {
    let cli =
        DesktopCli::try_parse_from(std::iter::once("minerva-desktop").chain(argv.iter().copied()))?;
    Ok(app_args(*cli.serve))
}

/// The app's server: `minerva serve` with `args`, except that an empty library is offered the
/// default model in the UI, never filled at start.
fn app_args(mut args: ServeArgs) -> ServeArgs {
    args.no_default_model = true;
    args
}

/// What the event handlers share.
struct AppState {
    menus: Menus<tauri::Wry>,
    settings: Mutex<Settings>,
    settings_path: Option<PathBuf>,
    /// The server this app started (None when attached, failed or not yet started).
    running: Mutex<Option<Running>>,
    /// Why the server could not start, shown on the loading page (again when it reloads).
    failure: Mutex<Option<String>>,
    /// `--shutdown-timeout`, and a little more: how long quitting waits for the server.
    stop_timeout: Duration,
    exiting: AtomicBool,
}

fn main() -> anyhow::Result<()> {
    let cli = DesktopCli::parse();
    // The app logs its server's work on stderr, as `minerva serve` does.
    minerva_cli::init_logging(minerva_cli::SERVER_LOG_FILTER);
    if let Some(Mode::Worker(args)) = cli.mode {
        return minerva_cli::worker::run(args);
    }
    let root = minerva_cli::library::models_root(cli.models_dir.as_deref())?;
    check_display()?;
    run_app(app_args(*cli.serve), root)
}

/// A window needs a display: without one (a shell over ssh, a service) say so, instead of GTK's
/// panic.
fn check_display() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
            anyhow::bail!(
                "no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set): the desktop app needs one; `minerva serve` runs the same server without a window"
            );
        }
    }
    Ok(())
}

fn run_app(args: ServeArgs, root: PathBuf) -> anyhow::Result<()> {
    let settings_path = settings::path();
    let settings = settings_path
        .as_deref()
        .map(settings::load)
        .unwrap_or_default();
    // An unusable --shutdown-timeout stops the server at start; the wait is then moot.
    let stop_timeout = Duration::try_from_secs_f64(args.shutdown_timeout)
        .unwrap_or(Duration::ZERO)
        .saturating_add(Duration::from_secs(5));
    let key = args.api_keys.first().cloned();
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("Minerva was started again: showing its window");
            show_window(app);
        }))
        .setup(move |app| {
            let handle = app.handle().clone();
            let menus = Menus::build(&handle, settings.keep_serving_on_close)?;
            app.set_menu(menus.app.clone())?;
            tray(&handle, &menus);
            window(&handle)?;
            app.manage(AppState {
                menus,
                settings: Mutex::new(settings),
                settings_path,
                running: Mutex::new(None),
                failure: Mutex::new(None),
                stop_timeout,
                exiting: AtomicBool::new(false),
            });
            start_server(handle, args, root, key);
            Ok(())
        })
        .on_menu_event(|app, event| {
            let id = menu::normalize(event.id().as_ref());
            let state = app.state::<AppState>();
            let checked = || state.menus.keep_serving.is_checked().unwrap_or(false);
            match menu::action(id, checked) {
                Some(Action::Quit) => quit(app),
                Some(Action::Show) => show_window(app),
                Some(Action::KeepServing(on)) => {
                    let mut settings = state.settings.lock().unwrap_or_else(|p| p.into_inner());
                    settings.keep_serving_on_close = on;
                    tracing::info!(keep_serving_on_close = on, "setting changed");
                    if let Some(path) = &state.settings_path {
                        if let Err(e) = settings::save(path, &settings) {
                            tracing::warn!(path = %path.display(), error = %e, "cannot save the settings");
                        }
                    }
                }
                None => {}
            }
        })
        .on_window_event(|window, event| {
            tracing::debug!(?event, "window event");
            if let WindowEvent::CloseRequested { api, .. } = event {
                tracing::info!("window: close requested");
                let state = window.app_handle().state::<AppState>();
                let keep = state
                    .settings
                    .lock()
                    .map(|s| s.keep_serving_on_close)
                    .unwrap_or(false);
                let serving = state.running.lock().map(|r| r.is_some()).unwrap_or(false);
                if keep && serving {
                    tracing::info!("window closed; the server keeps serving (quit from the menu)");
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        });
    let app = build_quietly(builder)?;
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            stop_server(app);
        }
    });
    Ok(())
}

/// Builds the app. GTK panics when it cannot open the display (a wrong `DISPLAY`); that becomes
/// an error that says so, without a backtrace.
fn build_quietly(builder: tauri::Builder<tauri::Wry>) -> anyhow::Result<tauri::App> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder.build(tauri::generate_context!())
    }));
    std::panic::set_hook(previous);
    match built {
        Ok(app) => Ok(app?),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let display = std::env::var("DISPLAY").unwrap_or_default();
            anyhow::bail!("cannot open the window on display '{display}': {why}")
        }
    }
}

/// Shows the main window (hidden after a close while "keep serving" is on) and focuses it.
fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// The main window, on the loading page until the server is up.
fn window(app: &AppHandle) -> tauri::Result<()> {
    WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .title("Minerva")
        .inner_size(1100.0, 760.0)
        .min_inner_size(480.0, 360.0)
        .on_page_load(|window, payload| {
            if payload.event() == PageLoadEvent::Finished {
                tracing::info!(url = %payload.url(), "window: page loaded");
                // The loading page shows why the server did not start, once it can.
                let failure = window
                    .try_state::<AppState>()
                    .and_then(|s| s.failure.lock().ok().and_then(|f| f.clone()));
                if let Some(message) = failure {
                    show_failure(&window, &message);
                }
            }
        })
        .on_document_title_changed(|_, title| tracing::info!(%title, "window: page title"))
        .build()?;
    Ok(())
}

/// The tray icon with its menu. A desktop without a tray host (or without libayatana-appindicator)
/// gets none: the menu bar has the same items.
fn tray(app: &AppHandle, menus: &Menus<tauri::Wry>) {
    let Some(icon) = app.default_window_icon().cloned() else {
        return;
    };
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tauri::tray::TrayIconBuilder::with_id("minerva")
            .icon(icon)
            .tooltip("Minerva")
            .menu(&menus.tray)
            .build(app)
    }));
    match built {
        Ok(Ok(tray)) => {
            // Kept for the app's lifetime: dropping the handle removes the icon.
            std::mem::forget(tray);
        }
        Ok(Err(e)) => tracing::warn!("no tray icon: {e}"),
        Err(_) => tracing::warn!("no tray icon: the tray library could not be loaded"),
    }
}

/// Starts (or finds) the server on a thread of its own, and points the window at it.
fn start_server(app: AppHandle, args: ServeArgs, root: PathBuf, key: Option<String>) {
    let spawned = std::thread::Builder::new()
        .name("minerva-start".into())
        .spawn(move || {
            let reporter = app.clone();
            let running = server::start(args, root, move |status| {
                on_status(&reporter, status, key.clone())
            });
            let state = app.state::<AppState>();
            *state.running.lock().unwrap_or_else(|p| p.into_inner()) = running;
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the server thread: {e}");
    }
}

/// What the window and the menus do with the server's [`Status`].
fn on_status(app: &AppHandle, status: Status, key: Option<String>) {
    tracing::info!(?status, "server status");
    let window = app.get_webview_window(MAIN);
    match status {
        Status::Started(addr) | Status::Attached(addr) => {
            let attached = matches!(status, Status::Attached(_));
            let addr = server::loopback(addr);
            if attached {
                eprintln!("Minerva is already serving on http://{addr}/: the app uses that server");
                if let Some(w) = &window {
                    let _ = w.set_title(&format!("Minerva (the server already running on {addr})"));
                }
            }
            match url::Url::parse(&format!("http://{addr}/ui/")) {
                Ok(url) => {
                    if let Some(w) = &window {
                        if let Err(e) = w.navigate(url) {
                            tracing::error!("cannot open the chat UI: {e}");
                        }
                    }
                }
                Err(e) => tracing::error!("bad UI address: {e}"),
            }
            watch_models(app.clone(), addr, key);
        }
        Status::Failed(message) => {
            eprintln!("Minerva could not start its server: {message}");
            let state = app.state::<AppState>();
            *state.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
            if let Some(w) = &window {
                show_failure(w, &message);
            }
        }
        Status::Stopped => quit(app),
    }
}

/// Shows `message` on the loading page (a no-op on another page, or before the page is there:
/// the page-load handler shows it then).
fn show_failure(window: &tauri::WebviewWindow, message: &str) {
    let text = serde_json::to_string(&format!("Minerva could not start its server:\n\n{message}"))
        .unwrap_or_default();
    let script = format!(
        "(() => {{ const s = document.getElementById('status'); if (s) {{ s.className = 'error'; s.textContent = {text}; }} }})();"
    );
    if let Err(e) = window.eval(&script) {
        tracing::warn!("cannot show the error in the window: {e}");
    }
}

/// Shows the server's loaded models in the menus, read from `/api/ps` every 2 s.
fn watch_models(app: AppHandle, addr: SocketAddr, key: Option<String>) {
    let spawned = std::thread::Builder::new()
        .name("minerva-models".into())
        .spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            loop {
                let mut request = agent.get(&format!("http://{addr}/api/ps"));
                if let Some(key) = &key {
                    request = request.set("authorization", &format!("Bearer {key}"));
                }
                let lines = match request.call() {
                    Ok(r) => r
                        .into_string()
                        .ok()
                        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                        .and_then(|v| menu::model_lines(&v))
                        .unwrap_or_else(|| vec!["Unknown (unexpected answer)".into()]),
                    Err(ureq::Error::Status(code, _)) => vec![format!("Unknown (HTTP {code})")],
                    Err(_) => vec!["Unknown (server not answering)".into()],
                };
                let state = app.state::<AppState>();
                if state.exiting.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = state.menus.show_models(&app, &lines) {
                    tracing::debug!("cannot update the menu: {e}");
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the loaded models: {e}");
    }
}

/// Quits the app (its server is stopped on the way out, see [`stop_server`]).
fn quit(app: &AppHandle) {
    let state = app.state::<AppState>();
    if !state.exiting.swap(true, Ordering::SeqCst) {
        tracing::info!("quitting");
        app.exit(0);
    }
}

/// Stops the server this app started, waiting for its streams and workers to end.
fn stop_server(app: &AppHandle) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    state.exiting.store(true, Ordering::SeqCst);
    let running = state
        .running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(running) = running {
        tracing::info!("stopping the server");
        running.stop(state.stop_timeout);
    }
}
