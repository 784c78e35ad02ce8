#!/usr/bin/env bash
# Builds the chat UI into ui/dist (npm ci, then esbuild), which the minerva-ui crate embeds when
# cargo builds it. Needs Node.js 18+ and npm (scripts/setup.sh installs them); packages come from
# npm's cache (~/.npm) when they are there. node_modules is reinstalled only when
# package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/../ui"
command -v npm >/dev/null || { echo "build-ui: npm not found (run scripts/setup.sh, or install Node.js 18+ and npm)"; exit 1; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --prefer-offline --no-audit --no-fund
fi
npm run --silent build
