#!/usr/bin/env bash
# Build the reference llama-server (llama.cpp vendored by the llama-cpp-python sdist) outside
# the repository, with the same CPU features as Minerva's Rust build of llama.cpp.
#
#   scripts/reference/build.sh          # prints the path of the llama-server binary (last line)
#   REFERENCE_NATIVE=1 scripts/reference/build.sh
#                                       # ggml compiled for this machine's CPU (cmake's default,
#                                       # GGML_NATIVE=ON: AVX-512, VNNI ... where the CPU has them),
#                                       # in build-VERSION-native: the speed target of issue 19
#
# Idempotent: the sdist is downloaded and extracted once; cmake rebuilds only what changed.
# Everything lives in ${MINERVA_CACHE:-$HOME/.cache/minerva}/reference; nothing from the
# reference (code or binaries) is ever copied into the repository.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${MINERVA_CACHE:-$HOME/.cache/minerva}/reference"
JOBS="${REFERENCE_JOBS:-2}"
PYTHON="${PYTHON:-python3}"

SDIST_DIR="$CACHE/sdist"
TARBALL="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
SRC_ROOT="$CACHE/llama_cpp_python-$VERSION"
SRC="$SRC_ROOT/vendor/llama.cpp"
NATIVE="${REFERENCE_NATIVE:-0}"
BUILD="$CACHE/build-$VERSION"
[[ "$NATIVE" == 1 ]] && BUILD="$CACHE/build-$VERSION-native"
BIN="$BUILD/bin/llama-server"

log() { echo "[reference] $*" >&2; }

mkdir -p "$SDIST_DIR"

# 1. The sdist (76 MB). `--no-binary llama-cpp-python` forces the source distribution of that
#    one package while letting pip use wheels for its build backend (scikit-build-core), which
#    it installs only to read the sdist's metadata.
if [[ ! -f "$TARBALL" ]]; then
    log "downloading llama-cpp-python==$VERSION sdist into $SDIST_DIR"
    "$PYTHON" -m pip download --no-deps --no-binary llama-cpp-python \
        -d "$SDIST_DIR" "llama-cpp-python==$VERSION" >&2
fi
[[ -f "$TARBALL" ]] || { log "sdist not found at $TARBALL"; exit 1; }

# 2. Extract once (the stamp marks a complete extraction).
if [[ ! -f "$SRC_ROOT/.minerva-extracted" ]]; then
    log "extracting $TARBALL"
    rm -rf "$SRC_ROOT"
    tar -xzf "$TARBALL" -C "$CACHE"
    touch "$SRC_ROOT/.minerva-extracted"
fi
[[ -f "$SRC/tools/server/server.cpp" ]] || { log "no tools/server in $SRC"; exit 1; }

# The sdist carries only a stub of the submodule's git metadata, so llama.cpp's build-info
# cannot ask git; pass the vendored commit explicitly so llama-server reports it.
COMMIT="unknown"
HEAD_FILE="$SRC_ROOT/.git/modules/vendor/llama.cpp/HEAD"
if [[ -f "$HEAD_FILE" ]] && grep -Eq '^[0-9a-f]{40}$' "$HEAD_FILE"; then
    COMMIT="$(cut -c1-7 "$HEAD_FILE")"
fi

# 3. Configure. The CPU flags mirror llama-cpp-sys-2's build script under our
#    .cargo/config.toml (target-cpu=x86-64-v3): GGML_NATIVE=OFF, GGML_{SSE42,AVX,AVX2,FMA,F16C,BMI2}=ON
#    (what rustc reports for x86-64-v3), -march=x86-64-v3 on every C/C++ file (the sys crate adds
#    it as cflag/cxxflag, which also lets GCC contract a*b+c into FMA outside ggml-cpu), and
#    OpenMP on (the `openmp` feature of llama-cpp-2). Static libraries, as in the Rust build.
#    No web UI (it would be fetched from the network) and nothing but llama-server is built.
CMAKE_ARGS=(
    -S "$SRC" -B "$BUILD"
    -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_C_FLAGS=-march=x86-64-v3"
    "-DCMAKE_CXX_FLAGS=-march=x86-64-v3"
    -DBUILD_SHARED_LIBS=OFF
    -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
    "-DLLAMA_BUILD_COMMIT=$COMMIT"
    -DGGML_NATIVE=OFF
    -DGGML_SSE42=ON
    -DGGML_AVX=ON
    -DGGML_AVX2=ON
    -DGGML_FMA=ON
    -DGGML_F16C=ON
    -DGGML_BMI2=ON
    -DGGML_AVX_VNNI=OFF
    -DGGML_AVX512=OFF
    -DGGML_OPENMP=ON
)
if [[ "$NATIVE" == 1 ]]; then
    # cmake's defaults for the CPU: ggml built with -march=native.
    CMAKE_ARGS=("${CMAKE_ARGS[@]/-DCMAKE_C_FLAGS=-march=x86-64-v3/-DCMAKE_C_FLAGS=}")
    CMAKE_ARGS=("${CMAKE_ARGS[@]/-DCMAKE_CXX_FLAGS=-march=x86-64-v3/-DCMAKE_CXX_FLAGS=}")
    kept=()
    for arg in "${CMAKE_ARGS[@]}"; do
        case "$arg" in
            -DGGML_NATIVE=*|-DGGML_SSE42=*|-DGGML_AVX=*|-DGGML_AVX2=*|-DGGML_FMA=*|-DGGML_F16C=*|-DGGML_BMI2=*|-DGGML_AVX_VNNI=*|-DGGML_AVX512=*) ;;
            *) kept+=("$arg") ;;
        esac
    done
    CMAKE_ARGS=("${kept[@]}" -DGGML_NATIVE=ON)
fi
ARGS_STAMP="$BUILD/.minerva-cmake-args"
if [[ ! -f "$BUILD/CMakeCache.txt" ]] || [[ "$(cat "$ARGS_STAMP" 2>/dev/null)" != "${CMAKE_ARGS[*]}" ]]; then
    log "configuring $BUILD (llama.cpp $COMMIT)"
    cmake "${CMAKE_ARGS[@]}" >&2
    printf '%s' "${CMAKE_ARGS[*]}" > "$ARGS_STAMP"
fi

# Refuse a build where a feature silently fell off (ggml only warns when OpenMP is missing).
grep -q '^OpenMP_C_FLAGS:STRING=.\+' "$BUILD/CMakeCache.txt" \
    || { log "OpenMP was not found by cmake (install libgomp / a compiler with -fopenmp)"; exit 1; }

# 4. Build only llama-server.
log "building llama-server with -j$JOBS"
cmake --build "$BUILD" --target llama-server -j"$JOBS" >&2

[[ -x "$BIN" ]] || { log "build finished but $BIN is missing"; exit 1; }
echo "$BIN"
