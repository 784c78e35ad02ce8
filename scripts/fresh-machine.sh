#!/usr/bin/env bash
# Runs the README's first command, exactly as written (`bash scripts/serve.sh`), in a fresh
# Debian 12 chroot, then checks that `/` serves the real chat UI and that a chat completes.
#
#   sudo bash scripts/fresh-machine.sh            # needs root (debootstrap, chroot, bind mounts)
#   sudo bash scripts/fresh-machine.sh --if-changed
#
# --if-changed (what .ci/run uses) runs only when what the README's first command depends on
# changed since the last passing run: the README's two commands, scripts/setup.sh, serve.sh,
# build-ui.sh, this script and the UI's npm manifests (their sha256, kept in
# ~/.cache/minerva/fresh/passed after each passing run). Without root it says so and skips.
#
# What the chroot starts with: `debootstrap --variant=minbase bookworm` (cached as a tarball in
# ~/.cache/minerva/fresh; every run unpacks a new copy), plus `git` and `ca-certificates` to clone
# with: no compiler, cmake, Node.js, Python or browser — scripts/setup.sh must install them. Only two
# things come from the host, so that each run does not repeat hours of work: the host's rustup
# toolchain (~/.rustup, ~/.cargo, bind-mounted; the README asks for a current Rust) and a cargo
# target directory (CARGO_TARGET_DIR, bind-mounted from ~/.cache/minerva/fresh/target). The
# default model is fetched from the package index and verified inside the chroot, as a new user's
# first run does (`FRESH_SHARE_MODELS=1` bind-mounts the host's models instead).
#
# Prints the time from the clone to the server's "ready" line and to the first streamed token.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
CACHE="${MINERVA_CACHE:-$HOME/.cache/minerva}/fresh"

# What the first command depends on: the README's code blocks under "The two commands", and
# the scripts and manifests they run.
inputs_digest() {
  { awk '/^## The two commands/{on=1; next} /^## /{on=0} on && /^```/{code=!code; next} on && code' README.md
    cat scripts/setup.sh scripts/serve.sh scripts/build-ui.sh scripts/fresh-machine.sh ui/package.json ui/package-lock.json .cargo/config.toml
  } | sha256sum | cut -c1-64
}
digest=$(inputs_digest)
if [ "${1:-}" = "--if-changed" ]; then
  if [ "$(cat "$CACHE/passed" 2>/dev/null)" = "$digest" ]; then
    echo "fresh-machine: the first command and its scripts are unchanged since the last passing run; skipped"
    exit 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "fresh-machine: the first command's scripts changed, but this check needs root (debootstrap, chroot); skipped"
    exit 0
  fi
  echo "fresh-machine: the first command's scripts changed since the last passing run: running it in a fresh chroot"
fi
TARBALL="$CACHE/bookworm-minbase.tar"
ROOT="$CACHE/root"
PORT="${FRESH_PORT:-18434}"
mkdir -p "$CACHE/target"

[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root (debootstrap, chroot and mounts need it)"; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

if [ ! -f "$TARBALL" ]; then
  echo "== debootstrap bookworm (once; cached in $TARBALL)"
  rm -rf --one-file-system "$CACHE/bootstrap"
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$CACHE/bootstrap" http://deb.debian.org/debian >/dev/null
  tar -C "$CACHE/bootstrap" -cf "$TARBALL" .
  rm -rf --one-file-system "$CACHE/bootstrap"
fi

mounts=()
# Unmounts whatever is mounted under $ROOT (this run's mounts, or an interrupted run's), deepest
# first; the root is never removed while anything is mounted in it (it holds the host's /dev
# and ~/.cargo).
unmount_all() {
  { grep -o " $ROOT/[^ ]*" /proc/mounts || true; } | sed 's/^ //' | sort -r \
    | while read -r m; do umount -l "$m" || true; done
}
cleanup() {
  if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; fi
  # Anything still running inside the chroot (the server, its workers).
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ]; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done
  unmount_all
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
bind() { mkdir -p "$ROOT$2"; mount --bind "$1" "$ROOT$2"; mounts+=("$ROOT$2"); }

echo "== a fresh root in $ROOT"
unmount_all
if grep -q " $ROOT/" /proc/mounts; then echo "fresh-machine: mounts remain under $ROOT; not removing it"; exit 1; fi
rm -rf --one-file-system "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$TARBALL"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# The host's CA bundle: where the network inspects TLS, its certificate authority is only there.
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
mount -t proc proc "$ROOT/proc"; mounts+=("$ROOT/proc")
bind /sys /sys
bind /dev /dev
bind "$HOME/.rustup" /root/.rustup
bind "$HOME/.cargo" /root/.cargo
bind "$CACHE/target" /target
if [ "${FRESH_SHARE_MODELS:-0}" = 1 ]; then bind "$HOME/.local/share/minerva" /root/.local/share/minerva; fi

echo "== clone"
start=$(date +%s)
git clone -q "$REPO" "$ROOT/root/minerva"

echo "== the README's first command: bash scripts/serve.sh (log: $CACHE/serve.log)"
chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 CARGO_TARGET_DIR=/target RUSTUP_HOME=/root/.rustup CARGO_HOME=/root/.cargo \
  bash -c "cd /root/minerva && exec bash scripts/serve.sh --port $PORT" >"$CACHE/serve.log" 2>&1 &
server_pid=$!

deadline=$((start + ${FRESH_TIMEOUT:-5400}))
until grep -q "Minerva is ready" "$CACHE/serve.log"; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "fresh-machine: the command exited before serving:"; tail -n 40 "$CACHE/serve.log"; exit 1
  fi
  [ "$(date +%s)" -lt "$deadline" ] || { echo "fresh-machine: not ready in time"; tail -n 40 "$CACHE/serve.log"; exit 1; }
  sleep 2
done
ready=$(date +%s)
grep "Minerva is ready" "$CACHE/serve.log"

echo "== checks"
base="http://127.0.0.1:$PORT"
page=$(curl -sf -H 'Accept: text/html' "$base/")
echo "$page" | grep -q '/ui/' || { echo "fresh-machine: / is not the chat UI:"; echo "$page" | head -n 20; exit 1; }
if echo "$page" | grep -qi "not built"; then echo "fresh-machine: the UI was not built into the binary"; exit 1; fi
first=""
t0=$(date +%s.%N)
while IFS= read -r line; do
  case "$line" in
    data:*'"content":"'?*) first=$(date +%s.%N); break ;;
  esac
done < <(curl -sfN "$base/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "qwen2.5-coder:0.5b", "stream": true, "max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}')
[ -n "$first" ] || { echo "fresh-machine: no streamed token"; exit 1; }
echo "fresh-machine: OK"
mkdir -p "$CACHE" && echo "$digest" > "$CACHE/passed"
echo "  clone to ready:       $((ready - start)) s"
echo "  clone to first token: $(echo "$first - $start" | bc 2>/dev/null || python3 -c "print(round($first - $start))") s (this request's TTFT $(python3 -c "print(round($first - $t0, 2))") s)"
