// The tiny checkpoints the engine's logits are checked on against the float64 reference (engine-logits.test.ts) and
// that bench/kv-fp16-tolerance.mjs measures: each covers several axes at once so the test file stays fast.
import type { TinyQwen3Options } from './tiny-qwen3.ts';

export const LOGITS_CHECKPOINTS: Record<string, TinyQwen3Options> = {
  // GQA with 2 KV heads (2 query heads each); untied; fp16 norms; single file; no rope_scaling.
  gqa: { hidden: 64, intermediate: 128, heads: 4, kvHeads: 2, headDim: 16, vocab: 512, groupSize: 32, maxPositionEmbeddings: 64, seed: 11 },
  // heads·head_dim = 128 ≠ hidden 64, 4 query heads per KV head like Qwen3-8B; tied; bf16 norms; 3 shards.
  wide: {
    hidden: 64, intermediate: 192, heads: 8, kvHeads: 2, headDim: 16, vocab: 384, groupSize: 64, tieEmbeddings: true,
    normDtype: 'bf16', shards: 3, maxPositionEmbeddings: 64, ropeTheta: 10000, rmsNormEps: 1e-5, seed: 22,
  },
  // head_dim 128 and group size 128 as in Qwen3-8B, a single KV head (MQA), untied, single file.
  hd128: { hidden: 128, intermediate: 384, heads: 2, kvHeads: 1, headDim: 128, vocab: 300, groupSize: 128, maxPositionEmbeddings: 64, seed: 44 },
  // YaRN in config.json (factor 4, original 16); group size 128 as published; head_dim 32; 2 shards.
  yarn: {
    hidden: 128, intermediate: 256, heads: 4, kvHeads: 2, headDim: 32, vocab: 640, groupSize: 128, shards: 2,
    ropeTheta: 10000, maxPositionEmbeddings: 64,
    ropeScaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 16 }, seed: 33,
  },
};
