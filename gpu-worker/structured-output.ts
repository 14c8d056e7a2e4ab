/**
 * @module Structured output in the batching loop: one constrained sequence's grammar state (when the format applies,
 * thinking included — defined in protocol.ts) and the engine step that samples with token masks. The mask for step
 * t depends only on tokens up to t-1, so the grammar threads fill it while the engine runs step t's forward pass;
 * sampling then waits for both.
 */
import type { BatchItem, SampledToken, WorkerEngine } from './engine.ts';
import type { GrammarPool, Matcher, PreparedGrammar } from './grammar-pool.ts';
import { promptEndsInThink, type StructuredOutput } from './protocol.ts';

type Phase = 'first' | 'thinking' | 'separator' | 'active';

/** Separator tokens the model may write between </think> and the format (protocol.ts). */
const MAX_SEPARATORS = 2;

/** A sequence's grammar: feeds its matcher every token from where the format applies. */
export class SequenceGrammar {
  readonly pool: GrammarPool;
  readonly matcher: Matcher;
  private phase: Phase;
  private separators = 0;
  private readonly spec: StructuredOutput;

  constructor(prepared: PreparedGrammar, prompt: Int32Array) {
    this.spec = prepared.spec;
    this.pool = prepared.pool;
    this.matcher = prepared.open();
    if (!this.spec.after_think) this.phase = 'active';
    else this.phase = promptEndsInThink(Array.from(prompt), this.spec.think_start_id, this.spec.end_think_id) ? 'thinking' : 'first';
  }

  /** The next sample needs a mask (not inside a think block). */
  get constrains(): boolean {
    return this.phase !== 'thinking';
  }

  /** Tokens the next mask allows besides the format's: the think start or the separators, where they may come. */
  get alsoAllow(): number[] | undefined {
    if (this.phase === 'first') return [this.spec.think_start_id];
    if (this.phase === 'separator') return this.spec.separator_ids;
    return undefined;
  }

  /** Records an emitted token (sampled or forced; not a stop token, which ends the sequence). */
  note(token: number): void {
    switch (this.phase) {
      case 'first':
        if (token === this.spec.think_start_id) return void (this.phase = 'thinking');
        break;
      case 'thinking':
        if (token === this.spec.end_think_id) this.phase = 'separator';
        return;
      case 'separator':
        if (this.spec.separator_ids.includes(token)) {
          if (++this.separators >= MAX_SEPARATORS) this.phase = 'active';
          return;
        }
        break;
      case 'active':
        break;
    }
    this.phase = 'active';
    this.matcher.push(token);
  }

  release(): void {
    this.matcher.close();
  }
}

export interface ConstrainedStep {
  out: (SampledToken | null)[];
  failed: Map<number, Error>;         // item index -> why its sequence cannot continue
}

/**
 * One engine step for items of which some are constrained (`grammars[i]`): forward pass and mask filling run at
 * once, then sampling with the masks. Without a constrained sample it is a plain step().
 */
export async function constrainedStep(engine: WorkerEngine, items: BatchItem[], grammars: (SequenceGrammar | undefined)[]): Promise<ConstrainedStep> {
  const requests: { index: number; grammar: SequenceGrammar }[] = [];
  items.forEach((item, index) => {
    const grammar = grammars[index];
    if (item.sample && grammar?.constrains) requests.push({ index, grammar });
  });
  if (!requests.length) return { out: await engine.step(items), failed: new Map() };
  const pool = requests[0].grammar.pool;
  const masked = items.map((item) => ({ ...item }));
  requests.forEach(({ index }, row) => (masked[index].maskRow = row));
  const forward = engine.forward(items);
  forward.catch(() => undefined);                 // awaited below; a failure must not go unhandled meanwhile
  const fillFailures = await pool.fill(requests.map(({ grammar }, row) => ({ matcher: grammar.matcher, row, alsoAllow: grammar.alsoAllow })));
  await forward;
  const failed = new Map<number, Error>();
  for (const { index, grammar } of requests) {
    const error = fillFailures.get(grammar.matcher);
    if (!error) continue;
    failed.set(index, error);
    masked[index].maskRow = undefined;            // its token is discarded; the others still sample
  }
  const out = await engine.sample(masked, pool.masks);
  return { out, failed };
}
