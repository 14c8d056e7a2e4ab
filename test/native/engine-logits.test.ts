// Proves the engine's forward pass (CLI `qwen3 logits` and the addon's logits()) matches the independent float64
// reference on tiny random AWQ checkpoints covering GQA, heads·head_dim ≠ hidden, YaRN from config.json and from the
// --rope-scaling override, sharded and single-file, fp16 and bf16 norms, tied and untied lm_head, and the AWQ
// nibble order / zero-point convention.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, type Addon } from '../../native/addon/index.ts';
import { referenceLogits, relL2, type YarnParams } from '../helpers/qwen3-reference.ts';
import { LOGITS_CHECKPOINTS as SPECS } from '../helpers/logits-checkpoints.ts';
import { makeTinyQwen3, type TinyQwen3, type TinyQwen3Options } from '../helpers/tiny-qwen3.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'native', 'build', 'qwen3');
/** Relative L2 error allowed per position: ‖engine − reference‖ / ‖reference‖. */
const TOL = 1e-3;

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`node scripts/build-native.mjs\``);
  const r = spawnSync(CLI, args, { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliLogits(m: TinyQwen3, tokens: number[], extra: string[] = []): number[][] {
  const r = cli(['logits', '--model', m.dir, '--tokens', tokens.join(','), ...extra]);
  if (r.status !== 0) throw new Error(`qwen3 logits exited ${r.status}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { logits: number[][] };
  for (const row of out.logits) expect(row).toHaveLength(m.config.vocab_size);
  return out.logits;
}

function prompt(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
}

/** Asserts every row is within TOL of the reference row at the same position; returns the worst error. */
function expectRowsClose(got: ArrayLike<number>[], want: Float64Array[], label: string): number {
  expect(got.length, `${label}: rows`).toBe(want.length);
  let worst = 0;
  got.forEach((row, i) => {
    const e = relL2(row, want[i]);
    worst = Math.max(worst, e);
    expect(e, `${label}: position ${i} relative L2`).toBeLessThan(TOL);
  });
  return worst;
}

function rows(flat: Float32Array, vocab: number): Float32Array[] {
  expect(flat.length % vocab).toBe(0);
  return Array.from({ length: flat.length / vocab }, (_, i) => flat.subarray(i * vocab, (i + 1) * vocab));
}


describe('engine logits vs float64 reference', () => {
  const models: Record<string, TinyQwen3> = {};
  // Loaded on first use, so CLI tests still run (and report) when only the addon is broken.
  let cached: Addon | undefined;
  const addon = (): Addon => (cached ??= loadAddon());

  beforeAll(() => {
    for (const [name, spec] of Object.entries(SPECS)) models[name] = makeTinyQwen3(spec);
  });
  afterAll(() => {
    for (const m of Object.values(models)) m.cleanup();
  });

  for (const name of Object.keys(SPECS)) {
    it(`${name}: CLI last-position logits match the reference`, () => {
      const m = models[name];
      const toks = prompt(12, m.config.vocab_size, 1);
      const want = referenceLogits(m.config, m.weights, toks);
      const got = cliLogits(m, toks);
      expect(got).toHaveLength(1);
      expectRowsClose(got, [want[want.length - 1]], `${name} CLI`);
    });

    it(`${name}: addon logits (last and all positions) match the reference`, async () => {
      const m = models[name];
      const toks = prompt(9, m.config.vocab_size, 2);
      const want = referenceLogits(m.config, m.weights, toks);
      const engine = await addon().load(m.dir, { device: 'auto' });
      try {
        const info = engine.info();
        expect(info.vocabSize).toBe(m.config.vocab_size);
        expect(info.tieWordEmbeddings).toBe(m.config.tie_word_embeddings);
        const last = await engine.logits(Int32Array.from(toks), false);
        expectRowsClose(rows(last, m.config.vocab_size), [want[want.length - 1]], `${name} addon last`);
        const all = await engine.logits(Int32Array.from(toks), true);
        expectRowsClose(rows(all, m.config.vocab_size), want, `${name} addon all`);
      } finally {
        engine.free();
      }
    });
  }

  it('`npx qwen3` (bin/qwen3.mjs) runs the same CLI: same logits, same nonzero exit on errors', () => {
    const m = models.gqa;
    const toks = prompt(6, m.config.vocab_size, 8);
    const bin = join(root, 'bin', 'qwen3.mjs');
    const viaBin = spawnSync(process.execPath, [bin, 'logits', '--model', m.dir, '--tokens', toks.join(',')], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(viaBin.status, viaBin.stderr).toBe(0);
    expect(JSON.parse(viaBin.stdout).logits).toEqual(cliLogits(m, toks));
    const bad = spawnSync(process.execPath, [bin, 'logits', '--model', join(m.dir, 'nope'), '--tokens', '1'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('nope');
  });

  it('--all returns one row per position, each matching the reference', () => {
    const m = models.gqa;
    const toks = prompt(17, m.config.vocab_size, 3);
    const want = referenceLogits(m.config, m.weights, toks);
    const got = cliLogits(m, toks, ['--all']);
    expect(got).toHaveLength(toks.length);
    expectRowsClose(got, want, 'gqa --all');
    // Rows must differ from each other, or a test of "one row per position" proves nothing.
    expect(relL2(got[0], want[5])).toBeGreaterThan(0.1);
  });

  it('YaRN from config.json: 40 positions, past original_max_position_embeddings = 16', () => {
    const m = models.yarn;
    const toks = prompt(40, m.config.vocab_size, 4);
    const want = referenceLogits(m.config, m.weights, toks);
    // The test must be able to fail: plain RoPE gives clearly different logits at long positions.
    const plain = referenceLogits({ ...m.config, rope_scaling: null }, m.weights, toks);
    expect(relL2(plain[39], want[39])).toBeGreaterThan(50 * TOL);
    const got = cliLogits(m, toks, ['--all']);
    expectRowsClose(got, want, 'yarn config --all');
  });

  it('YaRN written with the older "type" key is read the same way', () => {
    const m = models.yarn;
    const path = join(m.dir, 'config.json');
    const original = readFileSync(path, 'utf8');
    try {
      const cfg = JSON.parse(original);
      cfg.rope_scaling = { type: 'yarn', factor: 4.0, original_max_position_embeddings: 16 };
      writeFileSync(path, JSON.stringify(cfg));
      const toks = prompt(30, m.config.vocab_size, 5);
      const want = referenceLogits(m.config, m.weights, toks);
      expectRowsClose(cliLogits(m, toks), [want[29]], 'yarn "type" key');
    } finally {
      writeFileSync(path, original);
    }
  });

  it('--rope-scaling yarn:4:16 on a config without rope_scaling matches the reference (CLI and addon)', async () => {
    const m = models.gqa;
    expect(m.config.rope_scaling).toBeNull();
    const toks = prompt(40, m.config.vocab_size, 6);
    const yarn: YarnParams = { factor: 4, originalMaxPositionEmbeddings: 16 };
    const want = referenceLogits(m.config, m.weights, toks, yarn);
    const plain = referenceLogits(m.config, m.weights, toks);
    expect(relL2(plain[39], want[39])).toBeGreaterThan(50 * TOL);

    const got = cliLogits(m, toks, ['--all', '--rope-scaling', 'yarn:4:16']);
    expectRowsClose(got, want, 'CLI --rope-scaling');

    const engine = await addon().load(m.dir, { yarnFactor: 4, yarnOriginal: 16 });
    try {
      const info = engine.info();
      expect(info.yarn).toBe(true);
      expect(info.yarnAttentionFactor).toBeCloseTo(1 + 0.1 * Math.log(4), 6);
      const all = await engine.logits(Int32Array.from(toks), true);
      expectRowsClose(rows(all, m.config.vocab_size), want, 'addon yarnFactor');
    } finally {
      engine.free();
    }
  });

  it('AWQ nibble order and zero convention: only the AutoAWQ layout matches the reference', () => {
    // Same weights (same seed) written three ways; the reference always uses the intended weights.
    const spec = SPECS.gqa;
    const variants: Record<string, TinyQwen3Options> = {
      correct: spec,
      'sequential nibble order': { ...spec, packOrder: [0, 1, 2, 3, 4, 5, 6, 7] },
      'REV used as pack order': { ...spec, packOrder: [0, 4, 1, 5, 2, 6, 3, 7] },
      'ExLlama zeros - 1': { ...spec, zeroShift: -1 },
    };
    const toks = prompt(10, 512, 7);
    const errors: Record<string, number> = {};
    for (const [label, opts] of Object.entries(variants)) {
      const m = makeTinyQwen3(opts);
      try {
        const want = referenceLogits(m.config, m.weights, toks);
        errors[label] = relL2(cliLogits(m, toks)[0], want[want.length - 1]);
      } finally {
        m.cleanup();
      }
    }
    expect(errors.correct, JSON.stringify(errors)).toBeLessThan(TOL);
    for (const label of Object.keys(variants).filter((l) => l !== 'correct')) {
      expect(errors[label], `${label}: ${JSON.stringify(errors)}`).toBeGreaterThan(100 * TOL);
    }
  });
});
