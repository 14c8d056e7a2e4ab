// `qwen3 bench` runs for any --prompt / --steps that fit the context (each sequence gets KV blocks for all of its
// positions, in both the batch-1 and the batch-8 phase) and refuses the ones that do not with a clear message.
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
    const md = readFileSync(join(dir, 'bench.md'), 'utf8');
    expect(md).toContain('| prefill (64-token prompt) |');
    expect(md).toContain('| decode, batch 8 |');
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
