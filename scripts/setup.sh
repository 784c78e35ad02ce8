#!/usr/bin/env bash
# Installs what building Minerva needs on Debian or Ubuntu, when it is missing; with --test, also
# what the test suite needs. Idempotent: on a ready machine it only checks, in well under a second.
#
#   bash scripts/setup.sh          # build: C/C++ compiler, cmake, libclang-dev (bindgen), Node.js
#                                  # and npm (the chat UI), python3 with pip (fetching the models)
#   bash scripts/setup.sh --desktop
#                                  # and: the desktop app's libraries (WebKitGTK 4.1, GTK, the
#                                  # tray's libayatana-appindicator, librsvg, libxdo)
#   bash scripts/setup.sh --test   # and: the desktop app's libraries, python3-venv, Debian's
#                                  # chromium (the UI test), Xvfb, xdotool and ImageMagick (the
#                                  # desktop test), and a Node.js 20 for playwright-core when the
#                                  # system's is older
#
# Packages come from apt-get (directly as root, through sudo otherwise); when neither works the
# script names the packages to install and stops. Rust is not installed here: Debian's rustc is
# older than the workspace's rust-version, so the script says how to get a current one (rustup).
set -euo pipefail
cd "$(dirname "$0")/.."

test_deps=0
desktop_deps=0
case "${1:-}" in
  --test) test_deps=1; desktop_deps=1 ;;
  --desktop) desktop_deps=1 ;;
  "") ;;
  *) echo "usage: $0 [--test | --desktop]" >&2; exit 2 ;;
esac

# --- Rust --------------------------------------------------------------------------------------
required=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
rustup_hint="Install a current Rust with rustup (https://rustup.rs):
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
  . \"\$HOME/.cargo/env\"
then run this command again."
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found. Minerva needs Rust $required or newer (Debian's packaged rustc is too old)."
  echo "$rustup_hint"
  exit 1
fi
have=$(cargo --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$required" "$have" | sort -V | head -n1)" != "$required" ]; then
  echo "setup: cargo $have is older than the $required this workspace needs."
  echo "$rustup_hint"
  exit 1
fi

# --- Debian packages ---------------------------------------------------------------------------
missing=()
command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 \
  || missing+=(build-essential)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# bindgen (llama-cpp-2's bindings) loads libclang at build time: libclang.so from libclang-dev
# (libclang-cpp, which other packages bring, is a different library and does not count).
compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null || compgen -G '/usr/lib/*/libclang.so' >/dev/null \
  || missing+=(libclang-dev)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ "$desktop_deps" = 1 ]; then
  # Tauri's Linux prerequisites, found through pkg-config as its build scripts find them.
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  pc() { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1"; }
  pc webkit2gtk-4.1 || missing+=(libwebkit2gtk-4.1-dev)
  pc ayatana-appindicator3-0.1 || missing+=(libayatana-appindicator3-dev)
  pc librsvg-2.0 || missing+=(librsvg2-dev)
  [ -e /usr/include/xdo.h ] || missing+=(libxdo-dev)
fi
if [ "$test_deps" = 1 ]; then
  python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
  command -v xdotool >/dev/null 2>&1 || missing+=(xdotool)
  [ -x /usr/bin/import ] || missing+=(imagemagick)
  command -v dbus-run-session >/dev/null 2>&1 || missing+=(dbus)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "setup: these Debian packages are missing and there is no sudo to install them:"
    echo "  apt-get install ${missing[*]}"
    echo "Run that as root, then this command again."
    exit 1
  fi
  echo "== installing ${missing[*]} (apt-get)"
  if ! "${as_root[@]}" apt-get update -qq \
    || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    echo "setup: apt-get could not install: ${missing[*]}"
    echo "Install them (apt-get install ${missing[*]}), then run this command again."
    exit 1
  fi
fi

# --- Node.js -----------------------------------------------------------------------------------
# The UI build (esbuild) runs on Node.js 18, Debian 12's own; the browser test's playwright-core
# needs 20, which comes from npm's `node` package when the system's is older.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 18 ]; then
  echo "setup: Node.js $(node --version 2>/dev/null || echo missing) is too old to build the UI (18 or newer)."
  echo "Install a newer nodejs package (Debian 12 and Ubuntu 24.04 have 18), then run this command again."
  exit 1
fi
if [ "$test_deps" = 1 ] && [ "$node_major" -lt 20 ]; then
  node20="${MINERVA_CACHE:-$HOME/.cache/minerva}/node20"
  if [ ! -x "$node20/node_modules/.bin/node" ]; then
    echo "== Node.js $(node --version) is older than 20: installing npm's node@20 into $node20 (for playwright-core)"
    npm install --prefix "$node20" --no-audit --no-fund --silent node@20 >/dev/null
  fi
fi
exit 0
