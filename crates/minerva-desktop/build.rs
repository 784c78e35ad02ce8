//! Tauri's build step: reads tauri.conf.json, checks the icons and embeds the loading page.
fn main() {
    tauri_build::build();
}
