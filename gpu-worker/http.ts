/**
 * @module The worker's HTTP surface, and the only place JSON is parsed or written: POST /v1/generate (signed,
 * validated against protocol.ts, streamed as SSE), GET /health, GET /ready, GET /metrics. Requests become typed
 * scheduler Tasks here; scheduler results become SSE frames here. The probes and /metrics are unsigned (load
 * balancers and Prometheus cannot sign); they reveal no request content, and the worker listens on loopback unless
 * HOST says otherwise.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import type { ModelInfo, SampledToken } from './engine.ts';
import { GrammarError, PreparedGrammar, type GrammarPool } from './grammar-pool.ts';
import { renderMetrics, type WorkerMetrics } from './metrics.ts';
import {
  GENERATE_PATH, GenerateRequestSchema, paramName, promptEndsInThink,
  type ErrorBody, type GenerateEvent, type GenerateRequest, type StructuredOutput, type TokenLogprob,
} from './protocol.ts';
import { UnavailableError, type Scheduler } from './scheduler.ts';
import type { Outcome, Sink, Task } from './task.ts';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyRequest } from './signing.ts';

/** Mutable process state: the engine loads after the server starts listening. */
export interface WorkerState {
  modelName: string;
  metrics: WorkerMetrics;
  secret: string | null;             // null: unsigned requests accepted (WORKER_INSECURE=1)
  load: { stage: string; fraction: number };
  info?: ModelInfo;
  scheduler?: Scheduler;
  failed?: string;                   // load error message
  grammars?: GrammarPool;            // structured outputs; absent when the checkpoint has no tokenizer.json
  maxBatch?: number;                 // MAX_BATCH, once loaded (/metrics: capacity for autoscalers)
  leaving?: boolean;                 // SIGTERM received: left the fleet, draining soon
  arrivedAfterLeaving?: string[];    // ids of the requests admitted since (routed on an older membership view)
}

type Status = 400 | 401 | 413 | 500 | 503;

const MAX_BODY_BYTES = 16 * 1024 * 1024;   // a 131072-token prompt is ~1 MiB of JSON

function errorResponse(c: Context, status: Status, message: string, type: string, param: string | null = null, code?: string) {
  const body: ErrorBody = { error: code ? { message, type, param, code } : { message, type, param } };
  return c.json(body, status);
}

/** Middleware factory: refuses requests whose HMAC signature is missing, wrong or stale. */
export function requireSignature(secret: string): MiddlewareHandler {
  return async function requireSignature(c, next) {
    const url = new URL(c.req.url);
    const verdict = await verifyRequest(
      secret,
      { method: c.req.method, path: url.pathname + url.search, body: await c.req.text() },
      c.req.header(TIMESTAMP_HEADER),
      c.req.header(SIGNATURE_HEADER),
    );
    if (!verdict.ok) return errorResponse(c, 401, `unauthorized: ${verdict.reason}`, 'authentication_error');
    await next();
  };
}

/** Checks that need the loaded model: token ids inside the vocabulary, prompt + max_tokens inside the context. */
function checkAgainstModel(req: GenerateRequest, info: ModelInfo): { message: string; param: string; code?: string } | null {
  const outOfVocab = (ids: number[]) => ids.findIndex((t) => t >= info.vocabSize);
  const lists: [string, number[]][] = [['prompt', req.prompt], ['stop_token_ids', req.stop_token_ids]];
  const budget = req.thinking_budget;
  if (budget) {
    lists.push(['thinking_budget.inject_ids', budget.inject_ids], ['thinking_budget.end_think_id', [budget.end_think_id]],
      ['thinking_budget.think_start_id', [budget.think_start_id]]);
  }
  for (const [param, ids] of lists) {
    const i = outOfVocab(ids);
    if (i >= 0) return { param, message: `${param}[${i}] = ${ids[i]} is not below the vocabulary size ${info.vocabSize}` };
  }
  if (req.prompt.length >= info.maxContext) {
    return { param: 'prompt', code: 'context_length_exceeded', message: `prompt has ${req.prompt.length} tokens; the context holds ${info.maxContext}` };
  }
  if (Math.ceil((req.prompt.length + 1) / info.kvBlockSize) > info.kvBlocks) {
    return { param: 'prompt', message: `prompt has ${req.prompt.length} tokens; the KV cache holds ${info.kvBlocks * info.kvBlockSize}` };
  }
  if (req.max_tokens !== undefined && req.prompt.length + req.max_tokens > info.maxContext) {
    return {
      param: 'max_tokens',
      code: 'context_length_exceeded',
      message: `prompt (${req.prompt.length}) + max_tokens (${req.max_tokens}) exceeds the context of ${info.maxContext} tokens`,
    };
  }
  return null;
}

export function toTask(req: GenerateRequest): Task {
  const budget = req.thinking_budget;
  return {
    requestId: req.request_id,
    tenant: req.tenant ?? '',
    prompt: Int32Array.from(req.prompt),
    maxTokens: req.max_tokens ?? Infinity,   // omitted: the scheduler ends the sequence at the context
    stopIds: req.stop_token_ids,
    ignoreEos: req.ignore_eos,
    // Without `logprobs` the response carries no logprob, so the engine need not compute it (screened CPU head)
    sampling: { ...req.sampling, logprobs: req.logprobs ?? 0, skip_logprob: req.logprobs === undefined },
    budget: budget && {
      maxThinking: budget.max_thinking_tokens,
      startId: budget.think_start_id,
      endId: budget.end_think_id,
      inject: Int32Array.from(budget.inject_ids),
      openAtStart: budget.prompt_in_think ?? promptEndsInThink(req.prompt, budget.think_start_id, budget.end_think_id),
    },
  };
}

type Frame = { event?: 'error'; data: string };

/** A request's Sink that turns scheduler callbacks into SSE frames, batching tokens that arrive between writes. */
class FrameQueue implements Sink {
  private pending: SampledToken[] = [];
  private end?: { outcome?: Outcome; error?: Error };
  private wakeup?: () => void;

  constructor(private readonly withLogprobs: boolean) {}

  tokens(batch: SampledToken[]): void {
    this.pending.push(...batch);
    this.wakeup?.();
  }
  finish(outcome: Outcome): void {
    this.end = { outcome };
    this.wakeup?.();
  }
  fail(error: Error): void {
    this.end = { error };
    this.wakeup?.();
  }

  private event(toks: SampledToken[]): GenerateEvent {
    const ev: GenerateEvent = { tokens: toks.map((t) => t.token) };
    if (this.withLogprobs) {
      ev.logprobs = toks.map((t): TokenLogprob => (t.top ? { token: t.token, logprob: t.logprob, top: t.top } : { token: t.token, logprob: t.logprob }));
    }
    return ev;
  }

  async *frames(): AsyncGenerator<Frame> {
    for (;;) {
      if (!this.pending.length && !this.end) await new Promise<void>((r) => (this.wakeup = r));
      this.wakeup = undefined;
      const ev = this.event(this.pending.splice(0));
      const end = this.end;
      if (end?.error) {
        if (ev.tokens.length) yield { data: JSON.stringify(ev) };
        const body: ErrorBody = { error: { message: end.error.message, type: 'server_error' } };
        yield { event: 'error', data: JSON.stringify(body) };
        return;
      }
      if (end?.outcome) {
        const o = end.outcome;
        ev.finish_reason = o.finishReason;
        if (o.stopTokenId !== undefined) ev.stop_token_id = o.stopTokenId;
        ev.usage = { prompt_tokens: o.promptTokens, completion_tokens: o.completionTokens, cached_tokens: o.cachedTokens };
        yield { data: JSON.stringify(ev) };
        return;
      }
      yield { data: JSON.stringify(ev) };
    }
  }
}

/** Compiles a request's structured-output format, or says why the client cannot have it (a 400). */
async function prepareGrammar(state: WorkerState, spec: StructuredOutput): Promise<PreparedGrammar | { message: string; param: string | null }> {
  if (!state.grammars) {
    return { message: 'structured outputs need the tokenizer.json of the model, which this worker\'s checkpoint lacks', param: spec.param };
  }
  try {
    return await state.grammars.prepare(spec);
  } catch (error) {
    if (error instanceof GrammarError) return { message: error.message, param: error.param };
    throw error;
  }
}

async function generate(c: Context, state: WorkerState) {
  const scheduler = state.scheduler;
  if (!scheduler || !state.info || scheduler.isDraining) {
    if (scheduler?.isDraining) state.metrics.rejected++;
    c.header('Retry-After', '5');
    const why = state.failed ?? (scheduler ? 'worker is shutting down' : `model is loading (${state.load.stage})`);
    return errorResponse(c, 503, why, 'service_unavailable');
  }
  let json: unknown;
  try {
    json = JSON.parse(await c.req.text());
  } catch {
    return errorResponse(c, 400, 'body is not valid JSON', 'invalid_request_error');
  }
  const parsed = GenerateRequestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = paramName(issue.path, { indices: false });
    return errorResponse(c, 400, `${param ?? 'body'}: ${issue.message}`, 'invalid_request_error', param);
  }
  const bad = checkAgainstModel(parsed.data, state.info);
  if (bad) return errorResponse(c, 400, bad.message, 'invalid_request_error', bad.param, bad.code);

  const task = toTask(parsed.data);
  const structured = parsed.data.structured_output;
  if (structured) {
    const prepared = await prepareGrammar(state, structured);
    if (!(prepared instanceof PreparedGrammar)) return errorResponse(c, 400, prepared.message, 'invalid_request_error', prepared.param);
    if (c.req.raw.signal.aborted) {   // the client left while the grammar compiled
      prepared.release();
      return errorResponse(c, 400, 'request aborted', 'invalid_request_error');
    }
    task.grammar = prepared;
  }
  const queue = new FrameQueue(parsed.data.logprobs !== undefined);
  let handle: { cancel(): void };
  try {
    handle = scheduler.submit(task, queue);
    state.metrics.admitted++;
    if (state.leaving) state.arrivedAfterLeaving?.push(task.requestId);
  } catch (error) {
    task.grammar?.release();
    if (!(error instanceof UnavailableError)) throw error;
    c.header('Retry-After', String(error.retryAfterS));
    return errorResponse(c, 503, error.message, 'service_unavailable', null, error.code);
  }
  c.header('x-request-id', parsed.data.request_id);
  c.req.raw.signal.addEventListener('abort', () => handle.cancel());
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => handle.cancel());
    for await (const frame of queue.frames()) {
      if (stream.aborted) break;
      await stream.writeSSE(frame);
    }
  });
}

export function createApp(state: WorkerState): Hono {
  const app = new Hono();
  app.use(GENERATE_PATH, bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => errorResponse(c, 413, `body exceeds ${MAX_BODY_BYTES} bytes`, 'invalid_request_error'),
  }));
  if (state.secret) app.use(GENERATE_PATH, requireSignature(state.secret));
  app.post(GENERATE_PATH, (c) => generate(c, state));
  app.get('/health', (c) =>
    c.json({
      status: state.failed ? 'failed' : state.scheduler ? (state.scheduler.isDraining ? 'draining' : 'ok') : 'loading',
      model: state.modelName,
      load: state.load,
      device: state.info?.device ?? null,
      error: state.failed ?? null,
    }));
  app.get('/ready', (c) => {
    const ready = !!state.scheduler && !state.scheduler.isDraining;
    if (!ready) c.header('Retry-After', '5');
    return c.json({ ready, model: state.modelName, max_context: state.info?.maxContext ?? null }, ready ? 200 : 503);
  });
  app.get('/metrics', (c) => {
    const g = state.scheduler?.gauges() ?? {
      running: 0, waiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 0, kvBlocksCached: 0, prefixQueriedTokens: 0, prefixHitTokens: 0,
    };
    const worker = { ...g, maxBatch: state.maxBatch ?? 0, draining: !!state.leaving || !!state.scheduler?.isDraining };
    return c.text(renderMetrics(state.modelName, state.metrics, worker), 200, { 'Content-Type': 'text/plain; version=0.0.4' });
  });
  app.onError((err, c) => errorResponse(c, 500, err.message, 'server_error'));
  return app;
}
