// Proves bad inputs fail cleanly: broken checkpoints (truncated file, offsets past the end, missing shard, missing
// tensor, wrong shape, unsupported architecture or quantization) and bad requests (token id ≥ vocab, prompt longer
// than the context) give a nonzero CLI exit with a message naming the file and tensor, and a rejected promise from
// the addon in this process, which stays alive and keeps serving a valid model afterwards.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, type Addon } from '../../native/addon/index.ts';
import { referenceLogits, relL2 } from '../helpers/qwen3-reference.ts';
import { f16Tensor, readSafetensors, withHeader, writeCheckpoint, type Tensor } from '../helpers/safetensors.ts';
import { makeTinyQwen3, type TinyQwen3 } from '../helpers/tiny-qwen3.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'native', 'build', 'qwen3');
const V = 256;
const CONTEXT = 32; // max_position_embeddings of the test checkpoints

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`node scripts/build-native.mjs\``);
  const r = spawnSync(CLI, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Case {
  name: string;
  /** Builds the broken model dir (under `scratch`); returns it and what the error message must mention. */
  make: () => { dir: string; mentions: (string | RegExp)[] };
}

describe('engine errors', () => {
  let single: TinyQwen3;
  let sharded: TinyQwen3;
  let scratch: string;
  // Loaded on first use, so CLI tests still run (and report) when only the addon is broken.
  let cached: Addon | undefined;
  const addon = (): Addon => (cached ??= loadAddon());
  let n = 0;

  beforeAll(() => {
    const dims = { hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: V, groupSize: 32, maxPositionEmbeddings: CONTEXT };
    single = makeTinyQwen3({ ...dims, seed: 3 });
    sharded = makeTinyQwen3({ ...dims, seed: 4, shards: 3 });
    scratch = mkdtempSync(join(tmpdir(), 'qwen3-errors-'));
  });
  afterAll(() => {
    single?.cleanup();
    sharded?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** A fresh copy of a valid checkpoint to break. */
  function copyOf(m: TinyQwen3): string {
    const dir = join(scratch, `case-${n++}`);
    cpSync(m.dir, dir, { recursive: true });
    return dir;
  }
  function editConfig(dir: string, edit: (cfg: Record<string, any>) => void): void {
    const path = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(path, 'utf8'));
    edit(cfg);
    writeFileSync(path, JSON.stringify(cfg, null, 2));
  }
  function rewrite(dir: string, m: TinyQwen3, edit: (t: Map<string, Tensor>) => void): void {
    const t = new Map(m.tensors);
    edit(t);
    writeCheckpoint(dir, t, 1);
  }

  const cases: Case[] = [
    {
      name: 'truncated safetensors file',
      make: () => {
        const dir = copyOf(single);
        const path = join(dir, 'model.safetensors');
        truncateSync(path, Math.floor(readFileSync(path).length * 0.6));
        return { dir, mentions: ['model.safetensors'] };
      },
    },
    {
      name: 'file cut inside its header',
      make: () => {
        const dir = copyOf(single);
        truncateSync(join(dir, 'model.safetensors'), 100);
        return { dir, mentions: ['model.safetensors'] };
      },
    },
    {
      name: 'header data_offsets past the end of a shard',
      make: () => {
        const dir = copyOf(sharded);
        const file = 'model-00002-of-00003.safetensors';
        const parsed = readSafetensors(join(dir, file));
        const names = Object.keys(parsed.header);
        const victim = names[names.length - 1];
        const header: Record<string, unknown> = { __metadata__: parsed.metadata, ...parsed.header };
        const e = parsed.header[victim];
        // Same size claim shifted beyond the data: offsets stay consistent with dtype × shape.
        const size = e.data_offsets[1] - e.data_offsets[0];
        const end = parsed.bytes.length - parsed.dataStart;
        header[victim] = { ...e, data_offsets: [end + 64, end + 64 + size] };
        writeFileSync(join(dir, file), withHeader(parsed, header));
        return { dir, mentions: [file, victim] };
      },
    },
    {
      name: 'index.json names a shard that does not exist',
      make: () => {
        const dir = copyOf(sharded);
        rmSync(join(dir, 'model-00003-of-00003.safetensors'));
        return { dir, mentions: ['model-00003-of-00003.safetensors'] };
      },
    },
    {
      name: 'missing tensor',
      make: () => {
        const dir = copyOf(single);
        rewrite(dir, single, (t) => t.delete('model.layers.1.mlp.down_proj.scales'));
        return { dir, mentions: ['model.layers.1.mlp.down_proj.scales'] };
      },
    },
    {
      name: 'missing lm_head with tie_word_embeddings false',
      make: () => {
        const dir = copyOf(single);
        rewrite(dir, single, (t) => t.delete('lm_head.weight'));
        return { dir, mentions: ['lm_head.weight'] };
      },
    },
    {
      name: 'wrong shape of a norm weight',
      make: () => {
        const dir = copyOf(single);
        rewrite(dir, single, (t) => t.set('model.layers.0.self_attn.k_norm.weight', f16Tensor([24], new Array(24).fill(1)).tensor));
        return { dir, mentions: ['model.layers.0.self_attn.k_norm.weight'] };
      },
    },
    {
      name: 'wrong shape of an AWQ qweight',
      make: () => {
        const dir = copyOf(single);
        rewrite(dir, single, (t) => {
          // o_proj is (K=64, N=64): qweight must be (64, 8); write (64, 16) with matching data.
          const q = t.get('model.layers.1.self_attn.o_proj.qweight')!;
          t.set('model.layers.1.self_attn.o_proj.qweight', { dtype: 'I32', shape: [64, 16], data: new Int32Array(64 * 16).fill(q.data[0] as number) });
        });
        return { dir, mentions: ['model.layers.1.self_attn.o_proj.qweight'] };
      },
    },
    {
      name: 'unsupported architecture',
      make: () => {
        const dir = copyOf(single);
        editConfig(dir, (c) => {
          c.architectures = ['LlamaForCausalLM'];
          c.model_type = 'llama';
        });
        return { dir, mentions: ['config.json', /LlamaForCausalLM|llama/] };
      },
    },
    {
      name: 'unsupported quantization method',
      make: () => {
        const dir = copyOf(single);
        editConfig(dir, (c) => {
          c.quantization_config.quant_method = 'gptq';
        });
        return { dir, mentions: ['config.json', 'gptq'] };
      },
    },
    {
      name: 'unsupported AWQ bit width',
      make: () => {
        const dir = copyOf(single);
        editConfig(dir, (c) => {
          c.quantization_config.bits = 8;
        });
        return { dir, mentions: ['config.json', /bits/i] };
      },
    },
    {
      name: 'model directory that does not exist',
      make: () => ({ dir: join(scratch, 'no-such-model'), mentions: ['no-such-model'] }),
    },
  ];

  function expectMentions(message: string, pats: (string | RegExp)[], label: string): void {
    for (const p of pats) {
      if (typeof p === 'string') expect(message, `${label}: message should name ${p}`).toContain(p);
      else expect(message, `${label}: message should match ${p}`).toMatch(p);
    }
  }

  for (const c of cases) {
    it(`${c.name}: CLI exits nonzero with a clear message; addon rejects`, async () => {
      const { dir, mentions: pats } = c.make();
      const r = cli(['logits', '--model', dir, '--tokens', '1,2,3']);
      expect(r.status, `stdout: ${r.stdout.slice(0, 200)}`).not.toBe(0);
      expect(r.status).not.toBeNull(); // killed by a signal = crashed, not an error exit
      if (process.env.QWEN3_SHOW_ERRORS) console.log(`${c.name}: ${r.stderr.trim()}`);
      expectMentions(r.stderr, pats, `CLI ${c.name}`);

      const a = addon(); // outside the try: a missing addon must not pass for a load error
      let error: unknown;
      try {
        const engine = await a.load(dir, {});
        engine.free();
      } catch (e) {
        error = e;
      }
      expect(error, `addon loaded a broken model (${c.name})`).toBeInstanceOf(Error);
      expectMentions((error as Error).message, pats, `addon ${c.name}`);
    });
  }

  it('token id ≥ vocab: the CLI names the bad id', () => {
    const r = cli(['logits', '--model', single.dir, '--tokens', `1,2,${V}`]);
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    expect(r.stderr).toContain(String(V));

    const g = cli(['generate', '--model', single.dir, '--tokens', `${V + 7},1`, '--max-tokens', '2']);
    expect(g.status).not.toBe(0);
    expect(g.status).not.toBeNull();
    expect(g.stderr).toContain(String(V + 7));
  });

  it('token id ≥ vocab or < 0: the addon rejects, naming the id, and keeps working', async () => {
    const engine = await addon().load(single.dir, {});
    try {
      await expect(engine.logits(Int32Array.of(1, 2, V), false)).rejects.toThrow(String(V));
      await expect(engine.logits(Int32Array.of(1, -1), false)).rejects.toThrow(/-1/);
      // generate may throw at once or reject `done`; either is a clean error.
      await expect((async () => engine.generate(Int32Array.of(V + 7), { maxTokens: 2 }, () => {}).done)()).rejects.toThrow(
        String(V + 7),
      );
      const ok = await engine.logits(Int32Array.of(1, 2, 3), false);
      expect(ok).toHaveLength(V);
    } finally {
      engine.free();
    }
  });

  const long = Array.from({ length: CONTEXT + 1 }, (_, i) => i % V);
  const tooLong = /context|max_position|too long/i;

  it('prompt longer than the context: the CLI refuses it', () => {
    const r = cli(['logits', '--model', single.dir, '--tokens', long.join(',')]);
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    expect(r.stderr).toMatch(tooLong);

    const g = cli(['generate', '--model', single.dir, '--tokens', long.join(','), '--max-tokens', '2']);
    expect(g.status).not.toBe(0);
    expect(g.status).not.toBeNull();
    expect(g.stderr).toMatch(tooLong);

    // Exactly the context still works.
    const ok = cli(['logits', '--model', single.dir, '--tokens', long.slice(0, CONTEXT).join(',')]);
    expect(ok.status, ok.stderr).toBe(0);
  });

  it('prompt longer than the context: the addon rejects it and keeps working', async () => {
    const engine = await addon().load(single.dir, {});
    try {
      expect(engine.info().maxContext).toBe(CONTEXT);
      await expect(engine.logits(Int32Array.from(long), false)).rejects.toThrow(tooLong);
      await expect((async () => engine.generate(Int32Array.from(long), { maxTokens: 2 }, () => {}).done)()).rejects.toThrow(
        tooLong,
      );
      const fits = await engine.logits(Int32Array.from(long.slice(0, CONTEXT)), false);
      expect(fits).toHaveLength(V);
    } finally {
      engine.free();
    }
  });

  it('after all the failures above, this process still loads and runs a valid model correctly', async () => {
    for (const m of [single, sharded]) {
      const engine = await addon().load(m.dir, {});
      try {
        const toks = [5, 17, 200, 3];
        const want = referenceLogits(m.config, m.weights, toks);
        const got = await engine.logits(Int32Array.from(toks), false);
        expect(relL2(got, want[want.length - 1])).toBeLessThan(1e-3);
      } finally {
        engine.free();
      }
    }
  });
});
