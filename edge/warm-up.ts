// Start-up warm-up: what every first request would otherwise pay for happens while the isolate starts (on Workers,
// during the client's TLS handshake), outside the first request's CPU budget. The first run of a function costs many
// times the next (V8 compiles it, its inline caches start empty), and a cold isolate's first request is often its
// only one for a while, so the code on that request's path runs here once, on inputs that touch nothing outside the
// isolate. workerd refuses I/O, timers, random numbers, abort controllers, request bodies and response bodies at global
// scope (docs/workers-cold-start.md#what-the-global-scope-may-not-do), so no request goes through the app whole: the
// chat route's own steps are called one by one, the app only routes a GET, and the steps around the request's I/O run
// on objects of the warm-up's own (warmUpAroundIo). bench/edge-first-calls.mjs lists what the first request still
// runs for the first time.
import { Context, type Hono } from 'hono';
import { signRequest } from '../gpu-worker/signing.ts';
import type { EdgeEnv } from './edge-env.ts';
import { settleUsage, startGenerations, usageOf } from './generation.ts';
import { KeyAdmissions } from './key-admissions.ts';
import { DEFAULT_LIMITS, KEY_PATTERN, authenticatedKey, constantTimeEqual, keyRecordOf, sha256Hex } from './key-store.ts';
import { modeOf } from './middleware/metering.ts';
import { rateLimitHeaders, reservationOf } from './middleware/rate-limit.ts';
import { largestContext, poolFor, readConfig, runAfterResponse } from './platform.ts';
import type { Admission, LimitState, RateLimiter } from './rate-limiter-do.ts';
import { RequestLifecycle, type PreparedRequest } from './request-lifecycle.ts';
import { ChatChoice, chatGenerations, chatPrompt, collectChoice, deltaJson } from './routes/chat-completions.ts';
import type { ChatCompletionRequest } from './schemas.ts';
import { formatThinkingHeader } from './thinking-mode.ts';
import { getTokenizer } from './tokenizer/index.js';
import { UpstreamPool, UpstreamStream, WorkerFrames } from './upstream.ts';
import { utcDay } from './usage.ts';
import { checkChatRequest, generationBound, requireModel, tooDeep } from './validate-request.ts';
import { WorkerContexts } from './worker-contexts.ts';

/** A context as a worker reports it, for the budget arithmetic. */
const WARM_UP_CONTEXT = 40_960;

/** What the warm-up's steps that finish later came to: for a test (the isolate ignores it). */
export type WarmUpReport = {
  /** the chat chain's handlers, in order, and whether each stopped at its first use of the made-up context */
  chain: { handler: string; stopped: boolean }[];
  /** whether the steps around the request's I/O ran to their end (in Node; workerd's refusals end some of them early) */
  aroundIo: boolean;
};

/**
 * Runs once per isolate, called at module evaluation. `env` is the Worker's bindings as `cloudflare:workers` gives them
 * at global scope (vars and secrets readable, no I/O). Never throws or rejects: a warm-up that fails leaves the isolate
 * as cold as before, nothing else.
 *
 * The steps run in a microtask, which workerd runs when the module's evaluation has returned, still before the isolate
 * serves anything. Run from the module's top-level code, every error made on the way (workerd's refusals of a random
 * id, of a request's signal, at global scope) had that code on its stack; workerd captures such stacks with source
 * positions, which V8 compiled without, so the first one made V8 parse the whole bundle again (~10 ms of start-up,
 * for a stack nobody reads). A microtask's stack holds only the warm-up's own functions.
 */
export function warmUp(app: Hono<EdgeEnv>, env: Partial<Env>): Promise<WarmUpReport> {
  return Promise.resolve().then(() => warmUpSteps(app, env));
}

function warmUpSteps(app: Hono<EdgeEnv>, env: Partial<Env>): Promise<WarmUpReport> {
  try {
    getTokenizer(); // the views on its image
    warmUpChatSteps();
    warmUpKeyCheck();
    const aroundIo = warmUpAroundIo().then(() => true, () => false);
    // the worker call's signature: the HMAC key's import (cached per secret) and one signature, over a dummy body at a
    // fixed time (the clock reads 0 at global scope anyway)
    if (env.WORKER_SECRET) signRequest(env.WORKER_SECRET, { method: 'POST', path: '/v1/generate', body: '{}' }, 0).catch(() => {});
    // the router, Hono's dispatch and context, the request-id and request-context middleware (config, the isolate's
    // worker pool, the lifecycle): a GET /health through the app with the real bindings and its own request id (a
    // fresh one is random). It ends where the request-context middleware reads the request's signal, which workerd
    // refuses at global scope; that rejection is the end of the warm-up, not an error.
    Promise.resolve(app.fetch(new Request('http://warm-up/health', { headers: { 'x-request-id': 'warm-up' } }), env)).catch(() => {});
    // the bindings' own code that needs no I/O: a key's Durable Object id (idFromName hashes the name; the stub needs a
    // request) and a D1 statement with values bound (running it needs one)
    env.RATE_LIMITER?.idFromName('warm-up');
    env.USAGE?.prepare('SELECT ?').bind('warm-up');
    const chain = compileChatChain(app);
    // the worker pool's choice of a worker (no I/O: the fleet's members are read at a request)
    poolFor(readConfig(env), env.FLEET).order([0], 0);
    return Promise.all([chain, aroundIo]).then(([chain, aroundIo]) => ({ chain, aroundIo }), () => ({ chain: [], aroundIo: false }));
  } catch {
    // the first request pays for what did not run
    return Promise.resolve({ chain: [], aroundIo: false });
  }
}

/** Thrown by the made-up context of compileChatChain at its first use: not an Error, which would capture a stack. */
const NOT_A_CONTEXT = Object.freeze({ warmUp: 'not a context' });
const notAContext = new Proxy({}, { get: () => { throw NOT_A_CONTEXT; }, has: () => { throw NOT_A_CONTEXT; } });

/**
 * V8 compiles a function at its first call. Every handler that serves POST /v1/chat/completions (the middleware of
 * /v1/* and the route's own) is called once here with a context that throws at its first use, so that its compile is
 * paid at start-up; none of them gets further than its first line that reads the context.
 */
function compileChatChain(app: Hono<EdgeEnv>): Promise<WarmUpReport['chain']> {
  const handlers = app.router.match('POST', '/v1/chat/completions')[0].map(([[handler]]) => handler as (c: unknown, next: unknown) => unknown);
  return Promise.all(handlers.map((handler) => {
    let called: Promise<unknown>;
    try {
      called = Promise.resolve(handler(notAContext, notAContext));
    } catch (err) {
      called = Promise.reject(err);
    }
    // the made-up context's refusal, as meant (in workerd the usage record's id, a random one, is refused first)
    return called.then(() => ({ handler: handler.name, stopped: false }), (err: unknown) => ({ handler: handler.name, stopped: err === NOT_A_CONTEXT }));
  }));
}

/** The auth middleware's steps on a made-up key (edge/middleware/auth.ts, edge/key-store.ts), short of the KV read. */
function warmUpKeyCheck(): void {
  const secret = 'sk-warm-up-0123456789abcdef';
  KEY_PATTERN.test(secret);
  sha256Hex(secret).then((hash) => constantTimeEqual(hash, hash)).catch(() => {});
  // the record check, on a record as the key store writes it (a hash's 64 hex digits)
  const hash = 'f'.repeat(64);
  keyRecordOf({
    id: `key_${hash.slice(0, 16)}`, hash, hint: 'sk-warm', tenant: 'warm-up', name: 'warm-up', models: null, limits: DEFAULT_LIMITS,
    created_at: 0, revoked_at: null,
  });
}

/** The chat route's steps (edge/routes/chat-completions.ts) on a tiny body, up to the worker call and from its answer. */
function warmUpChatSteps(): void {
  // the fields most requests carry: a system and a user message, the sampling basics, a budget, the thinking switch
  const raw = JSON.parse(`{"model":"warm-up","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],
    "temperature":0.7,"top_p":0.8,"max_tokens":16,"stream":false,"stop":["\\n\\n"],"chat_template_kwargs":{"enable_thinking":false}}`);
  tooDeep(raw, 64);
  const checked = checkChatRequest(raw);
  if (!checked.ok) return;
  const body: ChatCompletionRequest = checked.value;
  const { thinking, tools, prompt } = chatPrompt(body, { thinkingDefault: 'auto', splitSpecialTokens: true });
  formatThinkingHeader(thinking);
  const { maxTokens, requests, choiceOptions } = chatGenerations(body, {
    requestId: 'warm-up', promptIds: prompt.ids, thinking, tools, context: WARM_UP_CONTEXT, presencePenalty: 0,
  });
  generationBound(prompt.ids.length, maxTokens, WARM_UP_CONTEXT);
  JSON.stringify(requests[0]);
  // a few tokens of an answer decoded into a choice: detokenizer, reasoning parser, stop strings, tool-call parser
  const choice = new ChatChoice(0, choiceOptions);
  choice.push({ tokens: [9707, 0] });
  choice.finish();
  const usage = usageOf(prompt.ids.length, [choice]);
  JSON.stringify({ id: 'warm-up', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: choice.finishReason }], usage });
  utcDay(0);
  rateLimitHeaders({
    limitRequests: 1, limitTokens: 1, remainingRequests: 1, remainingTokens: 1, resetRequestsMs: 1, resetTokensMs: 1_500,
    inFlight: 0, limitConcurrent: 1, quotaUsed: 0, quotaTokens: null, admittedTotal: 0, revoked: false,
  });
}

/** A key's counters as a limiter's answer carries them, for the admission path. */
const WARM_UP_STATE: LimitState = {
  limitRequests: DEFAULT_LIMITS.requests_per_minute, limitTokens: DEFAULT_LIMITS.tokens_per_minute, remainingRequests: 1,
  remainingTokens: 1_000, resetRequestsMs: 1, resetTokensMs: 1, inFlight: 0, limitConcurrent: DEFAULT_LIMITS.concurrent_streams,
  quotaUsed: 0, quotaTokens: DEFAULT_LIMITS.quota_tokens, admittedTotal: 0, revoked: false,
};

/** A worker's answer as it sends it (gpu-worker/http.ts): token frames, then the final one with finish and usage. */
const WORKER_FRAMES = 'data: {"tokens":[9707]}\n\ndata: {"tokens":[11,1879]}\n\n'
  + 'data: {"tokens":[],"finish_reason":"stop","stop_token_id":151645,"usage":{"prompt_tokens":2,"completion_tokens":4,"cached_tokens":0}}\n\n';

/**
 * The request's steps around its I/O (KV, the rate limiter's Durable Object, the worker call, D1), each run on objects
 * of the warm-up's own whose I/O is a made-up answer: a fresh lifecycle, key admissions, worker pool and context
 * record, so nothing the isolate keeps for its requests changes and no binding is called. workerd refuses timers,
 * random ids and abort controllers at global scope, so some steps end there (the admission at its wait timer, the
 * worker pool's call before it, at the made-up signal); those refusals are the end of that step, not an error.
 */
async function warmUpAroundIo(): Promise<void> {
  const body = { model: 'warm-up', messages: [] } as unknown as ChatCompletionRequest;
  requireModel(body.model, 'warm-up');
  const prepared: PreparedRequest = {
    endpoint: 'chat.completions', model: 'warm-up', prompts: [[9707, 11]], stream: false, generations: 1, maxTokens: 16,
    fingerprint: '', deterministic: false,
  };
  modeOf(prepared);
  // the key's record from a store of the warm-up's own that knows no key: read, found missing, not remembered
  await authenticatedKey({ get: async () => null } as unknown as KVNamespace, 'f'.repeat(64));
  // the rate limiter's admission, batched per key (edge/key-admissions.ts), from a stand-in for the key's stub
  const admissions = new KeyAdmissions();
  const limiterStub = {
    admitAll: async (reqs: unknown[]): Promise<Admission[]> => reqs.map(() => ({ ok: true, leaseId: 'warm-up', reserved: 0, state: WARM_UP_STATE })),
  } as unknown as DurableObjectStub<RateLimiter>;
  admissions.headroom(DEFAULT_LIMITS, reservationOf(prepared), 1);
  const admitted = admissions.admit(() => limiterStub, { limits: DEFAULT_LIMITS, tokens: reservationOf(prepared), streams: 1, leaseId: 'warm-up' }).catch(() => {});
  // the worker pool up to its call: the order of workers, the context check, the request's JSON
  const pool = new UpstreamPool({ urls: ['http://warm-up.invalid'], secret: '', timeoutMs: 1, probe: async () => 'ready' });
  const generating = pool.generate({ request_id: 'warm-up', prompt: [9707, 11], max_tokens: 16, stop_token_ids: [] }, notAContext as AbortSignal).catch(() => {});
  // a worker's answer, parsed from its bytes, and read to its end as a route reads it: the stream of one generation
  // from its first event on, over a body that has ended (a stand-in for the worker call's abort controller and timer)
  const ended = () => new ReadableStream({ type: 'bytes', start: (controller) => controller.close() });
  const frames = new WorkerFrames(ended());
  frames.append(new TextEncoder().encode(WORKER_FRAMES)); // bytes of its own: the frames read into their buffer next
  const first = frames.take()!;
  await frames.next();
  const upstream = new UpstreamStream('http://warm-up.invalid', [first], frames, { abort: () => {} } as AbortController, { reset: () => {}, stop: () => {} } as never, () => {});
  await collectChoice(new ChatChoice(0, { thinking: false, excludeReasoning: false, toolsOffered: false, toolChoice: 'auto', stop: undefined }), upstream);
  deltaJson({ content: 'Hi' });
  // the lifecycle a route drives (hooks, prepare, the generations' start, settlement) on a context of its own: Hono's,
  // over a stand-in for the request (workerd refuses a real one's signal at global scope)
  const lifecycle = new RequestLifecycle();
  lifecycle.intercept(async () => undefined);
  lifecycle.gate(async () => {});
  const raw = { url: 'http://warm-up/v1/chat/completions', method: 'POST', headers: new Headers() } as Request;
  const c = new Context<EdgeEnv>(raw, { env: {} as EdgeEnv['Bindings'], executionCtx: { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } });
  c.set('lifecycle', lifecycle);
  c.set('upstream', pool);
  c.set('contexts', new WorkerContexts(['http://warm-up.invalid'], async () => WARM_UP_CONTEXT));
  c.req.addValidatedData('json', body);
  if (c.req.method === 'POST') (c.req as { valid(target: string): unknown }).valid('json');
  await largestContext(c);
  await largestContext(c); // the context once known
  await lifecycle.prepare(prepared);
  void lifecycle.isSettled;
  runAfterResponse(c, Promise.resolve());
  c.set('upstream', { generate: async () => ({ cancel: () => {} }) } as unknown as UpstreamPool);
  await startGenerations(c, [{ request_id: 'warm-up', prompt: [9707, 11], stop_token_ids: [] }], {});
  lifecycle.track(() => ({ promptTokens: 2, completionTokens: 4, reasoningTokens: 0, cachedTokens: 0 }));
  settleUsage(c, 'completed', 200, usageOf(2, [{ tokenCount: 4 }]));
  lifecycle.end('completed', 200);
  // the response: Hono's headers and its JSON response, up to the Response with a body, which workerd refuses here
  c.res.headers.get('content-type');
  try {
    c.res = c.json({ id: 'warm-up' });
  } catch {
    c.res = new Response(null);
  }
  await Promise.all([admitted, generating]);
}
