/**
 * Plain float64 Qwen3 forward pass written from docs/model.md (architecture, RoPE, YaRN), the oracle the engine's
 * logits are checked against. It shares no code with native/: loops over arrays, one step per line of the spec, no caching.
 */
import type { Linear, Qwen3Config, Qwen3Weights } from './tiny-qwen3.ts';

export interface YarnParams {
  factor: number;
  originalMaxPositionEmbeddings?: number;
  betaFast?: number;
  betaSlow?: number;
  attentionFactor?: number;
  mscale?: number;
  mscaleAllDim?: number;
  truncate?: boolean;
}

export interface RopeTable {
  invFreq: Float64Array; // (head_dim/2)
  attentionFactor: number; // multiplies cos and sin
}

/** Default RoPE: inv_freq[i] = 1/θ^(2i/D) (docs/model.md#rope). */
export function defaultRope(theta: number, dim: number): RopeTable {
  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / dim);
  return { invFreq, attentionFactor: 1 };
}

/** YaRN inverse frequencies and attention factor, transformers' `_compute_yarn_parameters` (docs/model.md#yarn). */
export function yarnRope(theta: number, dim: number, maxPositionEmbeddings: number, p: YarnParams): RopeTable {
  const factor = p.factor;
  const L = p.originalMaxPositionEmbeddings ?? maxPositionEmbeddings;
  const betaFast = p.betaFast || 32;
  const betaSlow = p.betaSlow || 1;
  const getMscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
  let attentionFactor: number;
  if (p.attentionFactor !== undefined) attentionFactor = p.attentionFactor;
  else if (p.mscale && p.mscaleAllDim) attentionFactor = getMscale(factor, p.mscale) / getMscale(factor, p.mscaleAllDim);
  else attentionFactor = getMscale(factor);

  const correctionDim = (r: number) => (dim * Math.log(L / (2 * Math.PI * r))) / (2 * Math.log(theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (p.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (high === low) high += 0.001;

  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const posFreq = Math.pow(theta, (2 * i) / dim);
    const invExtra = 1 / posFreq;
    const invInter = 1 / (factor * posFreq);
    invFreq[i] = invExtra * (1 - ramp) + invInter * ramp;
  }
  return { invFreq, attentionFactor };
}

/** Reads config.json's rope_scaling (or an override) into a RoPE table. Only "yarn" (or null) is understood. */
export function ropeFromConfig(config: Qwen3Config, override?: YarnParams): RopeTable {
  const dim = config.head_dim;
  if (override) return yarnRope(config.rope_theta, dim, config.max_position_embeddings, override);
  const rs = config.rope_scaling;
  if (!rs) return defaultRope(config.rope_theta, dim);
  const type = (rs.rope_type ?? rs.type) as string;
  if (type !== 'yarn') throw new Error(`reference: rope type ${type} not implemented`);
  return yarnRope(config.rope_theta, dim, config.max_position_embeddings, {
    factor: rs.factor as number,
    originalMaxPositionEmbeddings: rs.original_max_position_embeddings as number | undefined,
    betaFast: rs.beta_fast as number | undefined,
    betaSlow: rs.beta_slow as number | undefined,
    attentionFactor: rs.attention_factor as number | undefined,
    mscale: rs.mscale as number | undefined,
    mscaleAllDim: rs.mscale_all_dim as number | undefined,
    truncate: rs.truncate as boolean | undefined,
  });
}

function rmsnorm(x: Float64Array, off: number, n: number, w: Float64Array, eps: number, out: Float64Array, outOff: number): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[off + i] * x[off + i];
  const r = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) out[outOff + i] = w[i] * (x[off + i] * r);
}

/** y = x·Wᵀ for one row x (length in). */
function matvec(lin: Linear, x: Float64Array): Float64Array {
  const y = new Float64Array(lin.out);
  for (let n = 0; n < lin.out; n++) {
    let acc = 0;
    const row = n * lin.in;
    for (let k = 0; k < lin.in; k++) acc += x[k] * lin.w[row + k];
    y[n] = acc;
  }
  return y;
}

/** NeoX rotation of one head in place: element j pairs with j + D/2, both at frequency invFreq[j]. */
function rope(x: Float64Array, off: number, D: number, pos: number, t: RopeTable): void {
  const half = D / 2;
  for (let j = 0; j < half; j++) {
    const ang = pos * t.invFreq[j];
    const c = Math.cos(ang) * t.attentionFactor;
    const s = Math.sin(ang) * t.attentionFactor;
    const a = x[off + j];
    const b = x[off + j + half];
    x[off + j] = a * c - b * s;
    x[off + j + half] = b * c + a * s;
  }
}

/**
 * Logits for every position of `tokens` (positions 0..n−1), one Float64Array(vocab) per position.
 * `yarn` overrides config.json's rope_scaling, as the engine's --rope-scaling option does.
 */
export function referenceLogits(config: Qwen3Config, w: Qwen3Weights, tokens: number[], yarn?: YarnParams): Float64Array[] {
  const E = config.hidden_size;
  const H = config.num_attention_heads;
  const KV = config.num_key_value_heads;
  const D = config.head_dim;
  const V = config.vocab_size;
  const eps = config.rms_norm_eps;
  const T = tokens.length;
  const table = ropeFromConfig(config, yarn);
  const group = H / KV;
  const scale = 1 / Math.sqrt(D);

  // 1. embedding
  const h = new Float64Array(T * E); // (T, E) residual stream
  tokens.forEach((tok, t) => {
    if (tok < 0 || tok >= V) throw new Error(`reference: token ${tok} out of range`);
    for (let i = 0; i < E; i++) h[t * E + i] = w.embed[tok * E + i];
  });

  const xn = new Float64Array(E);
  for (const L of w.layers) {
    // 2a. attention block: rmsnorm → q,k,v → q/k-norm per head → RoPE
    const Q = new Float64Array(T * H * D);
    const K = new Float64Array(T * KV * D);
    const Vv = new Float64Array(T * KV * D);
    for (let t = 0; t < T; t++) {
      rmsnorm(h, t * E, E, L.inputNorm, eps, xn, 0);
      const q = matvec(L.q, xn);
      const k = matvec(L.k, xn);
      const v = matvec(L.v, xn);
      for (let hh = 0; hh < H; hh++) {
        rmsnorm(q, hh * D, D, L.qNorm, eps, Q, (t * H + hh) * D);
        rope(Q, (t * H + hh) * D, D, t, table);
      }
      for (let kh = 0; kh < KV; kh++) {
        rmsnorm(k, kh * D, D, L.kNorm, eps, K, (t * KV + kh) * D);
        rope(K, (t * KV + kh) * D, D, t, table);
        for (let d = 0; d < D; d++) Vv[(t * KV + kh) * D + d] = v[kh * D + d];
      }
    }
    // 2b. causal GQA attention: query head hh reads kv head floor(hh / (H/KV))
    for (let t = 0; t < T; t++) {
      const attn = new Float64Array(H * D);
      for (let hh = 0; hh < H; hh++) {
        const kh = Math.floor(hh / group);
        const sc = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let u = 0; u <= t; u++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += Q[(t * H + hh) * D + d] * K[(u * KV + kh) * D + d];
          sc[u] = dot * scale;
          if (sc[u] > mx) mx = sc[u];
        }
        let sum = 0;
        for (let u = 0; u <= t; u++) {
          sc[u] = Math.exp(sc[u] - mx);
          sum += sc[u];
        }
        for (let u = 0; u <= t; u++) {
          const p = sc[u] / sum;
          for (let d = 0; d < D; d++) attn[hh * D + d] += p * Vv[(u * KV + kh) * D + d];
        }
      }
      // 2c. o_proj + residual (writes row t, which later rows of this layer no longer read: K/V are precomputed)
      const o = matvec(L.o, attn);
      for (let i = 0; i < E; i++) h[t * E + i] += o[i];
    }
    // 2d. MLP block: rmsnorm → silu(gate)·up → down → residual
    for (let t = 0; t < T; t++) {
      rmsnorm(h, t * E, E, L.postNorm, eps, xn, 0);
      const g = matvec(L.gate, xn);
      const u = matvec(L.up, xn);
      for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
      const d = matvec(L.down, g);
      for (let i = 0; i < E; i++) h[t * E + i] += d[i];
    }
  }

  // 3. final norm → lm_head (or the tied embedding)
  const head = w.lmHead ?? w.embed;
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    rmsnorm(h, t * E, E, w.finalNorm, eps, xn, 0);
    const logits = new Float64Array(V);
    for (let n = 0; n < V; n++) {
      let acc = 0;
      for (let i = 0; i < E; i++) acc += xn[i] * head[n * E + i];
      logits[n] = acc;
    }
    out.push(logits);
  }
  return out;
}

/** ‖a − b‖ / ‖b‖. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relL2: length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export function logSoftmax(x: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > mx) mx = x[i];
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - mx);
  const lse = mx + Math.log(s);
  return Float64Array.from(x, (v) => v - lse);
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
