#!/usr/bin/env bash
# Installs `minerva` under a prefix: PREFIX/bin/minerva and its llama.cpp libraries in
# PREFIX/lib/minerva (libllama, libggml, libggml-base, libmtmd, and one libggml-cpu-<variant> per
# x86 variant, of which the best for the CPU is loaded at run time). The binary finds them through
# its rpath ($ORIGIN/../lib/minerva); `cargo install` alone copies only the binary, which then
# cannot start.
#
#   bash scripts/install.sh            # into ~/.local (~/.local/bin/minerva)
#   bash scripts/install.sh /usr/local # needs write access there
#
# Installs the Debian packages the build needs first (scripts/setup.sh), and builds the UI so
# that it is embedded.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-$HOME/.local}"

bash scripts/setup.sh
bash scripts/build-ui.sh
# A target directory that outlives the install (the libraries are copied from it): the one
# scripts/serve.sh builds in, so llama.cpp is not compiled twice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo install --locked --force --path crates/minerva-cli --root "$PREFIX"

LIBDIR="$PREFIX/lib/minerva"
mkdir -p "$LIBDIR"
shopt -s nullglob
libs=("$CARGO_TARGET_DIR"/release/lib*.so)
if [ ${#libs[@]} -eq 0 ]; then
  echo "install.sh: no llama.cpp libraries in $CARGO_TARGET_DIR/release" >&2
  exit 1
fi
for lib in "${libs[@]}"; do
  # A new file, renamed into place: a running minerva keeps the one it mapped.
  cp "$lib" "$LIBDIR/.$(basename "$lib").new"
  mv -f "$LIBDIR/.$(basename "$lib").new" "$LIBDIR/$(basename "$lib")"
done
echo "installed $PREFIX/bin/minerva and ${#libs[@]} libraries in $LIBDIR"
