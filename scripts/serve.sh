#!/usr/bin/env bash
# The README's first command: installs what is missing (scripts/setup.sh), builds the chat UI and
# the release binary with the UI embedded, and serves the library. With an empty library
# `minerva serve` fetches the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, sha256-verified)
# first; it prints the URL of the chat UI when it listens. Arguments go to `minerva serve`
# (`--port`, `--model PATH`, ...). Idempotent: a warm machine rebuilds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== building the chat UI"
bash scripts/build-ui.sh
echo "== building minerva (release) and serving"
exec cargo run --release -p minerva-cli -- serve "$@"
