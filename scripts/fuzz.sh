#!/usr/bin/env bash
# Runs Minerva's fuzz targets (fuzz/, cargo-fuzz layout) for a bounded time each, on the stable
# toolchain, and fails on any crash, hang or blow-up, naming the file that caused it.
#
#   scripts/fuzz.sh [--seconds N] [target...]     (default: 15 s for each of all targets)
#
# Targets: gguf, safetensors, model_name, manifest, chat_template. CI (scripts/test.sh) runs the
# default; for the benchmark figures run longer, e.g. `scripts/fuzz.sh --seconds 600`.
#
# cargo-fuzz is installed into ~/.cache/minerva/tools (skipped when present). The targets are
# built once, without a sanitizer (`--sanitizer none`: AddressSanitizer needs a nightly
# compiler; the code fuzzed is safe Rust) but with debug assertions and overflow checks, into
# ~/.cache/minerva/target-fuzz (MINERVA_FUZZ_TARGET_DIR overrides: the instrumented build must
# not share the workspace's target directory). Each target runs on a temporary copy of its
# corpus (fuzz/corpus/<target>, and for gguf the hostile files of tests/fixtures/hostile-gguf),
# so nothing is written into the clone; a crash is kept in ~/.cache/minerva/fuzz-artifacts.
# Prints libFuzzer's executions per target (stat::number_of_executed_units).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${MINERVA_CACHE:-$HOME/.cache/minerva}"
TOOLS="$CACHE/tools"
TARGET_DIR="${MINERVA_FUZZ_TARGET_DIR:-$CACHE/target-fuzz}"
ARTIFACTS="$CACHE/fuzz-artifacts"
ALL=(gguf safetensors model_name manifest chat_template)

seconds=15
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz into $TOOLS"
  cargo install cargo-fuzz --locked --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"

echo "== building the fuzz targets ($TARGET_DIR)"
start=$(date +%s)
# The targets' own flags only (cargo-fuzz sets the coverage instrumentation).
(cd fuzz && env -u RUSTFLAGS -u CARGO_TARGET_DIR \
  cargo fuzz build --sanitizer none -O --debug-assertions --target-dir "$TARGET_DIR")
echo "built in $(( $(date +%s) - start )) s"
bin_dir="$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
printf '%-14s %12s %8s\n' target executions seconds > "$work/summary"
for t in "${targets[@]}"; do
  [ -d "fuzz/corpus/$t" ] || { echo "unknown target '$t' (${ALL[*]})"; exit 2; }
  corpus="$work/corpus-$t"
  mkdir -p "$corpus" "$ARTIFACTS/$t"
  cp -r "fuzz/corpus/$t/." "$corpus/"
  if [ "$t" = gguf ]; then cp tests/fixtures/hostile-gguf/*.gguf "$corpus/"; fi
  echo "== fuzzing $t for $seconds s"
  log="$work/$t.log"
  rc=0
  "$bin_dir/$t" "$corpus" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=4096 -artifact_prefix="$ARTIFACTS/$t/" > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  printf '%-14s %12s %8s\n' "$t" "${execs:-?}" "$seconds" >> "$work/summary"
  if [ "$rc" -ne 0 ]; then
    tail -40 "$log"
    echo "!! $t failed (exit $rc); the input that did it:"
    grep -E "Test unit written to|artifact_prefix" "$log" || true
    failed+=("$t")
  else
    grep -E "^#[0-9]+ +DONE" "$log" || tail -3 "$log"
  fi
done
echo "== executions per target"
cat "$work/summary"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in $ARTIFACTS)"
  exit 1
fi
