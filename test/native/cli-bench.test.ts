// `qwen3 bench` runs for any --prompt / --steps that fit the context (each sequence gets KV blocks for all of its
// positions, in both the batch-1 and the batch-8 phase) and refuses the ones that do not with a clear message;
// --phases breaks a batch-1 decode step down by phase; --pairs times decode steps each beside a read of the same
// bytes; --batch sets the batched phase's size or leaves it out.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = join(__dirname, '..', '..', 'native', 'build', 'qwen3');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'q3-bench-'));
  const r = spawnSync(cli, ['make-demo-model', '--out', join(dir, 'tiny'), '--preset', 'tiny']);
  expect(r.status).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bench(...args: string[]) {
  return spawnSync(cli, ['bench', '--model', join(dir, 'tiny'), '--threads', '2', '--probe-mib', '64', ...args], {
    encoding: 'utf8',
  });
}

// Runs bench with its results written under the temporary folder as `name` (.json and .md); returns the run and the JSON.
function benchJson(name: string, ...args: string[]) {
  const r = bench(...args, '--out', join(dir, `${name}.json`));
  expect(r.status, r.stderr).toBe(0);
  return { r, j: JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) };
}

describe('qwen3 bench', () => {
  it('Should run --prompt 64 --steps 32 and write every figure to the results files', () => {
    const { j } = benchJson('bench', '--prompt', '64', '--steps', '32');
    expect(j.prompt_tokens).toBe(64);
    expect(j.steps).toBe(32);
    for (const k of ['prefill_tok_s', 'decode_tok_s_batch1', 'decode_tok_s_batch8', 'read_bandwidth_gb_s']) {
      expect(Number.isFinite(j[k]) && j[k] > 0, k).toBe(true);
    }
    expect(j.weight_bytes_per_step).toBeGreaterThan(0);
    expect(j.read_bandwidth_method).toMatch(/stream/);
    const fraction = (j.weight_bytes_per_step * j.decode_tok_s_batch1) / 1e9 / j.read_bandwidth_gb_s;
    expect(j.fraction_of_bandwidth_batch1 / fraction).toBeCloseTo(1, 4); // the JSON has 6 significant digits
    // The sustained read is a mean over the probe's segments, never above its best one.
    expect(j.read_bandwidth_sustained_gb_s).toBeGreaterThan(0);
    expect(j.read_bandwidth_sustained_gb_s).toBeLessThanOrEqual(j.read_bandwidth_gb_s);
    expect(j.fraction_of_sustained_batch1 / (fraction * (j.read_bandwidth_gb_s / j.read_bandwidth_sustained_gb_s))).toBeCloseTo(1, 4);
    const md = readFileSync(join(dir, 'bench.md'), 'utf8');
    expect(md).toContain('| prefill (64-token prompt) |');
    expect(md).toContain('| decode, batch 8 |');
    expect(md).toMatch(/\| batch 1 vs a read of the same bytes beside it \(median of 10 pairs/);
    expect(md).toContain('The paired rows:');
  });

  it('Should pair decode steps with reads of the same bytes (10 by default) and report their ratios', () => {
    const { r, j } = benchJson('paired', '--prompt', '8', '--steps', '4');
    expect(j.paired_pairs).toBe(10);
    expect(j.paired_read_method).toBe(j.read_bandwidth_method);
    const steps: number[] = j.paired_step_gb_s;
    const reads: number[] = j.paired_read_gb_s;
    expect(steps).toHaveLength(10);
    expect(reads).toHaveLength(10);
    for (const g of [...steps, ...reads]) expect(Number.isFinite(g) && g > 0).toBe(true);
    // A tiny model's step is mostly fixed costs (sampling, a few dozen pool jobs), so its median pair is well below
    // twice a plain read of its bytes; a ratio out of (0, 2) would mean the two sides time different amounts.
    const ratios = steps.map((g, i) => g / reads[i]).sort((a, b) => a - b);
    const median = (ratios[4] + ratios[5]) / 2;
    expect(j.paired_fraction_batch1 / median).toBeCloseTo(1, 4);
    expect(j.paired_fraction_batch1_min / ratios[0]).toBeCloseTo(1, 4);
    expect(j.paired_fraction_batch1_max / ratios[9]).toBeCloseTo(1, 4);
    expect(j.paired_fraction_batch1).toBeGreaterThan(0);
    expect(j.paired_fraction_batch1).toBeLessThan(2);
    expect(j.best_step_gb_s / Math.max(...steps)).toBeCloseTo(1, 4);
    expect(j.best_read_gb_s / Math.max(...reads)).toBeCloseTo(1, 4);
    expect(j.best_fraction_batch1 / (j.best_step_gb_s / j.best_read_gb_s)).toBeCloseTo(1, 4);
    expect(r.stdout).toMatch(/\| batch 1 fastest step vs fastest read of the same bytes \(best of 10 each\) \| \d+%: /);
  });

  it('Should leave the paired figures out with --pairs 0', () => {
    const { r, j } = benchJson('unpaired', '--prompt', '8', '--steps', '4', '--pairs', '0', '--context', '13');
    expect(j.decode_tok_s_batch1).toBeGreaterThan(0);
    expect(j).not.toHaveProperty('paired_fraction_batch1');
    expect(r.stdout).not.toContain('read of the same bytes');
  });

  it('Should leave the batched decode out with --batch 0 and size it with --batch N', () => {
    const none = benchJson('nobatch', '--prompt', '8', '--steps', '4', '--batch', '0');
    expect(none.j.batch).toBe(0);
    expect(none.j.decode_tok_s_batch1).toBeGreaterThan(0);
    expect(Object.keys(none.j).filter((k) => /batch(?!1(?!\d))\d/.test(k))).toEqual([]);
    expect(none.r.stdout).toContain('| decode, batched | not run (--batch 0) |');
    expect(none.r.stdout).not.toMatch(/\| decode, batch 8 \|/);
    // a batch of 3 needs KV blocks for 3 sequences: a pool sized for fewer would fail the run
    const three = benchJson('batch3', '--prompt', '8', '--steps', '4', '--batch', '3');
    expect(three.j.batch).toBe(3);
    expect(three.j.decode_tok_s_batch3).toBeGreaterThan(0);
    expect(three.j).not.toHaveProperty('decode_tok_s_batch8');
    expect(three.r.stdout).toMatch(/\| decode, batch 3 \| [\d.]+ tok\/s aggregate/);
    for (const args of [['--batch', '-1'], ['--batch', '65']]) {
      const r = bench('--prompt', '8', '--steps', '4', ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--batch must be 0\.\.64/);
    }
  });

  it('Should break a batch-1 decode step down by phase with --phases, every weight byte in exactly one matmul row', () => {
    const { r, j } = benchJson('phases', '--prompt', '8', '--steps', '4', '--phases');
    const phases: { phase: string; calls_per_step: number; ms_per_step: number; bytes_per_step: number;
      busy_ms_per_step: number[]; join_wait_ms_per_step: number[]; held_up_calls_per_step: number;
      held_up_ms_per_step: number }[] = j.phases_batch1.phases;
    const byName = new Map(phases.map((p) => [p.phase, p]));
    const layers = 2; // the tiny preset
    for (const m of ['qkv_proj', 'o_proj', 'gate|up_proj', 'down_proj']) {
      expect(byName.get(m)?.calls_per_step, m).toBe(layers);
      expect(byName.get(m)?.bytes_per_step, m).toBeGreaterThan(0);
      // one entry per thread that ran chunks: the caller always, the worker unless it woke after every chunk was done
      const threads = byName.get(m)?.busy_ms_per_step.length ?? 0;
      expect(threads, m).toBeGreaterThanOrEqual(1);
      expect(threads, m).toBeLessThanOrEqual(2);
    }
    expect(byName.get('RMSNorm (2 per layer)')?.calls_per_step).toBe(2 * layers);
    expect(byName.get('final norm + lm_head')?.calls_per_step).toBe(1);
    // The engine's weight bytes per step also count the norm vectors (a few KB): the matmuls hold the rest.
    const bytes = phases.reduce((a, p) => a + p.bytes_per_step, 0);
    expect(bytes / j.weight_bytes_per_step).toBeGreaterThan(0.99);
    expect(bytes / j.weight_bytes_per_step).toBeLessThanOrEqual(1);
    const inForward = phases.reduce((a, p) => a + p.ms_per_step, 0);
    expect(inForward).toBeGreaterThan(0);
    expect(inForward).toBeLessThanOrEqual(j.phases_batch1.step_ms);
    // Join waits over 1 ms (a thread held up outside the engine) are part of the join waits, and the totals are the
    // phases' sums. On a quiet machine there may be none, so this checks the accounting, not a count.
    const held = j.phases_batch1.held_up;
    expect(held.threshold_ms).toBe(1);
    for (const p of phases) {
      const joinWait = p.join_wait_ms_per_step?.reduce((a, w) => a + w, 0) ?? 0;
      expect(p.held_up_ms_per_step, p.phase).toBeGreaterThanOrEqual(0);
      expect(p.held_up_ms_per_step, p.phase).toBeLessThanOrEqual(joinWait + 1e-6);
      expect(p.held_up_ms_per_step > 0, p.phase).toBe(p.held_up_calls_per_step > 0);
    }
    expect(held.calls_per_step).toBeCloseTo(phases.reduce((a, p) => a + p.held_up_calls_per_step, 0), 5);
    expect(held.ms_per_step).toBeCloseTo(phases.reduce((a, p) => a + p.held_up_ms_per_step, 0), 5);
    expect(r.stdout).toMatch(/Join waits over 1 ms \(a thread held up outside the engine[^)]*\): \d+ calls in 4 steps/);
    expect(r.stdout).toMatch(/\| gate\|up_proj \| 2 \|/);
    expect(readFileSync(join(dir, 'phases.md'), 'utf8')).toContain('Batch-1 decode step by phase');
  });

  it('Should count the paired and the profiled steps in the positions a sequence needs', () => {
    const ok = bench('--prompt', '10', '--steps', '5', '--pairs', '3', '--phases', '--context', '24');
    expect(ok.status, ok.stderr).toBe(0);
    const r = bench('--prompt', '10', '--steps', '5', '--pairs', '3', '--phases', '--context', '23');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /\+ 1 warm-up token \+ 3 paired steps \+ 5 profiled steps = 24 positions do not fit the context of 23 tokens/,
    );
  });

  // KV blocks hold 16 positions; a sequence needs prompt + 1 (warm-up decode) + steps + 10 paired steps of them.
  it.each([
    [1, 1],
    [15, 1],
    [16, 16],
    [17, 15],
    [40, 63],
  ])('Should run --prompt %i --steps %i with a context that fits exactly', (prompt, steps) => {
    const r = bench('--prompt', String(prompt), '--steps', String(steps), '--context', String(prompt + steps + 11));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`| prefill (${prompt}-token prompt) |`);
  });

  it('Should refuse a prompt and step count one position past the context, naming both', () => {
    const r = bench('--prompt', '20', '--steps', '20', '--context', '50');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      /--prompt 20 \+ --steps 20 \+ 1 warm-up token \+ 10 paired steps = 51 positions do not fit the context of 50 tokens/,
    );
  });

  it('Should refuse non-positive --prompt, --steps and --context, and a negative --pairs', () => {
    for (const args of [['--prompt', '0'], ['--steps', '-3'], ['--context', '0'], ['--pairs', '-1']]) {
      const r = bench(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/must be (positive|a positive token count|0\.\.1000)/);
    }
  });
});
