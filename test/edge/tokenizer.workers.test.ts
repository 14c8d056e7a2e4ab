// Proves edge/tokenizer loads inside workerd (the bundled base64 image, no fs) and encodes the stored fixtures to
// the ids @huggingface/tokenizers wrote, with decode and streaming decode agreeing there too.
import { describe, expect, it } from 'vitest';
import { getTokenizer, StreamingDetokenizer } from '../../edge/tokenizer/index.js';
import fixture from '../fixtures/tokenizer-corpus.json';

describe('qwen3 tokenizer inside workerd', () => {
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
