#!/usr/bin/env bash
# The one prepared GPU check of the CUDA backend (issues 7/8), for a single device call on an H200:
#   (2) the engine on CUDA against the CPU backend (engine_check: logits, greedy tokens, batching, graphs, YaRN),
#       then the real engine on a random 8B checkpoint: qwen3 bench --device cuda (prefill, decode at batch 1 and 8)
#       and engine_check --bench (the backend's decode step with and without the host sampler, graphs on and off);
#   (1,3,4,5) kernels vs CPU references, bandwidth, GEMV/GEMM/decode/prefill benchmarks, torch peers if present;
#   a short table last, results in bench/results/ (copied to $OUT when set).
# Usage: native/scripts/gpu-check.sh [--quick] [--bin DIR] [--skip-8b]
#        native/scripts/gpu-check.sh --prepare    (no GPU needed: builds every binary into native/dev/cuda/bin)
#   --bin DIR: prebuilt binaries (gpu_check, awq_gemv, qwen3, engine_check) to use if they run here; otherwise the
#   script builds them with nvcc/cmake -j16 for sm_90a.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEV="$ROOT/native/dev/cuda"
SM90="-gencode=arch=compute_90a,code=sm_90a"
QUICK=""
BIN=""
SKIP8B=""
PREPARE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --bin) BIN="$2"; shift ;;
    --skip-8b) SKIP8B=1 ;;
    --prepare) PREPARE=1 ;;
    *) echo "usage: $0 [--quick] [--bin DIR] [--skip-8b] | --prepare" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$BIN" ] && BIN="$DEV/bin"
JOBS=$(nproc 2>/dev/null || echo 4)

# The engine's qwen3 CLI and engine_check, built with the CUDA backend by CMake into $1/engine, copied into $1.
build_engine() {
  local out="$1" jobs="$2"
  cmake -S "$ROOT/native" -B "$out/engine" -DCMAKE_BUILD_TYPE=Release -DQ3_CUDA=ON "-DQ3_CUDA_GENCODE=$SM90" \
    >"$out/engine-build.log" 2>&1 &&
    cmake --build "$out/engine" -j "$jobs" --target qwen3 engine_check >>"$out/engine-build.log" 2>&1 &&
    cp "$out/engine/qwen3" "$out/engine/engine_check" "$out/"
}

if [ -n "$PREPARE" ]; then
  T0=$(date +%s)
  mkdir -p "$DEV/bin"
  make -C "$DEV" -j"$JOBS" all || exit 1
  build_engine "$DEV/bin" "$JOBS" || { tail -40 "$DEV/bin/engine-build.log"; exit 1; }
  rm -rf "$DEV/bin/engine"  # keep only the binaries: they travel with `carry`
  "$DEV/bin/gpu_check" --cpu-selftest >/dev/null && echo "prepared $DEV/bin in $(( $(date +%s) - T0 )) s:" && ls -la "$DEV/bin"
  exit $?
fi

T0=$(date +%s)
echo "== gpu-check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null || echo "nvidia-smi: unavailable"

# Prebuilt binaries only if they start here (another image's libraries or driver may not match); else build for
# sm_90a. The engine binaries must also see the device.
if ! { [ -x "$BIN/gpu_check" ] && "$BIN/gpu_check" --cpu-selftest >/dev/null 2>&1; }; then
  echo "== building kernels in $DEV/bin-device (nvcc, sm_90a)"
  make -C "$DEV" -j16 BIN=bin-device all >"$DEV/build.log" 2>&1 || { tail -40 "$DEV/build.log"; echo "BUILD FAILED"; exit 1; }
  [ "$BIN" = "$DEV/bin-device" ] || cp -f "$BIN/qwen3" "$BIN/engine_check" "$DEV/bin-device/" 2>/dev/null
  BIN="$DEV/bin-device"
fi
if ! { [ -x "$BIN/engine_check" ] && "$BIN/engine_check" --device-count >/dev/null 2>&1; }; then
  echo "== building the engine (cmake, Q3_CUDA=ON, sm_90a) in $DEV/bin-device"
  mkdir -p "$DEV/bin-device"
  if build_engine "$DEV/bin-device" 16; then
    [ "$BIN" = "$DEV/bin-device" ] || cp -f "$BIN/gpu_check" "$BIN/awq_gemv" "$DEV/bin-device/" 2>/dev/null
    BIN="$DEV/bin-device"
  else
    tail -30 "$DEV/bin-device/engine-build.log"; echo "ENGINE BUILD FAILED (kernel checks still run)"
  fi
fi
echo "== binaries: $BIN ($(( $(date +%s) - T0 )) s so far)"
"$BIN/gpu_check" --cpu-selftest || echo "cpu-selftest FAILED"

DATE=$(date -u +%Y-%m-%d-%H%M)
RES="$ROOT/bench/results"
mkdir -p "$RES"
RC=0

# (2) the engine: CUDA backend vs CPU backend on a cuda-tiny checkpoint, through the C ABI
ENGINE_SUMMARY="engine-check: not run"
if [ -x "$BIN/engine_check" ]; then
  timeout 300 "$BIN/engine_check" --dir /tmp/q3-cuda-tiny --json "$RES/engine-check-$DATE.json" --md "$RES/engine-check-$DATE.md" \
    | tee /tmp/engine-check.txt
  [ "${PIPESTATUS[0]}" -eq 0 ] || RC=1
  ENGINE_SUMMARY=$(tail -1 /tmp/engine-check.txt)
  # the CLI on the same checkpoint: greedy tokens identical between --device cpu and --device cuda
  G="generate --model /tmp/q3-cuda-tiny --tokens 11,22,33,44,55 --max-tokens 32"
  if [ "$("$BIN/qwen3" $G --device cpu 2>&1)" = "$("$BIN/qwen3" $G --device cuda 2>&1)" ]; then
    ENGINE_SUMMARY="$ENGINE_SUMMARY; CLI generate cpu == cuda"
  else
    ENGINE_SUMMARY="$ENGINE_SUMMARY; CLI generate cpu != cuda (FAIL)"; RC=1
  fi
fi

# (4) the real engine on the 8B shapes: random checkpoint written here (~5.8 GB, ~1 min), decode at batch 1 and 8
# with 1k-token prompts, decode graphs on and off
BENCH_SUMMARY=""
if [ -x "$BIN/qwen3" ] && [ -z "$SKIP8B" ]; then
  M8=/tmp/q3-8b
  [ -f "$M8/config.json" ] || { echo "== writing the random 8B checkpoint"; "$BIN/qwen3" make-demo-model --out "$M8" --preset 8b 2>/dev/null; }
  echo "== qwen3 bench --device cuda, 8B shapes"
  timeout 180 "$BIN/qwen3" bench --model "$M8" --device cuda --prompt 1024 --steps 128 \
    --out "$RES/engine-bench-8b-$DATE.json" 2>/tmp/engine-bench.err | tee /tmp/engine-bench.txt ||
    { RC=1; tail -5 /tmp/engine-bench.err; }
  BENCH_SUMMARY="$(grep -E 'device|decode, batch|prefill' /tmp/engine-bench.txt)
"
  # the backend's decode step alone (q3_logits) vs with the host sampler (q3_step), decode graphs on and off
  timeout 240 "$BIN/engine_check" --bench "$M8" --ctx 1024 --steps 128 --json "$RES/engine-decode-8b-$DATE.json" \
    --md "$RES/engine-decode-8b-$DATE.md" | tee /tmp/engine-decode.txt || RC=1
  BENCH_SUMMARY="$BENCH_SUMMARY$(grep -E 'tok/s|us$|fatal' /tmp/engine-decode.txt)
"
fi

# (5) peers: python3 + torch if present, bounded in time
PEERS=$(mktemp)
if command -v python3 >/dev/null 2>&1; then
  timeout 240 python3 "$ROOT/native/scripts/gpu_peers.py" $QUICK >"$PEERS" || echo "peers: python3 exited with $? (partial results kept)"
else
  echo "peers: skipped (no python3)"
fi

JSON="$RES/gpu-check-$DATE.json"
MD="$RES/gpu-check-$DATE.md"
# the experiment binary first (short), then the full kernel check whose summary table is printed last
"$BIN/awq_gemv" 2 4096 12288 || true
"$BIN/gpu_check" $QUICK --json "$JSON" --md "$MD" --peers "$PEERS"
[ $? -eq 0 ] || RC=1
echo "================ engine (CUDA backend) ================"
echo "$ENGINE_SUMMARY"
printf "%s" "$BENCH_SUMMARY"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$RES"/*-"$DATE"* "$OUT/" 2>/dev/null; fi
echo "== results: $RES/*-$DATE.* ($(( $(date +%s) - T0 )) s total, exit $RC)"
exit $RC
