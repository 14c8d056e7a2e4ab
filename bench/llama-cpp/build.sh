#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-batched-bench from the source that the npm package node-llama-cpp ships
# (a git bundle of one llama.cpp release), for the side-by-side CPU benchmark (bench/cpu-vs-llama-cpp.mjs).
# Everything goes under .bench/ (git-ignored); nothing is installed system-wide.
#
# Usage: bench/llama-cpp/build.sh [native|avx512]      (needs npm, git, cmake and a C++ compiler)
#   native (default): -march=native, so on a CPU with AMX llama.cpp multiplies its Q4_0 / Q6_K / F16 weights with AMX
#                     tiles (prefill, batches) and AVX-512 VNNI (one row). This release's AMX path loads its tile
#                     configuration from a stack variable that GCC 12 optimises away, and every AMX instruction then
#                     faults (SIGILL); the build makes that variable thread_local, the fix proposed upstream in
#                     https://github.com/ggml-org/llama.cpp/pull/26954. Nothing else is changed.
#   avx512:           every x86 extension up to AVX-512 VNNI/BF16 but no AMX (llama.cpp's repacked AVX-512 kernels).
# Output: .bench/llama.cpp/build/bin (native) or .bench/llama.cpp/build-avx512/bin: llama-bench, llama-batched-bench
set -euo pipefail

NODE_LLAMA_CPP_VERSION=3.22.1   # ships llama.cpp release v0.5.0 (llama/llama.cpp.info.json in the package)
VARIANT="${1:-native}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRC="$ROOT/.bench/llama.cpp"
WORK="$ROOT/.bench/node-llama-cpp-$NODE_LLAMA_CPP_VERSION"
JOBS="${JOBS:-$(nproc)}"

case "$VARIANT" in
  native) FLAGS=(-DGGML_NATIVE=ON) ;;
  avx512) FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_AVX_VNNI=ON -DGGML_FMA=ON -DGGML_F16C=ON
                 -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON) ;;
  *) echo "usage: $0 [native|avx512]" >&2; exit 2 ;;
esac

mkdir -p "$WORK"
if [ ! -f "$WORK/package/llama/gitRelease.bundle" ]; then
  (cd "$WORK" && npm pack "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" --silent >/dev/null &&
    tar xzf "node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json &&
    rm "node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz")
fi
if [ ! -d "$SRC/.git" ]; then
  git -c advice.detachedHead=false clone --quiet "$WORK/package/llama/gitRelease.bundle" "$SRC"
fi
MMQ="$SRC/ggml/src/ggml-cpu/amx/mmq.cpp"
if grep -q '^    alignas(64) tile_config_t tc = {};' "$MMQ"; then
  sed -i 's/^    alignas(64) tile_config_t tc = {};/    alignas(64) static thread_local tile_config_t tc = {};/' "$MMQ"
fi
echo "llama.cpp source: $SRC ($(git -C "$SRC" rev-parse --short HEAD), $(tr -d '\n ' < "$WORK/package/llama/llama.cpp.info.json"))"
git -C "$SRC" --no-pager diff --stat

BUILD="$SRC/build"
[ "$VARIANT" = native ] || BUILD="$SRC/build-$VARIANT"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF "${FLAGS[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target llama-bench llama-batched-bench
ls -l "$BUILD/bin/llama-bench" "$BUILD/bin/llama-batched-bench"
