#!/bin/bash
# The end-to-end rounds of cpu-head-skinny.md: `qwen3 bench` alternating between a build of the commit before the
# change (BASE, the qwen3 binary of `git archive 24c864b native` built with CMake, Release) and this tree's build,
# in the order base new new base base new; each run writes e2e_<i>_<base|new>.json here.
BASE=${BASE:-/tmp/base/native/build/qwen3}
OUT=$(dirname "$0")
i=0
for who in base new new base base new; do
  bin=$BASE; [ $who = new ] && bin=native/build/qwen3
  echo "== run $i $who $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  $bin bench --model .models/8b --prompt 16 --steps 8 --pairs 1 --out "$OUT/e2e_${i}_${who}.json" 2>&1 | grep -E "decode, batch|prefill"
  i=$((i+1))
done
