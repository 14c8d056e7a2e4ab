// `qwen3 bench` runs for any --prompt / --steps that fit the context (each sequence gets KV blocks for all of its
// positions, in both the batch-1 and the batch-8 phase) and refuses the ones that do not with a clear message;
// --phases breaks a batch-1 decode step down by phase.
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

describe('qwen3 bench', () => {
  it('Should run --prompt 64 --steps 32 and write every figure to the results files', () => {
    const out = join(dir, 'bench.json');
    const r = bench('--prompt', '64', '--steps', '32', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(out, 'utf8'));
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
  });

  it('Should break a batch-1 decode step down by phase with --phases, every weight byte in exactly one matmul row', () => {
    const out = join(dir, 'phases.json');
    const r = bench('--prompt', '8', '--steps', '4', '--phases', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(out, 'utf8'));
    const phases: { phase: string; calls_per_step: number; ms_per_step: number; bytes_per_step: number;
      busy_ms_per_step: number[] }[] = j.phases_batch1.phases;
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
    expect(r.stdout).toMatch(/\| gate\|up_proj \| 2 \|/);
    expect(readFileSync(join(dir, 'phases.md'), 'utf8')).toContain('Batch-1 decode step by phase');
  });

  it('Should count the profiled steps of --phases in the positions a sequence needs', () => {
    const ok = bench('--prompt', '10', '--steps', '5', '--phases', '--context', '21');
    expect(ok.status, ok.stderr).toBe(0);
    const r = bench('--prompt', '10', '--steps', '5', '--phases', '--context', '20');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\+ 1 warm-up token \+ 5 profiled steps = 21 positions do not fit the context of 20 tokens/);
  });

  // KV blocks hold 16 positions; a sequence needs prompt + 1 (warm-up decode) + steps of them.
  it.each([
    [1, 1],
    [15, 1],
    [16, 16],
    [17, 15],
    [40, 63],
  ])('Should run --prompt %i --steps %i with a context that fits exactly', (prompt, steps) => {
    const r = bench('--prompt', String(prompt), '--steps', String(steps), '--context', String(prompt + steps + 1));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`| prefill (${prompt}-token prompt) |`);
  });

  it('Should refuse a prompt and step count one position past the context, naming both', () => {
    const r = bench('--prompt', '20', '--steps', '20', '--context', '40');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--prompt 20 \+ --steps 20 \+ 1 warm-up token = 41 positions do not fit the context of 40 tokens/);
  });

  it('Should refuse non-positive --prompt, --steps and --context', () => {
    for (const args of [['--prompt', '0'], ['--steps', '-3'], ['--context', '0']]) {
      const r = bench(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/must be (positive|a positive token count)/);
    }
  });
});
