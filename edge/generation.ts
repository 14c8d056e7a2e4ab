// The worker generations of one request, shared by chat and legacy completions: the worker requests for its
// prompts × n (Qwen's per-mode sampling defaults for unsent fields, a seed per choice, the thinking budget), starting
// them all or none for the key's tenant, and how they end — usage, its settlement, the error a failure becomes.
import type { Context } from 'hono';
import { THINKING_BUDGET_TEXT } from '../gpu-worker/protocol-basics.ts';
import type { GenerateRequestInput, StructuredOutputInput, Usage } from '../gpu-worker/protocol.ts';
import type { EdgeEnv } from './edge-env.ts';
import { CLIENT_CLOSED, generationCancelled, upstreamFailed } from './errors.ts';
import { runAfterResponse } from './platform.ts';
import type { UsageCounts, UsageOutcome } from './request-lifecycle.ts';
import type { ChatCompletionRequest, SamplingFields } from './schemas.ts';
import type { ChunkStream, CompletionUsage } from './sse.ts';
import { applySamplingDefaults } from './thinking-mode.ts';
import { getTokenizer } from './tokenizer/index.js';
import { UpstreamError, type ClientParams, type UpstreamStream } from './upstream.ts';

let budgetInjectIds: number[] | undefined;

/** The worker requests for one prompt × n: sampling defaults per mode for unsent fields, seeds offset per choice. */
export function generateRequests(args: {
  requestId: string;
  prompt: number[];
  n: number;
  /** undefined: up to the serving worker's context */
  maxTokens: number | undefined;
  body: SamplingFields & Pick<ChatCompletionRequest, 'stop_token_ids'>;
  thinking: boolean;
  presencePenalty: number;
  logprobs?: number;
  thinkingBudget?: number;
  structured?: StructuredOutputInput;   // every choice is constrained alike
}): GenerateRequestInput[] {
  const s = applySamplingDefaults(args.body, args.thinking, { presencePenalty: args.presencePenalty });
  const greedyTopP = s.top_p === 0;
  const seed = args.body.seed == null ? undefined : ((args.body.seed % 2 ** 32) + 2 ** 32) % 2 ** 32;
  return Array.from({ length: args.n }, (_, i) => {
    const request: GenerateRequestInput = {
      request_id: args.n > 1 ? `${args.requestId}-${i}` : args.requestId,
      prompt: args.prompt,
      max_tokens: args.maxTokens,
      sampling: {
        temperature: s.temperature,
        top_p: greedyTopP ? 1 : s.top_p,
        top_k: greedyTopP ? 1 : Math.max(0, s.top_k),
        min_p: s.min_p,
        presence_penalty: s.presence_penalty,
        frequency_penalty: args.body.frequency_penalty ?? 0,
        repetition_penalty: args.body.repetition_penalty ?? 1,
        ...(seed === undefined ? {} : { seed: seed + i }),
      },
      stop_token_ids: args.body.stop_token_ids ?? [],
    };
    if (args.logprobs !== undefined) request.logprobs = args.logprobs;
    if (args.structured) request.structured_output = args.structured;
    if (args.thinking && args.thinkingBudget !== undefined && args.thinkingBudget < (args.maxTokens ?? Infinity)) {
      budgetInjectIds ??= getTokenizer().encode(THINKING_BUDGET_TEXT);
      request.thinking_budget = { max_thinking_tokens: args.thinkingBudget, inject_ids: budgetInjectIds };
    }
    return request;
  });
}

/**
 * Starts every generation (each retried on other workers until its first token) for the key's tenant; all or
 * nothing, and only once the request's admission has passed (a refusal decided meanwhile cancels them and is thrown).
 * `params` renames the worker's fields for a worker's 400 (chat's `prompt` is the client's `messages`).
 */
export async function startGenerations(c: Context<EdgeEnv>, requests: GenerateRequestInput[], params: ClientParams): Promise<UpstreamStream[]> {
  const options = { params, background: (work: Promise<unknown>) => runAfterResponse(c, work) };
  const lifecycle = c.get('lifecycle');
  const tenant = lifecycle.tenant;
  // an admission still being decided (edge/request-lifecycle.ts goAheadOf) aborts these calls if it refuses
  const signal = lifecycle.workerSignal(c.req.raw.signal);
  const started = await Promise.allSettled(requests.map((r) => c.get('upstream').generate(tenant ? { ...r, tenant } : r, signal, options)));
  try {
    await lifecycle.decided();
  } catch (refusal) {
    for (const r of started) if (r.status === 'fulfilled') r.value.cancel();
    throw refusal;
  }
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) {
    lifecycle.timing.firstTokens = Date.now();
    c.header('server-timing', lifecycle.serverTiming());
    return started.map((r) => (r as PromiseFulfilledResult<UpstreamStream>).value);
  }
  for (const r of started) if (r.status === 'fulfilled') r.value.cancel();
  throw failed.reason;
}

export function usageOf(promptTokens: number, choices: readonly { usage?: Usage; tokenCount: number; reasoningTokens?: number }[]): CompletionUsage {
  const completion = choices.reduce((sum, ch) => sum + (ch.usage?.completion_tokens ?? ch.tokenCount), 0);
  const usage: CompletionUsage = {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
    prompt_tokens_details: { cached_tokens: choices[0]?.usage?.cached_tokens ?? 0 },
  };
  if (choices.some((ch) => ch.reasoningTokens !== undefined)) {
    usage.completion_tokens_details = { reasoning_tokens: choices.reduce((sum, ch) => sum + (ch.reasoningTokens ?? 0), 0) };
  }
  return usage;
}

export const newCompletionId = (prefix: string) => `${prefix}-${crypto.randomUUID().replaceAll('-', '')}`;

/**
 * Runs every choice's pump to the end, then sends the usage chunk and [DONE] and settles usage as completed. A
 * failing pump (or a client gone) cancels the other generations and settles usage (aborted, cancelled or failed)
 * before the error frame goes out. Shared by chat and legacy completions.
 */
export async function finishChoices(c: Context<EdgeEnv>, out: ChunkStream, pumps: Promise<void>[], cancelAll: () => void, usage: () => CompletionUsage): Promise<void> {
  try {
    await Promise.all(pumps);
  } catch (err) {
    settleFailure(c, err, cancelAll, usage, out.clientGone);
    throw err;
  }
  await out.usage(usage());
  await out.done();
  settleUsage(c, 'completed', 200, usage());
}

/**
 * The choices of a non-streamed generation, read to the end by `collect`, with usage settled as completed. A failure
 * cancels the other generations, settles usage (aborted, cancelled or failed) and is thrown as the client's error. The
 * non-streamed counterpart of finishChoices, shared by chat and legacy completions.
 */
export async function collectChoices<T>(c: Context<EdgeEnv>, collect: Promise<T>, cancelAll: () => void, usage: () => CompletionUsage): Promise<T> {
  try {
    const collected = await collect;
    settleUsage(c, 'completed', 200, usage());
    return collected;
  } catch (err) {
    settleFailure(c, err, cancelAll, usage);
    throw generationError(err);
  }
}

/** A generation that threw: the other generations cancelled, usage settled as aborted, cancelled or failed (failureOf). */
function settleFailure(c: Context<EdgeEnv>, err: unknown, cancelAll: () => void, usage: () => CompletionUsage, clientGone = false): void {
  cancelAll(); // the client's leaving also aborts the worker requests (their signal follows the request's)
  const end = failureOf(c, err, clientGone);
  settleUsage(c, end.outcome, end.status, usage());
}

/** How a generation that threw ended: the client left, a worker cut it short, or it failed. */
export function failureOf(c: Context<EdgeEnv>, err: unknown, clientGone = false): { outcome: 'aborted' | 'cancelled' | 'failed'; status: number } {
  if (clientGone || c.req.raw.signal?.aborted) return { outcome: 'aborted', status: CLIENT_CLOSED };
  if (err instanceof UpstreamError && err.kind === 'cancelled') return { outcome: 'cancelled', status: 503 };
  return { outcome: 'failed', status: 502 };
}

/** A failure of a non-streamed generation as the client's error response (a worker's own errors as 502 / 503). */
export function generationError(err: unknown): unknown {
  if (err instanceof UpstreamError && err.kind === 'cancelled') return generationCancelled();
  if (err instanceof UpstreamError) return upstreamFailed(err.message);
  return err;
}

export function countsOf(usage: CompletionUsage): UsageCounts {
  return {
    promptTokens: usage.prompt_tokens,
    completionTokens: usage.completion_tokens,
    reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0,
    cachedTokens: usage.prompt_tokens_details.cached_tokens,
  };
}

export function settleUsage(c: Context<EdgeEnv>, outcome: UsageOutcome, status: number, usage: CompletionUsage): void {
  c.get('lifecycle').settle({ outcome, status, ...countsOf(usage) });
}
