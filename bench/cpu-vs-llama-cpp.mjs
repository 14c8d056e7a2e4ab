#!/usr/bin/env node
// Side-by-side CPU benchmark: this project's engine (`qwen3 bench`) and llama.cpp (llama-bench, llama-batched-bench)
// on the same Qwen3-8B shapes with the same thread count, in alternating rounds (the order rotates every round), each
// round opened by the read-bandwidth probe (`qwen3 bandwidth`) that every figure is divided by. Prints a table and
// writes bench/results/cpu-vs-llama-cpp.{md,json}.
//
// Needs: native/build (npm install), the random 8B checkpoint (npx qwen3 make-demo-model --out .models/8b --preset
// 8b), llama.cpp built by bench/llama-cpp/build.sh, and GGUFs written by bench/llama-cpp/make-gguf.py. Without a
// llama.cpp build it measures this project alone.
//
//   node bench/cpu-vs-llama-cpp.mjs [--rounds 5] [--threads 2] [--prompt 64] [--steps 32] [--batch 8] [--model .models/8b]
//     [--gguf .bench/qwen3-8b-q4_0-q6_k.gguf,.bench/qwen3-8b-q4_0-f16.gguf]
//     [--llama-bin .bench/llama.cpp/build/bin[,.bench/llama.cpp/build-avx512/bin]]
//     [--quiet-cores 0.3] [--max-wait-s 1800] [--out bench/results/cpu-vs-llama-cpp] [--head auto|screened|full]
//     [--pairs 20]
//
// Decode batch 1 runs after a --prompt-token context on both sides: this project decodes after prefilling the prompt,
// llama.cpp with llama-bench -d (until session 31 llama.cpp decoded from an empty context). A long --prompt (1024)
// compares decode at depth, where attention is a part of the step; --batch 0 leaves out the batched decode, whose
// --batch prefills of that length take minutes.
//
// --head: this project's lm_head for its greedy samples (qwen3 bench --head; auto = screened where AVX-512 VNNI runs,
// docs/cpu-head-screen.md); the output says which one ran.
//
// Memory modes: on the 2-vCPU AMD EPYC these figures come from, a 2-thread read runs at ~33-35 GB/s for stretches of
// seconds to a minute and at ~50-70 GB/s in between, within one process (docs/cpu-memory-modes.md). A same-round ratio
// then compares whatever modes the two engines happened to get. So each decode batch 1 is also tagged with its mode:
// this project's per step, from its --pairs (each step timed beside a read of the same bytes: the read's rate is the
// mode), llama.cpp's per run, from a probe just before and just after llama-bench (tagged only when both agree). The
// "by memory mode" table compares the engines within one mode: median tok/s over the tagged steps or runs.
//
// The machine these figures come from is shared, so each run also records how much CPU other processes used while
// it ran (from /proc/stat, minus the run's own CPU time), and a round starts only once other processes have used less
// than --quiet-cores cores for a few seconds (or --max-wait-s has passed; such rounds are marked).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './bench-args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const rounds = Number(option('rounds', '5'));
const threads = Number(option('threads', '2'));
const prompt = Number(option('prompt', '64'));
const steps = Number(option('steps', '32'));
const batch = Number(option('batch', '8'));
const model = resolve(root, option('model', '.models/8b'));
// llama.cpp builds (bench/llama-cpp/build.sh: build = native flags with AMX, build-avx512 = without AMX)
const llamaBins = option('llama-bin', '.bench/llama.cpp/build/bin')
  .split(',')
  .filter(Boolean)
  .map((p) => resolve(root, p));
const ggufs = option('gguf', '.bench/qwen3-8b-q4_0-q6_k.gguf,.bench/qwen3-8b-q4_0-f16.gguf')
  .split(',')
  .filter(Boolean)
  .map((p) => resolve(root, p));
const quietCores = Number(option('quiet-cores', '0.3'));
const maxWaitS = Number(option('max-wait-s', '1800'));
const outBase = resolve(root, option('out', 'bench/results/cpu-vs-llama-cpp'));
const head = option('head', 'auto');
const pairs = Number(option('pairs', '20'));
// A 2-thread read at or above this rate: the fast memory mode (the slow one reads ~33-40 GB/s, the fast ~50-70).
const FAST_GBS = 45;
const modeOf = (gbs) => (gbs >= FAST_GBS ? 'fast' : 'slow');
const qwen3 = join(root, 'native', 'build', 'qwen3');

// ---- the machine: CPU time of everyone, and of one child run ----

function cpuJiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
}
const loadAverage = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// Cores busy with other processes over `ms`.
function othersBusy(ms) {
  const a = cpuJiffies();
  sleep(ms);
  const b = cpuJiffies();
  return ((b.busy - a.busy) / (b.total - a.total)) * cpus().length;
}

// Runs cmd through bash so that `times` reports the child's CPU seconds; returns stdout, wall seconds and the cores
// other processes kept busy meanwhile.
function run(cmd, args) {
  const quoted = [cmd, ...args].map((s) => `'${String(s).replace(/'/g, `'\\''`)}'`).join(' ');
  const a = cpuJiffies();
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `${quoted} 2>"$Q3_STDERR"; rc=$?; times >&2; exit $rc`], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, Q3_STDERR: join(tmpdir(), `q3-bench-stderr-${process.pid}`) },
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const b = cpuJiffies();
  if (r.status !== 0) {
    let err = '';
    try {
      err = readFileSync(join(tmpdir(), `q3-bench-stderr-${process.pid}`), 'utf8').slice(-2000);
    } catch {}
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${err}${r.stderr ?? ''}`);
  }
  // `times` prints the shell's user/sys, then its children's: "0m1.234s 0m0.100s"
  const lines = r.stderr.trim().split('\n');
  const secs = (s) => {
    const m = /(\d+)m([\d.]+)s/.exec(s);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  const childCpu = lines[lines.length - 1].split(/\s+/).reduce((s, t) => s + secs(t), 0);
  const hz = 100; // USER_HZ of /proc/stat
  const totalSecs = (b.total - a.total) / hz / cpus().length;
  const others = Math.max(0, ((b.busy - a.busy) / hz - childCpu) / Math.max(totalSecs, 1e-9));
  return { stdout: r.stdout, wall, others };
}

// ---- GGUF: bytes one decode step reads (every tensor but the token embedding table) ----

const GGML_BLOCK = { 0: [1, 4], 1: [1, 2], 2: [32, 18], 8: [32, 34], 12: [256, 144], 14: [256, 210], 30: [1, 2] };

function ggufStepBytes(path) {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(1 << 24);
  readSync(fd, buf, 0, buf.length, 0);
  closeSync(fd);
  let o = 0;
  const u32 = () => ((o += 4), buf.readUInt32LE(o - 4));
  const u64 = () => ((o += 8), Number(buf.readBigUInt64LE(o - 8)));
  const str = () => {
    const n = u64();
    o += n;
    return buf.toString('utf8', o - n, o);
  };
  const size = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type) => {
    if (type === 8) str();
    else if (type === 9) {
      const t = u32();
      const n = u64();
      for (let i = 0; i < n; i++) skip(t);
    } else o += size[type];
  };
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path} is not a GGUF file`);
  o = 8;
  const nTensors = u64();
  const nKv = u64();
  for (let i = 0; i < nKv; i++) {
    str();
    skip(u32());
  }
  let bytes = 0;
  const types = new Set();
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    let n = 1;
    for (let d = 0; d < nd; d++) n *= u64();
    const type = u32();
    u64();
    const [per, sz] = GGML_BLOCK[type] ?? [0, 0];
    if (!per) throw new Error(`${path}: tensor ${name} has a type (${type}) this script does not size`);
    if (name === 'token_embd.weight') continue;
    bytes += (n / per) * sz;
    if (name === 'output.weight') types.add(`head ${{ 1: 'F16', 14: 'Q6_K', 2: 'Q4_0', 8: 'Q8_0' }[type] ?? type}`);
    else if (nd === 2) types.add({ 2: 'Q4_0', 8: 'Q8_0', 12: 'Q4_K' }[type] ?? String(type));
  }
  return { bytes, types: [...types].join(' + ') };
}

// ---- one run of each engine ----

function probe() {
  const r = run(qwen3, ['bandwidth', '--threads', threads, '--mib', 1024]);
  return JSON.parse(r.stdout);
}

function runOurs() {
  const out = join(tmpdir(), `q3-bench-${process.pid}.json`);
  const r = run(qwen3, ['bench', '--model', model, '--threads', threads, '--prompt', prompt, '--steps', steps, '--batch', batch, '--head', head, '--pairs', pairs, '--out', out]);
  const j = JSON.parse(readFileSync(out, 'utf8'));
  return {
    prefill: j.prefill_tok_s,
    decode1: j.decode_tok_s_batch1,
    decode8: batch > 0 ? j[`decode_tok_s_batch${batch}`] : null,
    bytes: j.weight_bytes_per_step,
    probe: j.read_bandwidth_gb_s,
    sustained: j.read_bandwidth_sustained_gb_s,
    paired: j.paired_fraction_batch1,
    pairedBest: j.best_fraction_batch1,
    device: j.device,
    cpu: j.cpu,                       // the model name with its family and model numbers
    head: j.head,                     // 'screened' or 'full' (what --head resolved to)
    exactRows: j.exact_rows_per_sample_batch1_median,
    // each paired step's tok/s with the mode of the read beside it
    tagged: (j.paired_step_gb_s ?? []).map((g, i) => ({ tok_s: (g * 1e9) / j.weight_bytes_per_step, step_gb_s: g, read_gb_s: j.paired_read_gb_s[i], mode: modeOf(j.paired_read_gb_s[i]) })),
    others: r.others,
  };
}

function runLlama(llamaBin, gguf) {
  const bench = (p, n, depth) =>
    run(join(llamaBin, 'llama-bench'), ['-m', gguf, '-t', threads, '-p', p, '-n', n, '-d', depth, '-r', 1, '-o', 'json']);
  // the decode alone (after a prompt-length context, as this project's), between two probes, so that a flip of the
  // memory mode during it shows
  const before = probe().sustained_gb_s;
  const d = bench(0, steps, prompt);
  const after = probe().sustained_gb_s;
  // the same decode from an empty context, as this script ran it until session 31 (a ratio of its own, untagged)
  const d0 = bench(0, steps, 0);
  const b = bench(prompt, 0, 0);
  const tests = [b, d, d0].flatMap((x) => JSON.parse(x.stdout));
  const pp = tests.find((t) => t.n_prompt === prompt && t.n_gen === 0);
  const decodeAt = (depth) => tests.find((t) => t.n_prompt === 0 && t.n_gen === steps && t.n_depth === depth);
  const tg = decodeAt(prompt), tg0 = decodeAt(0);
  let bb = null, line = '';
  if (batch > 0) {
    const ctx = batch * (prompt + steps) + 64;
    bb = run(join(llamaBin, 'llama-batched-bench'), [
      '-m', gguf, '-t', threads, '-tb', threads, '-c', ctx, '-b', 2048, '-ub', 512,
      '-npp', prompt, '-ntg', steps, '-npl', batch, '--output-format', 'jsonl',
    ]);
    line = bb.stdout.split('\n').find((l) => l.startsWith('{') && l.includes('"speed_tg"'));
  }
  if (!pp || !tg || !tg0 || (bb && !line))
    throw new Error(`unexpected llama.cpp output:\n${b.stdout}\n${d.stdout}\n${d0.stdout}\n${bb?.stdout ?? ''}`);
  const parts = [b, d, d0, ...(bb ? [bb] : [])];
  return {
    prefill: pp.avg_ts,
    decode1: tg.avg_ts,
    decode1_d0: tg0.avg_ts,
    decode8: bb ? JSON.parse(line).speed_tg : null,
    // the decode's mode: the probes around llama-bench agree, or it is unknown
    modeProbes: [before, after],
    mode: modeOf(before) === modeOf(after) ? modeOf(before) : 'mixed',
    others: parts.reduce((a, x) => a + x.others * x.wall, 0) / parts.reduce((a, x) => a + x.wall, 0),
    build: `${tests[0].build_commit} (build ${tests[0].build_number})`,
    cpuInfo: tests[0].cpu_info,
  };
}

// ---- statistics and output ----

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stat = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a) });
// the batched decode's figures are null with --batch 0
const statOrNull = (a) => (a.every((v) => v != null && Number.isFinite(v)) ? stat(a) : null);
const fmt = (s, d = 2) => (s ? `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})` : '–');
const fixed = (v, d) => (v == null ? '–' : v.toFixed(d));

function waitQuiet() {
  const t0 = Date.now();
  for (;;) {
    const busy = othersBusy(3000);
    if (busy < quietCores) return { waited: (Date.now() - t0) / 1000, busy, quiet: true };
    if ((Date.now() - t0) / 1000 > maxWaitS) return { waited: (Date.now() - t0) / 1000, busy, quiet: false };
    process.stderr.write(`  waiting for a quiet machine (others busy: ${busy.toFixed(2)} cores, load ${loadAverage()})\n`);
    sleep(15000);
  }
}

function main() {
  if (!existsSync(qwen3)) throw new Error('native/build/qwen3 is missing: run npm install (or node scripts/build-native.mjs)');
  if (!existsSync(join(model, 'config.json')))
    throw new Error(`${model} has no checkpoint: npx qwen3 make-demo-model --out .models/8b --preset 8b`);
  const engines = [{ key: 'ours', label: 'this project (qwen3 bench)' }];
  const bins = llamaBins.filter((b) => existsSync(join(b, 'llama-bench')) && existsSync(join(b, 'llama-batched-bench')));
  for (const bin of bins) {
    const variant = /build-([\w-]+)\/bin$/.exec(bin)?.[1] ?? 'native';
    for (const g of ggufs) {
      if (!existsSync(g)) {
        process.stderr.write(`skipping ${g}: not found (bench/llama-cpp/make-gguf.py writes it)\n`);
        continue;
      }
      const info = ggufStepBytes(g);
      engines.push({ key: `${bin}|${g}`, label: `llama.cpp ${variant}, ${info.types}`, bin, gguf: g, bytes: info.bytes, weights: info.types });
    }
  }
  if (!bins.length)
    process.stderr.write(`no llama.cpp build in ${llamaBins.join(', ')} (bench/llama-cpp/build.sh makes one): this project only\n`);
  const llama = engines.length > 1;

  const roundsOut = [];
  for (let r = 0; r < rounds; r++) {
    const gate = waitQuiet();
    const p = probe();
    const order = engines.map((_, i) => engines[(i + r) % engines.length]);
    const res = {};
    for (const e of order) {
      process.stderr.write(`round ${r + 1}/${rounds}: ${e.label}\n`);
      res[e.key] = e.key === 'ours' ? runOurs() : runLlama(e.bin, e.gguf);
    }
    const bw = Math.max(p.read_bandwidth_gb_s, res.ours.probe);
    const sustained = Math.max(p.sustained_gb_s, res.ours.sustained);
    roundsOut.push({ round: r + 1, order: order.map((e) => e.label), probe: bw, sustained, probeMethod: p.method, gate, load: loadAverage(), res });
    const line = engines
      .map((e) => `${e.label}: decode ${res[e.key].decode1.toFixed(2)} prefill ${res[e.key].prefill.toFixed(1)} b${batch} ${fixed(res[e.key].decode8, 1)}`)
      .join(' | ');
    process.stderr.write(`round ${r + 1}: probe ${bw.toFixed(1)} GB/s | ${line}\n`);
  }

  const ours = engines[0];
  ours.bytes = roundsOut[0].res.ours.bytes;
  const heads = [...new Set(roundsOut.map((x) => x.res.ours.head))];
  ours.weights = `AWQ int4 g128 + head ${heads
    .map((h) => (h === 'screened' ? 'screened (int8 copy + exact F16 rows of the candidates, greedy)' : 'F16'))
    .join(' / ')}`;
  const rows = engines.map((e) => {
    const per = roundsOut.map((x) => x.res[e.key]);
    const gbs = roundsOut.map((x) => (e.bytes * x.res[e.key].decode1) / 1e9);
    return {
      engine: e.label,
      weights: e.weights,
      bytes_per_step: e.bytes,
      decode1: stat(per.map((p) => p.decode1)),
      prefill: stat(per.map((p) => p.prefill)),
      decode8: statOrNull(per.map((p) => p.decode8)),
      gb_s: stat(gbs),
      fraction_of_probe: stat(roundsOut.map((x, i) => gbs[i] / x.probe)),
      fraction_of_sustained: stat(roundsOut.map((x, i) => gbs[i] / x.sustained)),
      // this project only: each decode step over a read of the same bytes beside it (qwen3 bench's pairs)
      fraction_of_paired_read: e.key === 'ours' && per.every((p) => p.paired > 0) ? stat(per.map((p) => p.paired)) : null,
      fraction_best_of_best: e.key === 'ours' && per.every((p) => p.pairedBest > 0) ? stat(per.map((p) => p.pairedBest)) : null,
      others_cores: stat(per.map((p) => p.others)),
    };
  });
  const ratios = engines.slice(1).map((e) => ({
    baseline: e.label,
    decode1: stat(roundsOut.map((x) => x.res.ours.decode1 / x.res[e.key].decode1)),
    decode1_vs_empty_context: stat(roundsOut.map((x) => x.res.ours.decode1 / x.res[e.key].decode1_d0)),
    prefill: stat(roundsOut.map((x) => x.res.ours.prefill / x.res[e.key].prefill)),
    decode8: statOrNull(roundsOut.map((x) => x.res.ours.decode8 / x.res[e.key].decode8)),
  }));
  // Within one memory mode: this project's steps tagged with it against the llama.cpp runs tagged with it.
  const byMode = ['slow', 'fast'].map((mode) => {
    const oursTagged = roundsOut.flatMap((x) => x.res.ours.tagged.filter((t) => t.mode === mode));
    const oursTok = oursTagged.map((t) => t.tok_s);
    // each of those steps' GB/s over the read's beside it: the decode's share of the bandwidth within the mode
    const oursShare = oursTagged.map((t) => t.step_gb_s / t.read_gb_s);
    const baselines = engines.slice(1).map((e) => {
      const tok = roundsOut.filter((x) => x.res[e.key].mode === mode).map((x) => x.res[e.key].decode1);
      return {
        baseline: e.label,
        bytes_per_step: e.bytes,
        runs: tok.length,
        decode1: tok.length ? stat(tok) : null,
        ratio_of_medians: tok.length && oursTok.length ? median(oursTok) / median(tok) : null,
      };
    });
    return { mode, steps: oursTok.length, decode1: oursTok.length ? stat(oursTok) : null, fraction_of_paired_read: oursShare.length ? stat(oursShare) : null, baselines };
  });
  const probeStat = stat(roundsOut.map((x) => x.probe));
  const sustainedStat = stat(roundsOut.map((x) => x.sustained));

  const date = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  const cmd = `node bench/cpu-vs-llama-cpp.mjs ${argv.join(' ')}`.trim();
  const llamaBuild = llama && roundsOut[0].res[engines[1]?.key]?.build;
  let md = `# CPU decode and prefill: this project vs llama.cpp, side by side\n\n`;
  md += `- command: \`${cmd}\`\n- date: ${date}\n`;
  md += `- machine: ${roundsOut[0].res.ours.cpu ?? cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; shared with other work (see the load columns)\n`;
  md += `- this project: ${roundsOut[0].res.ours.device}, random checkpoint with the Qwen3-8B-AWQ shapes (\`${option('model', '.models/8b')}\`)\n`;
  md += `- this project's lm_head (\`--head ${head}\`): ${ours.weights.replace('AWQ int4 g128 + head ', '')}${heads.includes('screened') ? `; exact rows per greedy sample (median over rounds): ${median(roundsOut.map((x) => x.res.ours.exactRows))}. The screened head applies to samples with top_k <= 64 (or greedy) and no logprobs (docs/cpu-head-screen.md)` : ''}\n`;
  if (llama) md += `- llama.cpp: ${llamaBuild}, built by \`bench/llama-cpp/build.sh\` (native: \`-march=native\`, AMX tiles for several rows, with the one-line tile-configuration fix the script describes; avx512: no AMX); GGUFs from \`bench/llama-cpp/make-gguf.py\` (random, Qwen3-8B shapes)\n`;
  const batchText = batch > 0 ? `; batch ${batch} = ${batch} sequences with ${prompt}-token prompts decoding ${steps} steps together (aggregate tok/s)` : '; no batched decode (--batch 0)';
  const batchLlama = batch > 0 ? `, \`llama-batched-bench -npp ${prompt} -ntg ${steps} -npl ${batch}\` (S_TG)` : '';
  md += `- each engine: ${threads} threads; prefill = one ${prompt}-token prompt; decode batch 1 = ${steps} steps after a ${prompt}-token context${batchText}. llama.cpp: \`llama-bench -p 0 -n ${steps} -d ${prompt} -r 1\` (tg${steps} @ d${prompt}) between two probes, then \`llama-bench -p 0 -n ${steps} -d 0 -r 1\` (tg${steps} from an empty context, for the last ratio column), \`llama-bench -p ${prompt} -n 0 -r 1\` (pp${prompt})${batchLlama}\n`;
  md += `- ${rounds} rounds; each round runs the bandwidth probe (\`qwen3 bandwidth\`: the fastest of several read loops over 1 GiB, 2 threads, huge pages) and then every engine once, in an order that rotates by one each round. Figures: median (min–max) over rounds; ratios are taken within a round.\n`;
  md += `- bytes per step: every weight one decode step reads (this project: \`weight_bytes_per_token\`; llama.cpp: every tensor of the GGUF except the token embedding table). GB/s = bytes per step × decode tok/s; % of probe = that ÷ the same round's probe (its best 32 MiB segment, ~1 ms); % of sustained = that ÷ the same probe's rate over all its segments (a decode step averages over ~0.2 s the same way).\n`;
  md += `- paired (this project): this machine's memory bandwidth moves by tens of percent within a second, so a probe taken at another moment than the decode makes "% of probe" mostly noise. \`qwen3 bench\` therefore times, after its batch-1 decode, ${pairs} pairs of [one decode step, one read of the same bytes with the probe's fastest loop on the engine's own threads], the order alternating: "% of paired read" = the median over pairs of the step's GB/s ÷ the read's beside it; "best ÷ best" = the fastest of those steps ÷ the fastest of those reads. These two columns are the decode's share of the bandwidth; the probe columns stay for comparison with llama.cpp, which has no pairs.\n`;
  md += `- read bandwidth probe: ${fmt(probeStat, 1)} GB/s; sustained: ${fmt(sustainedStat, 1)} GB/s\n\n`;
  const modesCell = (x) => {
    const t = x.res.ours.tagged;
    const ours = `${t.filter((q) => q.mode === 'fast').length} / ${t.filter((q) => q.mode === 'slow').length}`;
    return [ours, ...engines.slice(1).map((e) => `${x.res[e.key].mode} (${x.res[e.key].modeProbes.map((g) => g.toFixed(0)).join(' / ')})`)].join('; ');
  };
  const pct = (s) => (s ? fmt({ median: 100 * s.median, min: 100 * s.min, max: 100 * s.max }, 0) : '–');
  md += `| engine | weights | MB per step | decode batch 1 tok/s | GB/s | % of paired read | best ÷ best | % of probe | % of sustained | prefill tok/s (${prompt} tokens) | ${batch > 0 ? `decode batch ${batch} tok/s (aggregate)` : 'batched decode (--batch 0)'} | other processes (cores busy) |\n`;
  md += `|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n`;
  for (const r of rows)
    md += `| ${r.engine} | ${r.weights} | ${(r.bytes_per_step / 1e6).toFixed(0)} | ${fmt(r.decode1)} | ${fmt(r.gb_s, 1)} | ${pct(r.fraction_of_paired_read)} | ${pct(r.fraction_best_of_best)} | ${pct(r.fraction_of_probe)} | ${pct(r.fraction_of_sustained)} | ${fmt(r.prefill, 1)} | ${fmt(r.decode8, 1)} | ${fmt(r.others_cores)} |\n`;
  if (ratios.length) {
    md += `\nSame-round ratios, this project ÷ llama.cpp (median, min–max); the last column divides by llama.cpp decoding from an empty context (\`-d 0\`, as this script did until session 31) while this project decodes after ${prompt} tokens:\n\n| baseline | decode batch 1 | prefill | ${batch > 0 ? `decode batch ${batch}` : 'batched decode'} | decode batch 1 vs llama.cpp at -d 0 |\n|---|---:|---:|---:|---:|\n`;
    for (const q of ratios) md += `| ${q.baseline} | ${fmt(q.decode1)} | ${fmt(q.prefill)} | ${fmt(q.decode8)} | ${fmt(q.decode1_vs_empty_context)} |\n`;
  }
  md += `\nBy memory mode, decode batch 1 (tok/s, median (min–max)): this project over its paired steps whose read ran in that mode, llama.cpp over its runs whose probes before and after both ran in it (fast: a 2-thread read at >= ${FAST_GBS} GB/s). GB/s = bytes per step × the median; % of paired read = the median over those steps of the step's GB/s ÷ the read's beside it.\n\n`;
  md += `| mode | this project: steps | tok/s | GB/s | % of paired read | baseline | runs | tok/s | GB/s | this project ÷ baseline (ratio of medians) |\n|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n`;
  // without a llama.cpp build this project's rows still show (no baseline columns)
  const none = { baseline: '–', runs: 0, decode1: null, ratio_of_medians: null };
  for (const m of byMode)
    for (const q of m.baselines.length ? m.baselines : [none])
      md += `| ${m.mode} | ${m.steps} | ${m.decode1 ? fmt(m.decode1) : '–'} | ${m.decode1 ? ((m.decode1.median * ours.bytes) / 1e9).toFixed(1) : '–'} | ${pct(m.fraction_of_paired_read)} | ${q.baseline} | ${q.runs} | ${q.decode1 ? fmt(q.decode1) : '–'} | ${q.decode1 ? ((q.decode1.median * q.bytes_per_step) / 1e9).toFixed(1) : '–'} | ${q.ratio_of_medians ? q.ratio_of_medians.toFixed(2) : '–'} |\n`;
  md += `\nRounds:\n\n| round | probe GB/s | sustained GB/s | this project: % of paired read / best ÷ best | modes: this project's paired steps (fast / slow)${engines.slice(1).map((e) => `; ${e.label} (probes before / after, GB/s)`).join('')} | quiet before (others' cores) | load avg | ${engines.map((e) => `${e.label}: decode / prefill / b${batch}`).join(' | ')} |\n|---|---:|---:|---:|---|---:|---:|${engines.map(() => '---|').join('')}\n`;
  for (const x of roundsOut)
    md += `| ${x.round} | ${x.probe.toFixed(1)} | ${x.sustained.toFixed(1)} | ${x.res.ours.paired > 0 ? `${(100 * x.res.ours.paired).toFixed(0)} / ${(100 * x.res.ours.pairedBest).toFixed(0)}` : '–'} | ${modesCell(x)} | ${x.gate.busy.toFixed(2)}${x.gate.quiet ? '' : ' (not quiet)'} | ${x.load.toFixed(1)} | ${engines.map((e) => `${x.res[e.key].decode1.toFixed(2)} / ${x.res[e.key].prefill.toFixed(1)} / ${fixed(x.res[e.key].decode8, 1)}`).join(' | ')} |\n`;

  process.stdout.write(md);
  mkdirSync(dirname(outBase), { recursive: true });
  writeFileSync(`${outBase}.md`, md);
  writeFileSync(`${outBase}.json`, JSON.stringify({ command: cmd, date, head: { option: head, ran: heads }, threads, prompt, steps, batch, probe: probeStat, sustained: sustainedStat, rows, ratios, by_mode: byMode, rounds: roundsOut }, null, 2) + '\n');
  process.stderr.write(`wrote ${outBase}.md and ${outBase}.json\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`cpu-vs-llama-cpp: ${e.message}\n`);
  process.exit(1);
}
