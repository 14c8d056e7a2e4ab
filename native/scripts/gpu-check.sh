#!/usr/bin/env bash
# The one prepared GPU check of the CUDA backend, for a single device call on an H200 that must end inside 10 minutes
# (--quick: inside 4). Stages, correctness first, each under a time cap cut to what is left of the budget (a stage
# that no longer fits is skipped and named in the summary):
#   binaries  the prebuilt ones from --bin if they start here, else nvcc/cmake -j16 for sm_90a;
#   engine    engine_check: the engine on CUDA against the CPU backend through the C ABI (logits, greedy tokens,
#             batching, graph buckets, YaRN, device sampling against the CPU sampler in distribution, logprobs,
#             forced tokens, seeded replay, penalties), with graphs, eagerly and with host sampling;
#   peers     torch fp16 matmul (cuBLAS) and torch._weight_int4pack_mm, if python3 has torch;
#   kernels   gpu_check: every kernel against its CPU reference, the sampling kernels against the CPU sampler's
#             rules, then bandwidth, GEMV/GEMM, sampling, a synthetic 36-layer decode step (graphs, sampling
#             included) and chunked prefill; its own --budget-s keeps the benchmarks inside the stage;
#   8b        a random checkpoint with the 8B shapes (~5.8 GB), then qwen3 bench --device cuda (full run only) and
#             engine_check --bench (decode with device vs host sampling, graphs vs eager).
# Results: bench/results/*-DATE.*, the whole output in gpu-check-DATE.txt; with $OUT set, the log and a tarball of
# all of them (gpu-check-DATE.tar.gz) are kept in $OUT after every stage, so a cut-off run still returns them.
# Usage: native/scripts/gpu-check.sh [--quick] [--bin DIR] [--skip-8b] [--budget SECONDS]
#        native/scripts/gpu-check.sh --prepare    (no GPU needed: builds every binary into native/dev/cuda/bin)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEV="$ROOT/native/dev/cuda"
SM90="-gencode=arch=compute_90a,code=sm_90a"
QUICK=""
BIN=""
SKIP8B=""
PREPARE=""
BUDGET=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --bin) BIN="$2"; shift ;;
    --skip-8b) SKIP8B=1 ;;
    --prepare) PREPARE=1 ;;
    --budget) BUDGET="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--bin DIR] [--skip-8b] [--budget SECONDS] | --prepare" >&2; exit 2 ;;
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

# ---- the budget: every stage's timeout is its cap or what is left (less a reserve for the summary), if shorter
T0=$(date +%s)
[ -z "$BUDGET" ] && { [ -n "$QUICK" ] && BUDGET=225 || BUDGET=560; }
RESERVE=10
DEADLINE=$((T0 + BUDGET))
SKIPPED=""
left() { echo $((DEADLINE - $(date +%s))); }
# cap NAME CAP_S MIN_S: sets T to the stage's timeout (its cap, or what is left if less); fails, noting the skip, when
# less than MIN_S would be left
cap() {
  T=$(($(left) - RESERVE))
  [ "$T" -gt "$2" ] && T=$2
  if [ "$T" -lt "$3" ]; then
    echo "== $1: skipped, $(left) s left of the $BUDGET s budget"
    SKIPPED="$SKIPPED $1"
    return 1
  fi
}

DATE=$(date -u +%Y-%m-%d-%H%M)
RES="$ROOT/bench/results"
mkdir -p "$RES"
LOG="$RES/gpu-check-$DATE.txt"
OUTDIR=""
[ -n "${OUT:-}" ] && [ -d "${OUT:-}" ] && OUTDIR="$OUT"
if [ -n "$OUTDIR" ]; then exec > >(tee "$LOG" "$OUTDIR/gpu-check-$DATE.txt") 2>&1; else exec > >(tee "$LOG") 2>&1; fi
# every result file of this run, packed into $OUT (the device tool returns at most 8 files)
keep() {
  [ -n "$OUTDIR" ] || return 0
  (cd "$RES" && tar czf "$OUTDIR/gpu-check-$DATE.tar.gz" ./*-"$DATE".* 2>/dev/null)
}
RC=0

echo "== gpu-check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), budget $BUDGET s${QUICK:+ (quick)}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null || echo "nvidia-smi: unavailable"

# ---- binaries: prebuilt ones only if they start here (another image's libraries or driver may not match)
if ! { [ -x "$BIN/gpu_check" ] && "$BIN/gpu_check" --cpu-selftest >/dev/null 2>&1; }; then
  if cap kernel-build 240 60; then
    echo "== building kernels in $DEV/bin-device (nvcc, sm_90a, at most $T s)"
    timeout -k 5 "$T" make -C "$DEV" -j16 BIN=bin-device all >"$DEV/build.log" 2>&1 || { tail -40 "$DEV/build.log"; echo "BUILD FAILED"; exit 1; }
    [ "$BIN" = "$DEV/bin-device" ] || cp -f "$BIN/qwen3" "$BIN/engine_check" "$DEV/bin-device/" 2>/dev/null
    BIN="$DEV/bin-device"
  fi
fi
if ! { [ -x "$BIN/engine_check" ] && "$BIN/engine_check" --device-count >/dev/null 2>&1; }; then
  if cap engine-build 300 90; then
    echo "== building the engine (cmake, Q3_CUDA=ON, sm_90a) in $DEV/bin-device (at most $T s)"
    mkdir -p "$DEV/bin-device"
    if timeout -k 5 "$T" bash -c "$(declare -f build_engine); ROOT='$ROOT' SM90='$SM90' build_engine '$DEV/bin-device' 16"; then
      [ "$BIN" = "$DEV/bin-device" ] || cp -f "$BIN/gpu_check" "$BIN/awq_gemv" "$DEV/bin-device/" 2>/dev/null
      BIN="$DEV/bin-device"
    else
      tail -30 "$DEV/bin-device/engine-build.log"; echo "ENGINE BUILD FAILED (kernel checks still run)"; RC=1
    fi
  fi
fi
echo "== binaries: $BIN ($(( $(date +%s) - T0 )) s so far)"
"$BIN/gpu_check" --cpu-selftest >/dev/null || { echo "cpu-selftest FAILED"; RC=1; }

# ---- engine: the CUDA backend against the CPU backend on a cuda-tiny checkpoint, through the C ABI
ENGINE_SUMMARY="engine-check: not run"
if [ -x "$BIN/engine_check" ] && cap engine 150 40; then
  echo "== engine_check (at most $T s)"
  timeout -k 5 "$T" "$BIN/engine_check" --dir /tmp/q3-cuda-tiny --json "$RES/engine-check-$DATE.json" \
    --md "$RES/engine-check-$DATE.md" | tee /tmp/engine-check.txt
  [ "${PIPESTATUS[0]}" -eq 0 ] || RC=1
  ENGINE_SUMMARY=$(grep -E '^engine-check:|FAIL' /tmp/engine-check.txt | tail -12)
  grep -q '^engine-check:' /tmp/engine-check.txt || ENGINE_SUMMARY="$ENGINE_SUMMARY
engine-check: cut off at its $T s cap (FAIL)"
  # the CLI on the same checkpoint: greedy tokens identical between --device cpu and --device cuda
  G="generate --model /tmp/q3-cuda-tiny --tokens 11,22,33,44,55 --max-tokens 32"
  if [ "$(timeout 60 "$BIN/qwen3" $G --device cpu 2>&1)" = "$(timeout 60 "$BIN/qwen3" $G --device cuda 2>&1)" ]; then
    ENGINE_SUMMARY="$ENGINE_SUMMARY
CLI generate cpu == cuda"
  else
    ENGINE_SUMMARY="$ENGINE_SUMMARY
CLI generate cpu != cuda (FAIL)"; RC=1
  fi
  keep
fi

# ---- peers: python3 + torch if present
PEERS=$(mktemp)
if command -v python3 >/dev/null 2>&1 && cap peers 90 30; then
  echo "== peers (at most $T s)"
  timeout -k 5 "$T" python3 "$ROOT/native/scripts/gpu_peers.py" $QUICK >"$PEERS" || echo "peers: python3 exited with $? (partial results kept)"
fi

# ---- kernels: the experiment binary (short), then gpu_check, whose table comes last in the log
if cap kernels 300 60; then
  timeout -k 5 30 "$BIN/awq_gemv" 2 4096 12288 || true
  echo "== gpu_check (at most $T s)"
  timeout -k 5 "$T" "$BIN/gpu_check" $QUICK --budget-s $((T - 15)) --json "$RES/gpu-check-$DATE.json" \
    --md "$RES/gpu-check-$DATE.md" --peers "$PEERS" >/tmp/gpu-check.txt 2>&1
  [ $? -eq 0 ] || RC=1
  sed -n '/================ gpu-check summary/q;p' /tmp/gpu-check.txt
  keep
fi

# ---- 8b: the real engine on the 8B shapes (random weights written here), decode at batch 1 and 8, 1k context
BENCH_SUMMARY=""
if [ -x "$BIN/qwen3" ] && [ -z "$SKIP8B" ]; then
  M8=/tmp/q3-8b
  if [ ! -f "$M8/config.json" ] && cap 8b-checkpoint 150 60; then
    echo "== writing the random 8B checkpoint (at most $T s)"
    timeout -k 5 "$T" "$BIN/qwen3" make-demo-model --out "$M8" --preset 8b >/dev/null 2>&1 || rm -rf "$M8"
  fi
  if [ -f "$M8/config.json" ]; then
    if [ -z "$QUICK" ] && cap 8b-qwen3-bench 120 40; then
      echo "== qwen3 bench --device cuda, 8B shapes (at most $T s)"
      timeout -k 5 "$T" "$BIN/qwen3" bench --model "$M8" --device cuda --prompt 1024 --steps 128 \
        --out "$RES/engine-bench-8b-$DATE.json" 2>/tmp/engine-bench.err | tee /tmp/engine-bench.txt ||
        { RC=1; tail -5 /tmp/engine-bench.err; }
      BENCH_SUMMARY="$(grep -E 'device|decode, batch|prefill' /tmp/engine-bench.txt)
"
    fi
    if cap 8b-engine-decode 150 45; then
      echo "== engine_check --bench, 8B shapes (at most $T s)"
      timeout -k 5 "$T" "$BIN/engine_check" --bench "$M8" --ctx 1024 --steps $([ -n "$QUICK" ] && echo 64 || echo 128) \
        $QUICK --json "$RES/engine-decode-8b-$DATE.json" --md "$RES/engine-decode-8b-$DATE.md" | tee /tmp/engine-decode.txt
      [ "${PIPESTATUS[0]}" -eq 0 ] || RC=1
      BENCH_SUMMARY="$BENCH_SUMMARY$(grep -E 'tok/s|us$|fatal' /tmp/engine-decode.txt)
"
    fi
  fi
  keep
fi

sed -n '/================ gpu-check summary/,$p' /tmp/gpu-check.txt 2>/dev/null
echo "================ engine (CUDA backend) ================"
echo "$ENGINE_SUMMARY"
printf "%s" "$BENCH_SUMMARY"
[ -n "$SKIPPED" ] && echo "skipped for time:$SKIPPED"
echo "== results: $RES/*-$DATE.* ($(( $(date +%s) - T0 )) s of the $BUDGET s budget, exit $RC)"
keep
exit $RC
