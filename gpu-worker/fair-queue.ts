/**
 * @module Tenant fairness for the scheduler. Tenants take turns in least-recently-served order, which is round robin
 * in which a tenant that comes back from idle joins at the front. The wait queue keeps one FIFO per tenant, so a
 * tenant with hundreds of queued requests delays another tenant's request by one turn, not by its whole backlog;
 * each tenant's own requests keep their arrival order.
 */
import type { Sequence } from './task.ts';

/** Turn order among tenants: least recently served first; a tenant never served (or forgotten) goes first. */
export class RoundRobin {
  private clock = 0;
  private readonly lastServed = new Map<string, number>();

  /** The given tenants in turn order (ties keep the given order). */
  order(tenants: Iterable<string>): string[] {
    return [...tenants].sort((a, b) => (this.lastServed.get(a) ?? 0) - (this.lastServed.get(b) ?? 0));
  }

  served(tenant: string): void {
    this.lastServed.set(tenant, ++this.clock);
  }

  /** The tenant has nothing left in the worker: its next request is a new arrival. */
  forget(tenant: string): void {
    this.lastServed.delete(tenant);
  }
}

/** Requests waiting for a batch slot: preempted sequences first, then new requests, tenants taking turns. */
export class WaitQueue {
  private readonly resumed: Sequence[] = [];                 // preempted: they go back in before any new request
  private readonly fifos = new Map<string, Sequence[]>();    // tenant → its new requests, oldest first
  private readonly turns = new RoundRobin();
  private size = 0;

  get length(): number {
    return this.size;
  }

  /** New requests of `tenant` still waiting. */
  waitingOf(tenant: string): number {
    return this.fifos.get(tenant)?.length ?? 0;
  }

  push(seq: Sequence): void {
    const fifo = this.fifos.get(seq.task.tenant);
    if (fifo) fifo.push(seq);
    else this.fifos.set(seq.task.tenant, [seq]);
    this.size++;
  }

  /** A preempted sequence: admitted again before anything new (the most recently preempted first). */
  resume(seq: Sequence): void {
    this.resumed.unshift(seq);
    this.size++;
  }

  /** The sequence admission takes next, left in the queue until take(). */
  peek(): Sequence | undefined {
    if (this.resumed.length) return this.resumed[0];
    const tenant = this.turns.order(this.fifos.keys())[0];
    return tenant === undefined ? undefined : this.fifos.get(tenant)![0];
  }

  /** Tenants with a request waiting, in turn order (those with only a preempted sequence waiting last). */
  tenants(): string[] {
    const ordered = this.turns.order(this.fifos.keys());
    for (const seq of this.resumed) if (!ordered.includes(seq.task.tenant)) ordered.push(seq.task.tenant);
    return ordered;
  }

  /** The sequence of `tenant` admission would take first: its most recently preempted one, else its oldest new one. */
  firstOf(tenant: string): Sequence | undefined {
    return this.resumed.find((s) => s.task.tenant === tenant) ?? this.fifos.get(tenant)?.[0];
  }

  /** Removes a sequence peek() or firstOf() returned; a new request gives its tenant's turn to the next tenant. */
  take(seq: Sequence): void {
    const i = this.resumed.indexOf(seq);
    if (i >= 0) {
      this.resumed.splice(i, 1);
      this.size--;
      return;
    }
    this.remove(seq);
    this.turns.served(seq.task.tenant);
  }

  /** Drops a sequence wherever it waits; false when it was not waiting. */
  remove(seq: Sequence): boolean {
    const list = this.resumed.includes(seq) ? this.resumed : this.fifos.get(seq.task.tenant);
    const i = list ? list.indexOf(seq) : -1;
    if (i < 0) return false;
    list!.splice(i, 1);
    if (list !== this.resumed && !list!.length) this.fifos.delete(seq.task.tenant);
    this.size--;
    return true;
  }

  /** The tenant has nothing left in the worker (see RoundRobin.forget). */
  forget(tenant: string): void {
    this.turns.forget(tenant);
  }

  all(): Sequence[] {
    return [...this.resumed, ...[...this.fifos.values()].flat()];
  }
}
