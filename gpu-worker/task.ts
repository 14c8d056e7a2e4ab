/**
 * @module What the scheduler works on: a Task (one typed generate request, built by http.ts from the wire format),
 * the Sink its results go to, and the Sequence that carries a task's state through the batching loop — tokens,
 * KV positions and blocks, the think-block counter of the thinking budget (defined in protocol.ts), and the grammar
 * state of a structured-output request (structured-output.ts).
 */
import type { SampledToken, Sampling } from './engine.ts';
import type { PreparedGrammar } from './grammar-pool.ts';
import type { FinishReason } from './protocol.ts';
import { SequenceGrammar } from './structured-output.ts';

export interface ThinkingBudgetTask {
  maxThinking: number;       // tokens allowed inside the think block
  startId: number;
  endId: number;
  inject: Int32Array;        // forced once the budget is spent
  openAtStart: boolean;      // the prompt already ends inside a think block
}

export interface Task {
  requestId: string;
  tenant: string;            // '' = the anonymous tenant (requests that name none)
  prompt: Int32Array;
  maxTokens: number;         // Infinity: up to the context
  sampling: Sampling;        // the request's sampling fields as sent, its logprobs, and skip_logprob (no logprobs asked)
  stopIds: readonly number[];
  ignoreEos: boolean;        // the model's eos ids do not stop generation (benchmarks)
  budget?: ThinkingBudgetTask;
  grammar?: PreparedGrammar;  // structured output: compiled, held until the sequence opens its matcher
}

export interface Outcome {
  finishReason: FinishReason;
  stopTokenId?: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Where one request's results go; called on the event loop, in order. */
export interface Sink {
  tokens(batch: SampledToken[]): void;
  finish(outcome: Outcome): void;
  fail(error: Error): void;
}

export class Sequence {
  readonly tokens: number[];          // prompt, then every emitted token
  readonly stopIds: Set<number>;
  readonly grammar?: SequenceGrammar;  // structured output (released by the scheduler when the sequence retires)
  computed = 0;                       // positions whose KV is written
  table: number[] = [];               // KV blocks covering positions 0..
  generated = 0;                      // completion tokens, the stop token included
  cachedTokens = 0;                   // prompt tokens served by the prefix cache at first admission
  begun = false;                      // engine sampler state exists (seqBegin called)
  prefilling = true;                  // the next sample is the first after a (re-)prefill
  cancelled = false;
  lastTokenMs = 0;
  private think: 'before' | 'open' | 'closed' = 'before';
  private thinkCount = 0;

  constructor(readonly id: number, readonly task: Task, readonly sink: Sink, readonly arrivalMs: number, eosIds: readonly number[]) {
    this.tokens = Array.from(task.prompt);
    this.stopIds = new Set(task.ignoreEos ? task.stopIds : [...eosIds, ...task.stopIds]);
    if (task.grammar) this.grammar = new SequenceGrammar(task.grammar, task.prompt);
  }

  /** Tokens still to feed before the next sample (1 = decoding). */
  get remaining(): number {
    return this.tokens.length - this.computed;
  }

  /** At first admission: a prompt ending inside <think> opens the block. True when the budget is already spent. */
  beginThinking(): boolean {
    return this.task.budget?.openAtStart ? this.openThink() : false;
  }

  /** Counts an emitted token against the budget. True when the inject sequence must be forced now. */
  noteThinking(token: number): boolean {
    const budget = this.task.budget;
    if (!budget || this.think === 'closed') return false;
    if (this.think === 'before') return token === budget.startId ? this.openThink() : false;
    if (token === budget.endId) {
      this.think = 'closed';
      return false;
    }
    this.thinkCount++;
    return this.spent();
  }

  private openThink(): boolean {
    this.think = 'open';
    return this.spent();
  }

  private spent(): boolean {
    if (this.thinkCount < this.task.budget!.maxThinking) return false;
    this.think = 'closed';            // the budget applies once; the forced tokens are not counted
    return true;
  }
}
