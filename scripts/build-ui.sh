#!/usr/bin/env bash
# Builds the chat UI into ui/dist (npm ci, then esbuild), which the minerva-ui crate embeds when
# cargo builds it. Needs Node.js 18+ and npm (scripts/setup.sh installs them); packages come from
# npm's cache (~/.npm) when they are there. node_modules is reinstalled only when
# package-lock.json changed, and dist is rebuilt only when a source changed (a stamp of their
# sha256 sums in node_modules/): rewriting dist would make cargo rebuild every crate above
# minerva-ui, on every start of scripts/serve.sh or scripts/desktop.sh.
set -euo pipefail
cd "$(dirname "$0")/../ui"
command -v npm >/dev/null || { echo "build-ui: npm not found (run scripts/setup.sh, or install Node.js 18+ and npm)"; exit 1; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --prefer-offline --no-audit --no-fund
fi
stamp_file=node_modules/.minerva-ui-sources
stamp=$(find . \( -path ./node_modules -o -path ./dist \) -prune -o -type f -print | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -c1-64)
if [ -f dist/index.html ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
  echo "ui: dist/ is up to date"
  exit 0
fi
npm run --silent build
echo "$stamp" > "$stamp_file"
