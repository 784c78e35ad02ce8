#!/usr/bin/env bash
# Runs Minerva's whole test suite: Rust unit and integration tests (real models), then the
# end-to-end tests that drive a real `minerva serve` with the official `openai` and `ollama` clients,
# then the chat UI's tests in headless Chromium (tests/ui: the chat, the models view, images).
# Installs what is missing first (scripts/setup.sh --test), then fetches the test models into
# Minerva's models directory (cached, sha256-verified).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/minerva/target}"
VENV="${MINERVA_TEST_VENV:-$HOME/.cache/minerva/venv-test}"

echo "== building the chat UI (scripts/build-ui.sh)"
bash scripts/build-ui.sh

echo "== building minerva"
cargo build --workspace --bins
export MINERVA_BIN="$CARGO_TARGET_DIR/debug/minerva"

echo "== fetching test models"
models=$("$MINERVA_BIN" fetch qwen2.5-coder:0.5b gemma3:270m)
echo "$models"
export MINERVA_QWEN_GGUF="$(echo "$models" | awk -F'\t' '$1=="qwen2.5-coder:0.5b"{print $2}')"
export MINERVA_GEMMA_GGUF="$(echo "$models" | awk -F'\t' '$1=="gemma3:270m"{print $2}')"
[ -f "$MINERVA_QWEN_GGUF" ] && [ -f "$MINERVA_GEMMA_GGUF" ] || { echo "test models missing"; exit 1; }

echo "== python test environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt \
  -r tests/e2e/requirements-mlx.txt

echo "== wheels for the managed-environment test (minerva mlx setup installs from them offline)"
WHEELS="$HOME/.cache/minerva/wheels"
if [ ! -f "$WHEELS/.complete" ]; then
  "$VENV/bin/python" -m pip download -q --disable-pip-version-check -d "$WHEELS" mlx-lm 'mlx[cpu]'
  touch "$WHEELS/.complete"
fi
export MINERVA_TEST_WHEELS="$WHEELS"

echo "== MLX test model (a Hugging Face directory converted from the Qwen GGUF)"
HF_DIR="$HOME/.cache/minerva/fixtures/qwen2.5-coder-0.5b-hf"
stamp="$(sha256sum scripts/fixtures/gguf_to_hf.py | cut -c1-64) $(stat -c %s "$MINERVA_QWEN_GGUF")"
if [ "$(cat "$HF_DIR/.minerva-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$HF_DIR"
  "$VENV/bin/python" scripts/fixtures/gguf_to_hf.py "$MINERVA_QWEN_GGUF" "$HF_DIR"
  echo "$stamp" > "$HF_DIR/.minerva-stamp"
fi
export MINERVA_QWEN_HF="$HF_DIR"

echo "== vision test model (scripts/fixtures/tiny_vlm.py: the Qwen weights plus a tiny random projector)"
VLM_DIR="$HOME/.cache/minerva/fixtures/tiny-vlm"
stamp="$(sha256sum scripts/fixtures/tiny_vlm.py | cut -c1-64) $(stat -c %s "$MINERVA_QWEN_GGUF")"
if [ "$(cat "$VLM_DIR/.minerva-stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VLM_DIR"
  "$VENV/bin/python" scripts/fixtures/tiny_vlm.py "$VLM_DIR" --qwen "$MINERVA_QWEN_GGUF"
  echo "$stamp" > "$VLM_DIR/.minerva-stamp"
fi
export MINERVA_VLM_DIR="$VLM_DIR"
export MINERVA_PYTHON="$VENV/bin/python"

echo "== cargo test"
cargo test --workspace -- --test-threads=1

echo "== fuzz targets, 15 s each on their corpora (scripts/fuzz.sh; longer runs: --seconds 600)"
bash scripts/fuzz.sh --seconds 15

echo "== end-to-end tests"
"$VENV/bin/python" -m pytest -q tests/e2e

echo "== chat UI in headless Chromium (screenshots in tests/ui/screenshots)"
# playwright-core needs Node.js 20: the system's, or npm's node@20 that setup.sh installed.
node=node
node20="${MINERVA_CACHE:-$HOME/.cache/minerva}/node20/node_modules/.bin/node"
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then node="$node20"; fi
"$node" --test tests/ui/chat.spec.mjs
"$node" --test tests/ui/library.spec.mjs
"$node" --test tests/ui/vision.spec.mjs
