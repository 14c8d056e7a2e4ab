// The edge's Hono app: middleware order, routes, error handling, and the seams where API keys, rate limits,
// response caching and usage metering plug in.
//
// A request's trace: request-id → context (config from env bindings, worker pool, lifecycle) → [extensions] →
// body limit → route (validate → model check → thinking mode → template + tokenise (prompt cache) → context-window
// check → lifecycle.prepare → worker pool) → SSE or JSON → lifecycle.settle(usage).
//
// SEAMS for edge/middleware/{auth,rate-limit,response-cache,metering}.ts (not implemented here):
// - Pass them to createApp({ extensions: [auth(), rateLimit(), responseCache(), metering()] }); they run in that
//   order on /v1/* , /tokenize and /detokenize, after c.var.requestId / config / lifecycle are set and before the
//   body is read. Each is a factory returning a named `async function (c, next)` typed MiddlewareHandler<EdgeEnv>;
//   failures throw apiError(401 | 429, …) from edge/errors.ts (add Retry-After / x-ratelimit-* via its headers).
// - Per-key state: declare extra c.var fields by widening EdgeVariables (edge/edge-env.ts; e.g. `apiKey`), set them
//   in auth().
// - Response cache: call `c.var.lifecycle.intercept(async (prepared) => cachedResponse | undefined)` before
//   `await next()`. Routes call lifecycle.prepare() after validation, templating and tokenisation and before any
//   worker is contacted; the first interceptor returning a Response short-circuits the request (usage settles with
//   outcome "cached"); `c.var.lifecycle.gate(async (prepared, cached) => …)` runs after the interceptors, whoever
//   answers, and refuses by throwing (the rate limiter's admission), or lets the request go ahead while it decides
//   (`lifecycle.goAheadOf(decision)`: the worker calls start, the route answers once it passed). `prepared.fingerprint` is a canonical key of
//   everything that decides the output (prompt ids, sampling, stop, tools, mode, stream shape);
//   `prepared.deterministic` says whether the output is reproducible (temperature 0 or a seed). To fill the cache,
//   after `await next()` tee `c.res` when it is a 200 from a deterministic request and store it with
//   platform.runAfterResponse(c, …).
// - Metering / token rate limits: `c.var.lifecycle.usage` resolves exactly once when the response has ended —
//   completed, failed mid-stream, client aborted (with the tokens generated until then), served from cache, or
//   rejected before reaching a worker — with prompt/completion/reasoning/cached token counts. Await it inside
//   platform.runAfterResponse(c, …) after `await next()` (streams end after the handler returns).
// - Workers-only APIs (Durable Objects, D1, caches) go through edge/platform.ts so routes stay testable in Node.
import { Hono, type MiddlewareHandler } from 'hono';
import { tapBody } from './body-tap.ts';
import type { AccountsEnv, EdgeEnv } from './edge-env.ts';
import { CLIENT_CLOSED, handleError, handleNotFound } from './errors.ts';
import { MemoRouter } from './memo-router.ts';
import { bodyLimit } from './middleware/body-limit.ts';
import { playgroundHtml } from './playground/page.ts';
import { requestId } from './middleware/request-id.ts';
import { requiredSecrets } from './middleware/required-secrets.ts';
import { contextsFor, poolFor, readConfig } from './platform.ts';
import { RequestLifecycle, type UsageOutcome } from './request-lifecycle.ts';
import { chatCompletionsRoute } from './routes/chat-completions.ts';
import { completionsRoute } from './routes/completions.ts';
import { fleetRoutes } from './routes/fleet.ts';
import { modelsRoute } from './routes/models.ts';
import { tokenizeRoute } from './routes/tokenize.ts';

/** How a response that the route did not settle ended, from its status. */
function outcomeOf(status: number): UsageOutcome {
  if (status < 400) return 'completed';
  if (status === CLIENT_CLOSED) return 'aborted';
  return status < 500 ? 'rejected' : 'failed';
}

export type CreateAppOptions = {
  /**
   * auth, rate-limit, response-cache, metering … in the order they should run (see SEAMS). They may read the
   * accounts layer's variables (AccountsEnv): the first of them, key auth, sets c.var.apiKey for the rest.
   */
  extensions?: MiddlewareHandler<AccountsEnv>[];
};

/**
 * Sets c.var.config, upstream and lifecycle, and makes sure usage settles once for every request: from the status of
 * a plain response the route did not settle, when the client disconnects (the request's signal, with the
 * `enable_request_signal` compatibility flag), and when a streamed body ends or is cancelled before the route
 * settled it (the routes' SSE bodies see to that themselves: edge/sse.ts).
 */
function requestContext(): MiddlewareHandler<EdgeEnv> {
  return async function requestContext(c, next) {
    const config = readConfig(c.env);
    const lifecycle = new RequestLifecycle();
    c.set('config', config);
    c.set('upstream', poolFor(config, c.env?.FLEET));
    c.set('contexts', contextsFor(config));
    c.set('lifecycle', lifecycle);
    const clientGone = () => lifecycle.end('aborted', CLIENT_CLOSED);
    c.req.raw.signal?.addEventListener('abort', clientGone, { once: true });
    try {
      await next();
    } finally {
      const streaming = c.res?.headers.get('content-type')?.startsWith('text/event-stream');
      if (streaming && c.res.body && !lifecycle.isSettled && !lifecycle.bodySettles) {
        c.res = new Response(tapBody(c.res.body, () => {}, (complete) => (complete ? lifecycle.end('failed', 500) : clientGone())), c.res);
      } else if (!streaming) {
        const status = c.res?.status ?? 500;
        lifecycle.end(outcomeOf(status), status);
      }
    }
  };
}

export function createApp(options: CreateAppOptions = {}): Hono<EdgeEnv> {
  // Hono's default router compiles every route into one RegExp at the first request: ~4 ms of a cold isolate's first
  // request (its CPU budget is 10 ms); the trie is built as routes are added, and each path's match is remembered.
  const app = new Hono<EdgeEnv>({ router: new MemoRouter() });
  app.use('*', requestId());
  app.use('*', requestContext());
  // nothing is served unsigned: every API path (and the health check) needs the workers' secret
  for (const path of ['/v1/*', '/tokenize', '/detokenize', '/health']) app.use(path, requiredSecrets('WORKER_SECRET'));
  for (const path of ['/v1/*', '/tokenize', '/detokenize']) {
    for (const extension of options.extensions ?? []) app.use(path, extension);
    app.use(path, bodyLimit((c) => readConfig(c.env).maxBodyBytes));
  }

  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/', (c) => c.html(playgroundHtml({ modelId: c.get('config').modelId })));
  app.route('/', chatCompletionsRoute());
  app.route('/', completionsRoute());
  app.route('/', modelsRoute());
  app.route('/', tokenizeRoute());
  app.route('/', fleetRoutes());

  app.notFound(handleNotFound);
  app.onError(handleError);
  return app;
}
