#!/usr/bin/env bash
# Builds the desktop app's Debian package with Tauri's bundler: installs what is missing
# (scripts/setup.sh --desktop), builds the chat UI, installs tauri-cli once into
# ~/.cache/minerva/tools, builds the release app and bundles it with llama.cpp's shared
# libraries in /usr/lib/minerva (the binary's rpath, $ORIGIN/../lib/minerva). Prints the .deb's
# path last. No AppImage: its tools are downloaded from outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --desktop
echo "== building the chat UI"
bash scripts/build-ui.sh

TOOLS="${MINERVA_CACHE:-$HOME/.cache/minerva}/tools"
TAURI_CLI_VERSION=2.12.4
if [ "$("$TOOLS/bin/cargo-tauri" --version 2>/dev/null | awk '{print $2}')" != "$TAURI_CLI_VERSION" ]; then
  echo "== installing tauri-cli $TAURI_CLI_VERSION into $TOOLS (once)"
  cargo install tauri-cli --version "=$TAURI_CLI_VERSION" --locked --root "$TOOLS"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== building minerva-desktop (release)"
cargo build --release -p minerva-desktop
# llama.cpp's libraries, copied beside the binary by minerva-llama's build script, go to
# /usr/lib/minerva (merged into tauri.conf.json's bundle.linux.deb.files).
config=$(python3 - "$CARGO_TARGET_DIR"/release/lib*.so <<'PY'
import json, os, sys
libs = [p for p in sys.argv[1:] if os.path.isfile(p)]
if not libs:
    sys.exit("no llama.cpp libraries beside the release binary")
files = {f"/usr/lib/minerva/{os.path.basename(p)}": p for p in libs}
print(json.dumps({"bundle": {"linux": {"deb": {"files": files}}}}))
PY
)

echo "== bundling the .deb"
(cd crates/minerva-desktop && "$TOOLS/bin/cargo-tauri" build --bundles deb --config "$config")
deb=$(ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb | head -n1)
echo "$deb"
