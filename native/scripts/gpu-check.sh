#!/usr/bin/env bash
# The one prepared GPU check of the CUDA backend (issues 7/8), for a single device call on an H200:
#   kernels vs CPU references, bandwidth, GEMV/GEMM/decode/prefill benchmarks, torch peers if present,
#   a short table last, results in bench/results/gpu-check-<date>.{md,json} (copied to $OUT when set).
# Usage: native/scripts/gpu-check.sh [--quick] [--bin DIR]
#   --bin DIR: prebuilt binaries (gpu_check, awq_gemv) to use if they run here; otherwise it builds with nvcc -j16.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEV="$ROOT/native/dev/cuda"
QUICK=""
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK="--quick" ;;
    --bin) BIN="$2"; shift ;;
    *) echo "usage: $0 [--quick] [--bin DIR]" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$BIN" ] && BIN="$DEV/bin"
T0=$(date +%s)
echo "== gpu-check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null || echo "nvidia-smi: unavailable"

# Prebuilt binaries only if they start here (another image's libraries may not match); else build for sm_90a.
if ! { [ -x "$BIN/gpu_check" ] && "$BIN/gpu_check" --cpu-selftest >/dev/null 2>&1; }; then
  echo "== building in $DEV/bin-device (nvcc, sm_90a)"
  BIN="$DEV/bin-device"
  make -C "$DEV" -j16 BIN=bin-device all >"$DEV/build.log" 2>&1 || { tail -40 "$DEV/build.log"; echo "BUILD FAILED"; exit 1; }
fi
echo "== binaries: $BIN ($(( $(date +%s) - T0 )) s so far)"
"$BIN/gpu_check" --cpu-selftest || echo "cpu-selftest FAILED"

# (5) peers: python3 + torch if present, bounded in time
PEERS=$(mktemp)
if command -v python3 >/dev/null 2>&1; then
  timeout 240 python3 "$ROOT/native/scripts/gpu_peers.py" $QUICK >"$PEERS" || echo "peers: python3 exited with $? (partial results kept)"
else
  echo "peers: skipped (no python3)"
fi

DATE=$(date -u +%Y-%m-%d-%H%M)
RES="$ROOT/bench/results"
mkdir -p "$RES"
JSON="$RES/gpu-check-$DATE.json"
MD="$RES/gpu-check-$DATE.md"
# the experiment binary first (short), then the full check whose summary table is printed last
"$BIN/awq_gemv" 2 4096 12288 || true
"$BIN/gpu_check" $QUICK --json "$JSON" --md "$MD" --peers "$PEERS"
RC=$?
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$JSON" "$MD" "$OUT/" 2>/dev/null; fi
echo "== results: $MD ($(( $(date +%s) - T0 )) s total, exit $RC)"
exit $RC
