/**
 * @module The edge↔worker wire format's ids, paths and helpers that need no zod: the edge's isolate loads these at
 * start-up, and zod only when a request needs a schema (it costs a cold isolate milliseconds). protocol.ts, the
 * format's schemas and types, re-exports them; the meaning of each is documented there.
 */

export const THINK_START_ID = 151667;
export const END_THINK_ID = 151668;
/** Qwen's closing text for a spent thinking budget (docs/chat-format.md#thinking-budget), sent as inject_ids. */
export const THINKING_BUDGET_TEXT =
  '\n\nConsidering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>\n\n';
export const MAX_LOGPROBS = 20;
/** Qwen3's "\n\n" and "\n": what the model writes between </think> and the answer. */
export const THINK_SEPARATOR_IDS = [271, 198];

export const GENERATE_PATH = '/v1/generate';

/** Where a worker sends its signed heartbeats, on the edge (signed like /v1/generate, with the same secret). */
export const HEARTBEAT_PATH = '/fleet/heartbeat';

/**
 * The field a zod issue path names, for an error's `param` (null: the body itself): `messages[0].content` as the
 * edge tells its clients; with `indices: false` the field alone (`prompt`, `sampling.top_p`), as the worker names
 * the edge's fields.
 */
export function paramName(path: readonly PropertyKey[], { indices = true } = {}): string | null {
  let name = '';
  for (const part of path) {
    if (typeof part === 'number') name += indices ? `[${part}]` : '';
    else name += name ? `.${String(part)}` : String(part);
  }
  return name || null;
}

/** True when the prompt ends inside an open think block (its last start id has no end id after it). */
export function promptEndsInThink(prompt: readonly number[], startId: number, endId: number): boolean {
  for (let i = prompt.length - 1; i >= 0; i--) {
    if (prompt[i] === endId) return false;
    if (prompt[i] === startId) return true;
  }
  return false;
}
