/**
 * @module A grammar thread (worker_threads), driven by grammar-pool.ts. Each thread owns one xgrammar WASM instance:
 * - a checker turns a request's structural tag into the string xgrammar compiles (JSON schemas to compact EBNF) and
 *   parses it, so invalid schemas, regexes and grammars fail here, in an instance that holds nothing else;
 * - a matcher thread holds the tokenizer info, compiled grammars (kept until the pool drops them) and one matcher
 *   per constrained sequence, and fills next-token bitmasks straight into the masks the engine samples with (a
 *   SharedArrayBuffer of rows, one per constrained sequence of a step).
 * A fatal xgrammar error leaves the instance unusable, so the thread answers and exits; the pool starts a new one.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { GrammarFormat } from './protocol.ts';
import {
  fatalMessage, loadXGrammar, normaliseFormat, tokenizerVocab, type CompiledGrammar, type GrammarCompiler, type GrammarMatcher,
} from './xgrammar.ts';

export interface ThreadInit {
  role: 'checker' | 'matcher';
  tokenizerPath: string;
  vocabSize: number;
  stopIds: number[];
  keepAdded: string[];             // added tokens grammars may spell (see tokenizerVocab)
  masks?: SharedArrayBuffer;       // matcher: rows of Math.ceil(vocabSize / 32) words
}

/** One constrained sequence's share of a step: feed it `tokens`, then write its next-token mask to `row`. */
export interface FillJob {
  matcher: number;
  key: string;                     // compiled grammar to create the matcher from, if the thread has none yet
  tokens: number[];
  row: number;
  alsoAllow?: number[];            // tokens to allow besides the grammar's (think start, separators: protocol.ts)
}

export type ThreadRequest =
  | { op: 'check'; id: number; format: GrammarFormat }
  | { op: 'compile'; id: number; key: string; tag: string }
  | { op: 'fill'; id: number; jobs: FillJob[] }
  | { op: 'drop'; keys: string[] }
  | { op: 'close'; matchers: number[] };

export type ThreadReply =
  | { op: 'ready'; ms: number }
  | { op: 'checked'; id: number; tag: string }
  | { op: 'started'; id: number }                  // a compile began (its time limit counts from here)
  | { op: 'compiled'; id: number; ms: number }
  | { op: 'filled'; id: number; errors: { matcher: number; message: string }[] }
  | { op: 'failed'; id: number; message: string; fatal: boolean };

const init = workerData as ThreadInit;
const port = parentPort!;
const send = (reply: ThreadReply) => port.postMessage(reply);
const t0 = performance.now();
const xg = loadXGrammar();
const words = Math.ceil(init.vocabSize / 32);
const rows = init.masks ? new Int32Array(init.masks) : new Int32Array(0);
let compiler: GrammarCompiler | undefined;
const compiled = new Map<string, CompiledGrammar>();
const matchers = new Map<number, GrammarMatcher>();

if (init.role === 'matcher') {
  const { vocab, vocabType } = tokenizerVocab(readFileSync(init.tokenizerPath, 'utf8'), init.keepAdded);
  const info = await xg.TokenizerInfo.createTokenizerInfo(vocab, vocabType, false, init.vocabSize, init.stopIds);
  compiler = await xg.GrammarCompiler.createGrammarCompiler(info, false);   // the pool keeps its own cache
} else {
  await normaliseFormat(xg, { type: 'const_string', value: '' });    // initialise the WASM module now
}
send({ op: 'ready', ms: performance.now() - t0 });

// Requests run one at a time. A fill goes ahead of waiting compiles when its grammars are ready: a compilation can
// take seconds, and streams already running should not wait for it (only for one that already started).
const inbox: ThreadRequest[] = [];
let draining = false;
port.on('message', (req: ThreadRequest) => {
  inbox.push(req);
  if (!draining) void drain();
});

const canJump = (req: ThreadRequest) =>
  req.op === 'close' || (req.op === 'fill' && req.jobs.every((j) => matchers.has(j.matcher) || compiled.has(j.key)));

async function drain(): Promise<void> {
  draining = true;
  while (inbox.length) {
    await new Promise((resolve) => setImmediate(resolve));   // take in messages that arrived meanwhile
    const next = inbox.findIndex(canJump);
    const req = inbox.splice(next >= 0 ? next : 0, 1)[0];
    try {
      await handle(req);
    } catch (error) {
      send({ op: 'failed', id: 'id' in req ? req.id : -1, message: fatalMessage(error), fatal: true });
      process.exit(1);                // the instance may be corrupt: the pool replaces this thread
    }
  }
  draining = false;
}

async function handle(req: ThreadRequest): Promise<void> {
  switch (req.op) {
    case 'check': {
      const tag = await normaliseFormat(xg, req.format);
      (await xg.Grammar.fromStructuralTag(tag)).dispose();
      return send({ op: 'checked', id: req.id, tag });
    }
    case 'compile': {
      send({ op: 'started', id: req.id });
      const start = performance.now();
      if (!compiled.has(req.key)) compiled.set(req.key, await compiler!.compileStructuralTag(req.tag));
      return send({ op: 'compiled', id: req.id, ms: performance.now() - start });
    }
    case 'fill': {
      const errors: { matcher: number; message: string }[] = [];
      for (const job of req.jobs) {
        const message = await fill(job);
        if (message) errors.push({ matcher: job.matcher, message });
      }
      return send({ op: 'filled', id: req.id, errors });
    }
    case 'drop':
      for (const key of req.keys) {
        compiled.get(key)?.dispose();
        compiled.delete(key);
      }
      return;
    case 'close':
      for (const id of req.matchers) {
        matchers.get(id)?.dispose();
        matchers.delete(id);
      }
      return;
  }
}

/** Feeds a job's tokens and writes its mask; returns an error message instead of a mask the engine cannot use. */
async function fill(job: FillJob): Promise<string | undefined> {
  let m = matchers.get(job.matcher);
  if (!m) {
    const grammar = compiled.get(job.key);
    if (!grammar) return `grammar ${job.key.slice(0, 12)} is not compiled on this thread`;
    m = await xg.GrammarMatcher.createGrammarMatcher(grammar);
    matchers.set(job.matcher, m);
  }
  for (const token of job.tokens) {
    if (!m.acceptToken(token)) return `token ${token} does not continue the required format`;
  }
  const row = rows.subarray(job.row * words, (job.row + 1) * words);
  if (m.isTerminated()) {             // a stop token was fed: only stop tokens again
    row.fill(0);
    for (const t of init.stopIds) row[t >> 5] |= 1 << (t & 31);
  } else {
    row.set(await m.getNextTokenBitmask());
  }
  for (const t of job.alsoAllow ?? []) row[t >> 5] |= 1 << (t & 31);
  if (!row.some((w) => w !== 0)) return 'the format allows no next token';
  return undefined;
}
