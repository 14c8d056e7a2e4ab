// Start-up warm-up: what every first request would otherwise pay for happens while the isolate starts (on Workers,
// during the client's TLS handshake), outside the first request's CPU budget. The first run of a function costs many
// times the next (V8 compiles it, its inline caches start empty), and a cold isolate's first request is often its
// only one for a while, so the code on that request's path runs here once, on inputs that touch nothing outside the
// isolate. workerd refuses I/O, timers, random numbers, request bodies and response bodies at global scope, so no
// request goes through the app whole: the chat route's own steps are called one by one, the app only routes a GET.
import type { Hono } from 'hono';
import { signRequest } from '../gpu-worker/signing.ts';
import type { EdgeEnv } from './edge-env.ts';
import { usageOf } from './generation.ts';
import { DEFAULT_LIMITS, KEY_PATTERN, constantTimeEqual, keyRecordOf, sha256Hex } from './key-store.ts';
import { rateLimitHeaders } from './middleware/rate-limit.ts';
import { poolFor, readConfig, runAfterResponse } from './platform.ts';
import { ChatChoice, chatGenerations, chatPrompt } from './routes/chat-completions.ts';
import type { ChatCompletionRequest } from './schemas.ts';
import { formatThinkingHeader } from './thinking-mode.ts';
import { getTokenizer } from './tokenizer/index.js';
import { utcDay } from './usage.ts';
import { checkChatRequest, generationBound, tooDeep } from './validate-request.ts';

/** A context as a worker reports it, for the budget arithmetic. */
const WARM_UP_CONTEXT = 40_960;

/** What the warm-up's steps that finish later came to: for a test (the isolate ignores it). */
export type WarmUpReport = {
  /** the chat chain's handlers, in order, and whether each stopped at its first use of the made-up context */
  chain: { handler: string; stopped: boolean }[];
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
    runAfterResponse({ executionCtx: { waitUntil() {} } } as never, Promise.resolve());
    return chain.then((chain) => ({ chain }), () => ({ chain: [] }));
  } catch {
    // the first request pays for what did not run
    return Promise.resolve({ chain: [] });
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
