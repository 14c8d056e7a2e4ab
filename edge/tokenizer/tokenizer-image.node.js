// The compiled tokenizer image (scripts/build-tokenizer.mjs) read from disk, for Node: tests, benchmarks and tools.
// workerd takes tokenizer-image.workerd.js instead (package.json "imports": "#qwen3-tokenizer-image").
import { readFileSync } from 'node:fs';

const file = readFileSync(new URL('./generated/qwen3-tokenizer.bin', import.meta.url));

export default file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
