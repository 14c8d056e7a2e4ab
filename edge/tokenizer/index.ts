/** Qwen3 tokenizer for the edge: encode/decode, streaming detokenization for SSE, and the special-token ids. */
export { getTokenizer, Qwen3Tokenizer, type DecodeOptions, type EncodeOptions } from './qwen3-tokenizer.js';
export { StreamingDetokenizer } from './streaming-detokenizer.js';
export * from './special-tokens.js';
export type { AddedToken } from './tokenizer-data.js';
