/**
 * @module Continuous batching: a bounded wait queue, slots for running sequences, and the loop that builds one
 * engine step at a time. Every step each decoding sequence feeds its last token first; what is left of the step's
 * token budget goes to prefill chunks, at most `prefillPerRequest` tokens per sequence, tenants taking turns
 * (fair-queue.ts). So a long prompt never holds a step for itself: a request that arrives behind it waits for one
 * capped step, then shares the next. Admission into the batch and the wait queue are per tenant too: slots go to
 * tenants in turn, a tenant below its share of a full batch takes a slot from one above it at the next step, and one
 * tenant may hold at most `maxQueuePerTenant` waiting requests, so it cannot fill the queue for everyone. Sequences
 * join and leave between any two steps. KV blocks grow on demand; when the pool runs dry the youngest sequence is
 * preempted (blocks released, sampler state kept) and later re-prefilled, so its stream continues unchanged. Tokens
 * leave through each request's Sink, in order, one per step.
 */
import type { BatchItem, SampledToken, WorkerEngine } from './engine.ts';
import { RoundRobin, WaitQueue } from './fair-queue.ts';
import type { KvBlocks } from './kv-blocks.ts';
import type { Gauges, WorkerMetrics } from './metrics.ts';
import type { FinishReason } from './protocol.ts';
import { constrainedStep } from './structured-output.ts';
import { Sequence, type Sink, type Task } from './task.ts';

export type { Outcome, Sink, Task } from './task.ts';

export interface SchedulerOptions {
  maxBatch: number;            // sequences per step
  maxQueue: number;            // waiting requests before 503
  maxQueuePerTenant: number;   // waiting requests of one tenant before 503 (below maxQueue: room stays for others)
  prefillChunk: number;        // tokens per step shared by decode tokens and prefill chunks
  prefillPerRequest: number;   // prefill tokens one sequence may take per step (vLLM's long_prefill_token_threshold)
  maxContext: number;          // tokens one sequence may hold
  eosIds: readonly number[];
}

/** The worker cannot take the request now (queue full, draining); http answers 503 + Retry-After. */
export class UnavailableError extends Error {
  constructor(message: string, readonly retryAfterS: number, readonly code: 'queue_full' | 'tenant_queue_full' | 'draining') {
    super(message);
  }
}

interface Planned { seq: Sequence; item: BatchItem }

export class Scheduler {
  private readonly waiting = new WaitQueue();
  private readonly running: Sequence[] = [];   // admission order: oldest first
  private readonly prefillTurns = new RoundRobin();
  private readonly live = new Map<string, number>();   // tenant → its sequences waiting or running
  private nextId = 1;
  private looping = false;
  private draining = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly engine: WorkerEngine,
    private readonly kv: KvBlocks,
    private readonly metrics: WorkerMetrics,
    private readonly opts: SchedulerOptions,
  ) {}

  /** Queues a request; throws UnavailableError when it cannot be queued. */
  submit(task: Task, sink: Sink): { cancel(): void } {
    if (this.draining) throw new UnavailableError('worker is shutting down', 5, 'draining');
    const retryAfterS = Math.max(1, Math.ceil(this.waiting.length / this.opts.maxBatch));
    const mine = this.waiting.waitingOf(task.tenant);
    if (mine >= this.opts.maxQueuePerTenant) {
      this.metrics.rejected++;
      throw new UnavailableError(`request queue is full for this tenant (${mine} of its requests wait)`, retryAfterS, 'tenant_queue_full');
    }
    if (this.waiting.length >= this.opts.maxQueue) {
      this.metrics.rejected++;
      throw new UnavailableError('request queue is full', retryAfterS, 'queue_full');
    }
    const seq = new Sequence(this.nextId++, task, sink, performance.now(), this.opts.eosIds);
    this.live.set(task.tenant, (this.live.get(task.tenant) ?? 0) + 1);
    this.waiting.push(seq);
    this.wake();
    return { cancel: () => this.cancel(seq) };
  }

  gauges(): Gauges {
    return {
      running: this.running.length, waiting: this.waiting.length,
      kvBlocksUsed: this.kv.usedBlocks(), kvBlocksTotal: this.kv.totalBlocks, kvBlocksCached: this.kv.cachedBlocks(),
      prefixQueriedTokens: this.kv.queriedTokens, prefixHitTokens: this.kv.hitTokens,
    };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Stops admitting, lets in-flight requests finish for up to graceMs, then cancels the rest. */
  async shutdown(graceMs: number): Promise<void> {
    this.draining = true;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)));
    if (await Promise.race([this.idle().then(() => false), expired])) {
      for (const seq of [...this.waiting.all(), ...this.running]) this.cancel(seq);
      await this.idle();
    }
    clearTimeout(timer);
    this.kv.clear();
  }

  private idle(): Promise<void> {
    if (!this.looping && !this.running.length && !this.waiting.length) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private cancel(seq: Sequence): void {
    seq.cancelled = true;
    if (this.waiting.remove(seq)) this.retire(seq, { reason: 'cancelled' });   // not in the batch: free it now
    // running: reaped before the next step
  }

  private wake(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (this.running.length || this.waiting.length) {
        this.reap();
        this.admit();
        const batch = this.plan();
        if (!batch.length) {                      // nothing runs (a plan with runners is never empty)
          if (this.kv.availableBlocks() < this.kv.totalBlocks) continue;   // blocks were just freed: admit again
          const head = this.waiting.peek();       // the whole pool is free and the head still does not fit
          if (head) {
            this.waiting.take(head);
            this.retire(head, { error: new Error('prompt needs more KV blocks than the pool holds') });
          }
          continue;
        }
        await this.step(batch);
      }
    } finally {
      this.looping = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Drops cancelled sequences from the batch, releasing their blocks and sampler state. */
  private reap(): void {
    for (const seq of this.running.filter((s) => s.cancelled)) {
      this.running.splice(this.running.indexOf(seq), 1);
      this.retire(seq, { reason: 'cancelled' });
    }
  }

  /**
   * Moves waiting sequences into the batch while slots and KV blocks allow (one block of headroom per runner),
   * tenants in turn. When the next one does not fit, nobody passes it: a large prompt is not starved by small ones.
   * A full batch still makes room for a tenant below its share of the slots (see makeRoom).
   */
  private admit(): void {
    while (this.waiting.length) {
      const seq = this.running.length < this.opts.maxBatch ? this.waiting.peek()! : this.makeRoom();
      if (!seq) return;
      const match = this.kv.matchPrefix(seq.tokens);
      const need = this.kv.blocksFor(seq.tokens.length) - match.blocks.length;
      const fresh = this.kv.availableBlocks() - need >= this.running.length ? this.kv.alloc(need) : null;
      if (!fresh) {
        this.kv.release(match.blocks);
        return;
      }
      this.waiting.take(seq);
      seq.table = [...match.blocks, ...fresh];
      seq.computed = match.cachedTokens;
      seq.prefilling = true;
      if (!seq.begun && !this.begin(seq, match.cachedTokens)) continue;
      this.running.push(seq);
    }
  }

  /**
   * The batch is full. When a waiting tenant holds fewer slots than its share (maxBatch ÷ tenants with work here)
   * and another holds more, the richer tenant's sequence with the least prefill done (the youngest among equals) is
   * preempted, and the poorer tenant's next request is returned for the freed slot. So one tenant's long prompts,
   * which hold their slots for many steps, never keep another tenant's requests out of the batch until they finish.
   * Nothing is preempted when the poorer tenant's request would not fit the KV pool even with the victim's blocks
   * back (it waits for blocks like any request): preempting then would only re-admit the victim at the next step.
   */
  private makeRoom(): Sequence | undefined {
    const held = new Map<string, number>();
    for (const s of this.running) held.set(s.task.tenant, (held.get(s.task.tenant) ?? 0) + 1);
    const waitingTenants = this.waiting.tenants();
    const share = Math.floor(this.opts.maxBatch / new Set([...held.keys(), ...waitingTenants]).size);
    const slots = (tenant: string) => held.get(tenant) ?? 0;
    const poorest = waitingTenants.reduce<string | undefined>((best, t) => (best === undefined || slots(t) < slots(best) ? t : best), undefined);
    if (poorest === undefined || slots(poorest) >= share) return undefined;
    const richest = [...held.keys()].reduce((best, t) => (slots(t) > slots(best) ? t : best));
    if (slots(richest) <= share) return undefined;
    let victim: Sequence | undefined;
    for (let i = this.running.length - 1; i >= 0; i--) {
      const s = this.running[i];
      if (s.task.tenant === richest && (!victim || s.computed < victim.computed)) victim = s;
    }
    const next = this.waiting.firstOf(poorest)!;
    if (!this.kv.fitsAfterRelease(next.tokens, victim!.table, this.running.length - 1)) return undefined;
    this.preempt(victim!);
    return next;
  }

  /** First admission: sampler state, usage counters, and a budget that may already be spent (N = 0). */
  private begin(seq: Sequence, cachedTokens: number): boolean {
    try {
      this.engine.seqBegin(seq.id, seq.task.prompt, seq.task.sampling);
    } catch (error) {
      this.retire(seq, { error: error as Error });
      return false;
    }
    seq.begun = true;
    seq.cachedTokens = cachedTokens;
    this.kv.recordLookup(seq.tokens.length, cachedTokens);
    this.metrics.promptTokens += seq.tokens.length;
    if (seq.beginThinking()) this.engine.seqForce(seq.id, seq.task.budget!.inject);
    return true;
  }

  /**
   * Builds one step: a decode token per decoding sequence first, then prefill chunks from what is left of the token
   * budget. Prefill goes in rounds: each round gives the next prefilling sequence of every tenant (in turn order,
   * each tenant's own in admission order) up to prefillPerRequest tokens, until the budget or the work runs out.
   */
  private plan(): Planned[] {
    const batch: Planned[] = [];
    // Index loop: grow() may preempt the youngest sequences, which sit after index i (or retire seq, the last).
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i];
      if (seq.remaining !== 1) continue;
      if (this.grow(seq, seq.computed + 1)) batch.push({ seq, item: this.item(seq, 1) });
    }
    const prefilling = new Map<string, Sequence[]>();        // tenant → its prefilling sequences
    for (const seq of this.running) {
      if (seq.remaining <= 1) continue;
      const mine = prefilling.get(seq.task.tenant);
      if (mine) mine.push(seq);
      else prefilling.set(seq.task.tenant, [seq]);
    }
    const tenants = this.prefillTurns.order(prefilling.keys());
    const rounds = Math.max(0, ...[...prefilling.values()].map((s) => s.length));
    let budget = Math.max(1, this.opts.prefillChunk - batch.length);
    for (let round = 0; round < rounds && budget > 0; round++) {
      for (const tenant of tenants) {
        const seq = prefilling.get(tenant)![round];
        if (!seq || budget <= 0) continue;
        const n = Math.min(seq.remaining, this.opts.prefillPerRequest, budget);
        budget -= n;
        batch.push({ seq, item: this.item(seq, n) });
        this.prefillTurns.served(tenant);
      }
    }
    return batch;
  }

  private item(seq: Sequence, n: number): BatchItem {
    const pos = seq.computed;
    return {
      seqId: seq.id,
      tokens: Int32Array.from(seq.tokens.slice(pos, pos + n)),
      pos,
      blockTable: Int32Array.from(seq.table.slice(0, this.kv.blocksFor(pos + n))),
      sample: pos + n === seq.tokens.length,
    };
  }

  /** Makes the table cover `positions`, preempting younger sequences if the pool is dry. */
  private grow(seq: Sequence, positions: number): boolean {
    const need = this.kv.blocksFor(positions) - seq.table.length;
    if (need <= 0) return true;
    for (;;) {
      const fresh = this.kv.alloc(need);
      if (fresh) {
        seq.table.push(...fresh);
        return true;
      }
      const victim = this.running[this.running.length - 1];
      if (victim === seq && this.running.length === 1) {   // alone and out of blocks: it can never grow
        this.running.pop();
        this.retire(seq, { reason: 'length' });
        return false;
      }
      this.preempt(victim);
      if (victim === seq) return false;                    // the youngest waits for older ones to finish
    }
  }

  private preempt(seq: Sequence): void {
    this.metrics.preemptions++;
    this.running.splice(this.running.indexOf(seq), 1);
    this.kv.release(seq.table);
    seq.table = [];
    seq.computed = 0;
    this.waiting.resume(seq);
  }

  /** Runs one forward pass and hands each sampled token to its sequence. */
  private async step(batch: Planned[]): Promise<void> {
    let out: (SampledToken | null)[];
    let failed: Map<number, Error>;   // sequences whose grammar cannot continue
    try {                             // a failed pass fails every sequence in it: their KV state is unknown
      ({ out, failed } = await constrainedStep(this.engine, batch.map((b) => b.item), batch.map((b) => b.seq.grammar)));
    } catch (error) {
      for (const { seq } of batch) this.fail(seq, error as Error);
      return;
    }
    const now = performance.now();
    batch.forEach(({ seq, item }, i) => {
      seq.computed += item.tokens.length;
      if (failed.has(i)) return this.fail(seq, failed.get(i)!);
      const tok = out[i];
      if (item.sample && tok && !seq.cancelled && this.running.includes(seq)) this.accept(seq, tok, now);
    });
  }

  /** One new token: stop checks, streaming, the thinking budget, length limits. */
  private accept(seq: Sequence, tok: SampledToken, now: number): void {
    if (seq.prefilling) {
      seq.prefilling = false;
      this.kv.register(seq.tokens, seq.task.prompt.length, seq.table);
    }
    if (seq.generated === 0) this.metrics.ttft.observe((now - seq.arrivalMs) / 1000);
    else this.metrics.itl.observe((now - seq.lastTokenMs) / 1000);
    seq.lastTokenMs = now;
    seq.generated++;
    this.metrics.generationTokens++;
    if (!tok.forced && seq.stopIds.has(tok.token)) return this.finish(seq, 'stop', tok.token);   // forced: never a stop
    seq.tokens.push(tok.token);
    seq.sink.tokens([tok]);
    seq.grammar?.note(tok.token);
    if (seq.noteThinking(tok.token)) this.engine.seqForce(seq.id, seq.task.budget!.inject);
    if (seq.generated >= seq.task.maxTokens || seq.tokens.length >= this.opts.maxContext) this.finish(seq, 'length');
  }

  private finish(seq: Sequence, reason: FinishReason, stopTokenId?: number): void {
    this.running.splice(this.running.indexOf(seq), 1);
    this.retire(seq, { reason, stopTokenId });
  }

  private fail(seq: Sequence, error: Error): void {
    const i = this.running.indexOf(seq);
    if (i >= 0) this.running.splice(i, 1);
    this.retire(seq, { error });
  }

  /** One sequence of the tenant is gone; a tenant with none left starts afresh in the turn orders. */
  private leave(tenant: string): void {
    const left = (this.live.get(tenant) ?? 1) - 1;
    if (left > 0) return void this.live.set(tenant, left);
    this.live.delete(tenant);
    this.waiting.forget(tenant);
    this.prefillTurns.forget(tenant);
  }

  /** Releases everything a sequence holds and tells its sink how it ended. */
  private retire(seq: Sequence, end: { reason?: FinishReason; stopTokenId?: number; error?: Error }): void {
    this.kv.release(seq.table);
    seq.table = [];
    if (seq.begun) this.engine.seqEnd(seq.id);
    seq.begun = false;
    this.leave(seq.task.tenant);
    seq.grammar?.release();
    if (end.error) {
      this.metrics.finished.error++;
      seq.sink.fail(end.error);
      return;
    }
    const reason = end.reason ?? 'cancelled';
    this.metrics.finished[reason]++;
    seq.sink.finish({
      finishReason: reason, stopTokenId: end.stopTokenId, promptTokens: seq.task.prompt.length,
      completionTokens: seq.generated, cachedTokens: seq.cachedTokens,
    });
  }
}
