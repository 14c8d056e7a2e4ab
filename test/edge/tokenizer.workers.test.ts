// Proves edge/tokenizer loads inside workerd (the bundled image, no fs) and gives there the ids of Hugging Face's Rust
// tokenizers: every code point's sweep and the ≥ 5 MB corpus against the reference's committed digests (workerd's
// Unicode is older than Node's, and neither is the reference's), plus the stored fixtures and decoding.
import { describe, expect, it } from 'vitest';
import { getTokenizer, StreamingDetokenizer } from '../../edge/tokenizer/index.js';
import fixture from '../fixtures/tokenizer-corpus.json';
import digests from '../fixtures/tokenizer-oracle-digests.json';
import { mismatchingDocuments } from '../helpers/tokenizer-corpus.ts';

/** The sweep and corpus take ~10–40 s; allow for a machine shared with other work. */
const SWEEP_TIMEOUT_MS = 900_000;

describe('qwen3 tokenizer inside workerd', () => {
  it('Should give the Rust reference ids on every code point and a ≥ 5 MB multilingual, adversarial corpus', () => {
    const tokenizer = getTokenizer();
    expect(digests.corpusBytes).toBeGreaterThanOrEqual(5_000_000);
    expect(mismatchingDocuments((text) => tokenizer.encode(text), digests)).toEqual([]);
  }, SWEEP_TIMEOUT_MS);

  it('Should encode every stored fixture to the reference ids', () => {
    const tokenizer = getTokenizer();
    for (const { name, text, ids } of fixture.cases) expect(tokenizer.encode(text), name).toEqual(ids);
  });

  it('Should decode the fixtures in one go and streamed alike', () => {
    const tokenizer = getTokenizer();
    for (const { ids } of fixture.cases) {
      const stream = new StreamingDetokenizer(tokenizer);
      const streamed = ids.map((id) => stream.push(id)).join('') + stream.flush();
      expect(streamed).toBe(tokenizer.decode(ids));
    }
  });
});
