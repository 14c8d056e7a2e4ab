/**
 * Generates a tiny random-weight Qwen3 AWQ checkpoint in a temp dir, in the file layout AutoAWQ publishes
 * (config.json with quantization_config, generation_config.json, model.safetensors or shards + index), and returns
 * the float64 weights exactly as stored (fp16/bf16-rounded, AWQ-dequantized) for the reference forward pass.
 * The AWQ packing here is written from docs/model.md#awq-format alone; it shares no code with native/.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bf16Tensor, f16Tensor, i32Tensor, type Tensor, writeCheckpoint } from './safetensors.ts';

/** AutoAWQ's AWQ_ORDER: nibble i of int32 column c holds logical column 8c + ORDER[i] (docs/model.md#awq-nibble-order). */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];

export interface TinyQwen3Options {
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  vocab?: number;
  groupSize?: number;
  tieEmbeddings?: boolean;
  normDtype?: 'fp16' | 'bf16';
  /** 1: model.safetensors; > 1: model-0000X-of-0000N.safetensors + model.safetensors.index.json. */
  shards?: number;
  ropeTheta?: number;
  ropeScaling?: Record<string, unknown> | null;
  maxPositionEmbeddings?: number;
  rmsNormEps?: number;
  eosTokenIds?: number[];
  seed?: number;
  /** Extra keys merged into config.json last (e.g. to write an unsupported architecture). */
  configOverrides?: Record<string, unknown>;
  /** Fault injection: pack nibbles in this order instead of AWQ_ORDER (the returned weights stay the intended ones). */
  packOrder?: number[];
  /** Fault injection: store zero points as z + zeroShift (e.g. -1 for the ExLlama convention). */
  zeroShift?: number;
}

/** A linear layer's dequantized weight, row-major [out][in] (the nn.Linear layout). */
export interface Linear {
  out: number;
  in: number;
  w: Float64Array;
}

export interface LayerWeights {
  inputNorm: Float64Array; // (hidden)
  postNorm: Float64Array; // (hidden)
  qNorm: Float64Array; // (head_dim)
  kNorm: Float64Array; // (head_dim)
  q: Linear; // (heads*head_dim, hidden)
  k: Linear; // (kv_heads*head_dim, hidden)
  v: Linear; // (kv_heads*head_dim, hidden)
  o: Linear; // (hidden, heads*head_dim)
  gate: Linear; // (intermediate, hidden)
  up: Linear; // (intermediate, hidden)
  down: Linear; // (hidden, intermediate)
}

export interface Qwen3Weights {
  embed: Float64Array; // (vocab, hidden)
  layers: LayerWeights[];
  finalNorm: Float64Array; // (hidden)
  lmHead: Float64Array | null; // (vocab, hidden); null when tied to embed
}

/** The config.json fields the reference reads (a subset of what is written). */
export interface Qwen3Config {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: Record<string, unknown> | null;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  [key: string]: unknown;
}

export interface TinyQwen3 {
  dir: string;
  config: Qwen3Config;
  generationConfig: Record<string, unknown>;
  weights: Qwen3Weights;
  files: string[];
  /** Raw tensors as written, for tests that rewrite the checkpoint with a fault. */
  tensors: Map<string, Tensor>;
  cleanup(): void;
}

/** Small deterministic PRNG (mulberry32) with a Gaussian helper. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

/**
 * Quantizes a random linear with in_features K, out_features N in AWQ GEMM layout (docs/model.md#awq-format):
 * qweight (K, N/8) i32, qzeros (K/G, N/8) i32, scales (K/G, N) f16, W[n][k] = (q − z)·s.
 */
export function randomAwqLinear(
  rng: Rng,
  K: number,
  N: number,
  G: number,
  packOrder: number[] = AWQ_ORDER,
  zeroShift = 0,
): { qweight: Tensor; qzeros: Tensor; scales: Tensor; linear: Linear } {
  if (K % G !== 0) throw new Error(`in_features ${K} is not a multiple of group size ${G}`);
  if (N % 8 !== 0) throw new Error(`out_features ${N} is not a multiple of 8`);
  const groups = K / G;
  const q = new Uint8Array(K * N); // (K, N)
  for (let i = 0; i < q.length; i++) q[i] = rng.int(16);
  const z = new Uint8Array(groups * N); // (K/G, N), unsigned 0..15
  for (let i = 0; i < z.length; i++) z[i] = 3 + rng.int(10);
  const sRaw = new Float64Array(groups * N);
  const base = 1 / Math.sqrt(K) / 5;
  for (let i = 0; i < sRaw.length; i++) sRaw[i] = base * (0.5 + rng.next());
  const { tensor: scales, stored: s } = f16Tensor([groups, N], sRaw);

  const pack = (vals: Uint8Array, rows: number, shift: number): Int32Array => {
    const out = new Int32Array(rows * (N / 8));
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < N / 8; c++) {
        let word = 0;
        for (let i = 0; i < 8; i++) {
          const v = (vals[r * N + 8 * c + packOrder[i]] + shift) & 0xf;
          word |= v << (4 * i);
        }
        out[r * (N / 8) + c] = word | 0;
      }
    }
    return out;
  };

  const w = new Float64Array(N * K); // (N, K) row-major, as nn.Linear.weight
  for (let k = 0; k < K; k++) {
    const g = Math.floor(k / G);
    for (let n = 0; n < N; n++) w[n * K + k] = (q[k * N + n] - z[g * N + n]) * s[g * N + n];
  }
  return {
    qweight: i32Tensor([K, N / 8], pack(q, K, 0)),
    qzeros: i32Tensor([groups, N / 8], pack(z, groups, zeroShift)),
    scales,
    linear: { out: N, in: K, w },
  };
}

/** Writes a tiny checkpoint to a fresh temp dir. */
export function makeTinyQwen3(opts: TinyQwen3Options = {}): TinyQwen3 {
  const hidden = opts.hidden ?? 64;
  const inter = opts.intermediate ?? 128;
  const nLayers = opts.layers ?? 2;
  const heads = opts.heads ?? 4;
  const kvHeads = opts.kvHeads ?? 2;
  const headDim = opts.headDim ?? 16;
  const vocab = opts.vocab ?? 512;
  const G = opts.groupSize ?? 32;
  const tie = opts.tieEmbeddings ?? false;
  const normDtype = opts.normDtype ?? 'fp16';
  const rng = new Rng(opts.seed ?? 1);
  const tensors = new Map<string, Tensor>();

  const norm = (name: string, n: number, spread: number): Float64Array => {
    const v = Array.from({ length: n }, () => 1 + spread * (2 * rng.next() - 1));
    const { tensor, stored } = normDtype === 'bf16' ? bf16Tensor([n], v) : f16Tensor([n], v);
    tensors.set(name, tensor);
    return stored;
  };
  const dense = (name: string, rows: number, cols: number, std: number): Float64Array => {
    const v = Array.from({ length: rows * cols }, () => std * rng.normal());
    const { tensor, stored } = f16Tensor([rows, cols], v); // embed/lm_head stay fp16 (docs/model.md#what-is-quantized)
    tensors.set(name, tensor);
    return stored;
  };
  const awq = (prefix: string, K: number, N: number): Linear => {
    const r = randomAwqLinear(rng, K, N, G, opts.packOrder, opts.zeroShift);
    tensors.set(`${prefix}.qweight`, r.qweight);
    tensors.set(`${prefix}.qzeros`, r.qzeros);
    tensors.set(`${prefix}.scales`, r.scales);
    return r.linear;
  };

  const embed = dense('model.embed_tokens.weight', vocab, hidden, 1);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < nLayers; i++) {
    const p = `model.layers.${i}`;
    const inputNorm = norm(`${p}.input_layernorm.weight`, hidden, 0.3);
    const q = awq(`${p}.self_attn.q_proj`, hidden, heads * headDim);
    const k = awq(`${p}.self_attn.k_proj`, hidden, kvHeads * headDim);
    const v = awq(`${p}.self_attn.v_proj`, hidden, kvHeads * headDim);
    const o = awq(`${p}.self_attn.o_proj`, heads * headDim, hidden);
    const qNorm = norm(`${p}.self_attn.q_norm.weight`, headDim, 0.5);
    const kNorm = norm(`${p}.self_attn.k_norm.weight`, headDim, 0.5);
    const postNorm = norm(`${p}.post_attention_layernorm.weight`, hidden, 0.3);
    const gate = awq(`${p}.mlp.gate_proj`, hidden, inter);
    const up = awq(`${p}.mlp.up_proj`, hidden, inter);
    const down = awq(`${p}.mlp.down_proj`, inter, hidden);
    layers.push({ inputNorm, postNorm, qNorm, kNorm, q, k, v, o, gate, up, down });
  }
  const finalNorm = norm('model.norm.weight', hidden, 0.3);
  const lmHead = tie ? null : dense('lm_head.weight', vocab, hidden, 2 / Math.sqrt(hidden));

  const eos = opts.eosTokenIds ?? [vocab - 1, vocab - 2];
  const config: Qwen3Config = {
    architectures: ['Qwen3ForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: eos[eos.length - 1],
    eos_token_id: eos[0],
    head_dim: headDim,
    hidden_act: 'silu',
    hidden_size: hidden,
    initializer_range: 0.02,
    intermediate_size: inter,
    max_position_embeddings: opts.maxPositionEmbeddings ?? 128,
    max_window_layers: nLayers,
    model_type: 'qwen3',
    num_attention_heads: heads,
    num_hidden_layers: nLayers,
    num_key_value_heads: kvHeads,
    quantization_config: {
      bits: 4,
      group_size: G,
      modules_to_not_convert: null,
      quant_method: 'awq',
      version: 'gemm',
      zero_point: true,
    },
    rms_norm_eps: opts.rmsNormEps ?? 1e-6,
    rope_scaling: opts.ropeScaling ?? null,
    rope_theta: opts.ropeTheta ?? 1000000,
    sliding_window: null,
    tie_word_embeddings: tie,
    torch_dtype: 'float16',
    transformers_version: '4.51.0',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: vocab,
    ...opts.configOverrides,
  };
  const generationConfig = {
    bos_token_id: eos[eos.length - 1],
    do_sample: true,
    eos_token_id: eos,
    pad_token_id: eos[eos.length - 1],
    temperature: 0.6,
    top_k: 20,
    top_p: 0.95,
    transformers_version: '4.51.0',
  };

  const dir = mkdtempSync(join(tmpdir(), 'tiny-qwen3-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(generationConfig, null, 2));
  const files = writeCheckpoint(dir, tensors, opts.shards ?? 1);
  return {
    dir,
    config,
    generationConfig,
    weights: { embed, layers, finalNorm, lmHead },
    files,
    tensors,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
