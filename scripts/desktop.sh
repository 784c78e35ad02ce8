#!/usr/bin/env bash
# Builds and starts Minerva's desktop app (crates/minerva-desktop, Tauri): installs what is
# missing (scripts/setup.sh --desktop: the build's packages and WebKitGTK 4.1, GTK, the tray's
# libayatana-appindicator, librsvg, libxdo), builds the chat UI and the release app with the UI
# embedded, and runs it. Arguments go to the app, which takes `minerva serve`'s options
# (`--port`, `--model PATH`, `--max-memory`, ...). Idempotent: a warm machine rebuilds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --desktop
echo "== building the chat UI"
bash scripts/build-ui.sh
echo "== building minerva-desktop (release) and starting it"
exec cargo run --release -p minerva-desktop -- "$@"
