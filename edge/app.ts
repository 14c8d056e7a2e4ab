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
// - Per-key state: declare extra c.var fields by widening EdgeVariables (e.g. `apiKey`), set them in auth().
// - Response cache: call `c.var.lifecycle.intercept(async (prepared) => cachedResponse | undefined)` before
//   `await next()`. Routes call lifecycle.prepare() after validation, templating and tokenisation and before any
//   worker is contacted; the first interceptor returning a Response short-circuits the request (usage settles with
//   outcome "cached"). `prepared.fingerprint` is a canonical key of everything that decides the output (prompt ids,
//   sampling, stop, tools, mode, stream shape); `prepared.deterministic` says whether the output is reproducible
//   (temperature 0 or a seed). To fill the cache, after `await next()` tee `c.res` when it is a 200 from a
//   deterministic request and store it with platform.runAfterResponse(c, …).
// - Metering / token rate limits: `c.var.lifecycle.usage` resolves exactly once when the response has ended —
//   completed, failed mid-stream, client aborted (with the tokens generated until then), served from cache, or
//   rejected before reaching a worker — with prompt/completion/reasoning/cached token counts. Await it inside
//   platform.runAfterResponse(c, …) after `await next()` (streams end after the handler returns).
// - Workers-only APIs (Durable Objects, D1, caches) go through edge/platform.ts so routes stay testable in Node.
import { Hono, type MiddlewareHandler } from 'hono';
import { tapBody } from './body-tap.ts';
import { CLIENT_CLOSED, handleError, handleNotFound } from './errors.ts';
import { bodyLimit } from './middleware/body-limit.ts';
import { playgroundHtml } from './playground/page.ts';
import { requestId } from './middleware/request-id.ts';
import { requiredSecrets } from './middleware/required-secrets.ts';
import { contextsFor, poolFor, readConfig, type EdgeConfig } from './platform.ts';
import { chatCompletionsRoute } from './routes/chat-completions.ts';
import { completionsRoute } from './routes/completions.ts';
import { fleetRoutes } from './routes/fleet.ts';
import { modelsRoute } from './routes/models.ts';
import { tokenizeRoute } from './routes/tokenize.ts';
import type { ThinkingDecision } from './thinking-mode.ts';
import type { UpstreamPool } from './upstream.ts';
import type { WorkerContexts } from './worker-contexts.ts';

/** What a route knows once the request is validated, templated and tokenised, before a worker is contacted. */
export type PreparedRequest = {
  endpoint: 'chat.completions' | 'completions';
  model: string;
  /** token ids of each prompt sent to the workers (one for chat; one per prompt for batched completions) */
  prompts: readonly (readonly number[])[];
  thinking?: ThinkingDecision;
  stream: boolean;
  /** upstream generations (prompts × n) */
  generations: number;
  /** tokens per generation */
  maxTokens: number;
  /** canonical JSON of everything that decides the output: a cache key */
  fingerprint: string;
  /** temperature 0 or an explicit seed */
  deterministic: boolean;
};

/**
 * How a request ended. completed: the whole answer went out. failed: a worker or the edge failed it (no worker, a
 * timeout, a worker dying mid-stream). aborted: the client left (or stopped reading). cancelled: a worker cut the
 * generation short (its shutdown grace ran out). cached: the response cache answered. rejected: refused (4xx).
 */
export type UsageOutcome = 'completed' | 'failed' | 'aborted' | 'cancelled' | 'cached' | 'rejected';

/** Tokens a request used so far. */
export type UsageCounts = Pick<UsageReport, 'promptTokens' | 'completionTokens' | 'reasoningTokens' | 'cachedTokens'>;

const NO_TOKENS: UsageCounts = { promptTokens: 0, completionTokens: 0, reasoningTokens: 0, cachedTokens: 0 };

export type UsageReport = {
  outcome: UsageOutcome;
  endpoint: PreparedRequest['endpoint'] | 'other';
  model: string;
  status: number;
  promptTokens: number;
  completionTokens: number;
  reasoningTokens: number;
  cachedTokens: number;
  thinking?: ThinkingDecision;
};

export type Interceptor = (prepared: PreparedRequest) => Promise<Response | undefined>;

/**
 * Per-request hooks between the routes and the extension middleware (see SEAMS above). `usage` resolves exactly once
 * whatever ends the request: the route settles it, and when the route cannot (the client left before it finished,
 * the runtime cancelled the handler, the response body was cut off), requestContext() settles it from the counts
 * the route tracked so far.
 */
export class RequestLifecycle {
  prepared?: PreparedRequest;
  /** the authenticated key's tenant (set by auth); sent to the workers, which share their capacity among tenants */
  tenant?: string;
  /** the prepared request passed every interceptor and goes to the workers */
  admitted = false;
  /**
   * Set by the rate limiter (edge/middleware/rate-limit.ts) when it asks for a lease: resolves true once the lease is
   * granted. Every request holding a lease gets exactly one usage record (edge/middleware/metering.ts).
   */
  leased?: Promise<boolean>;
  readonly usage: Promise<UsageReport>;
  private resolveUsage!: (report: UsageReport) => void;
  private settled = false;
  private progress?: () => UsageCounts;
  private readonly interceptors: Interceptor[] = [];

  constructor() {
    this.usage = new Promise((resolve) => (this.resolveUsage = resolve));
  }

  get isSettled(): boolean {
    return this.settled;
  }

  intercept(interceptor: Interceptor): void {
    this.interceptors.push(interceptor);
  }

  /** Records the prepared request; returns a Response when an interceptor (e.g. the response cache) answers it. */
  async prepare(prepared: PreparedRequest): Promise<Response | undefined> {
    this.prepared = prepared;
    for (const interceptor of this.interceptors) {
      const response = await interceptor(prepared);
      if (response) {
        this.settle({ outcome: 'cached', status: response.status, ...NO_TOKENS });
        return response;
      }
    }
    this.admitted = true;
    return undefined;
  }

  /** The route's live token counts, read if the request ends before the route settles it. */
  track(progress: () => UsageCounts): void {
    this.progress = progress;
  }

  /** Tokens used so far: what the route tracked, or none before its generations started. */
  counts(): UsageCounts {
    return this.progress?.() ?? NO_TOKENS;
  }

  /** The request ended without the route settling it; the tokens tracked so far are charged. */
  end(outcome: UsageOutcome, status: number): void {
    this.settle({ outcome, status, ...this.counts() });
  }

  /** The first call wins; endpoint, model and thinking default to the prepared request's. */
  settle(report: Omit<UsageReport, 'endpoint' | 'model'> & Partial<Pick<UsageReport, 'endpoint' | 'model'>>): void {
    if (this.settled) return;
    this.settled = true;
    this.resolveUsage({
      endpoint: this.prepared?.endpoint ?? 'other',
      model: this.prepared?.model ?? '',
      thinking: this.prepared?.thinking,
      ...report,
    });
  }
}

/** How a response that the route did not settle ended, from its status. */
function outcomeOf(status: number): UsageOutcome {
  if (status < 400) return 'completed';
  if (status === CLIENT_CLOSED) return 'aborted';
  return status < 500 ? 'rejected' : 'failed';
}

export type EdgeVariables = {
  requestId: string;
  config: EdgeConfig;
  upstream: UpstreamPool;
  /** what each worker's context holds (tokens), as the workers say */
  contexts: WorkerContexts;
  lifecycle: RequestLifecycle;
};

/** `Env`: the bindings of wrangler.toml, generated into edge/env.d.ts by `npm run types`. */
export type EdgeEnv = { Bindings: Env; Variables: EdgeVariables };

export type CreateAppOptions = {
  /** auth, rate-limit, response-cache, metering … in the order they should run (see SEAMS). */
  extensions?: MiddlewareHandler<EdgeEnv>[];
};

/**
 * Sets c.var.config, upstream and lifecycle, and makes sure usage settles once for every request: from the status of
 * a plain response the route did not settle, when the client disconnects (the request's signal, with the
 * `enable_request_signal` compatibility flag), and when a streamed body ends or is cancelled before the route
 * settled it.
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
      if (streaming && c.res.body && !lifecycle.isSettled) {
        c.res = new Response(tapBody(c.res.body, () => {}, (complete) => (complete ? lifecycle.end('failed', 500) : clientGone())), c.res);
      } else if (!streaming) {
        const status = c.res?.status ?? 500;
        lifecycle.end(outcomeOf(status), status);
      }
    }
  };
}

export function createApp(options: CreateAppOptions = {}): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.use('*', requestId());
  app.use('*', requestContext());
  // nothing is served unsigned: every API path (and the health check) needs the workers' secret
  for (const path of ['/v1/*', '/tokenize', '/detokenize', '/health']) app.use(path, requiredSecrets('WORKER_SECRET'));
  for (const path of ['/v1/*', '/tokenize', '/detokenize']) {
    for (const extension of options.extensions ?? []) app.use(path, extension);
    app.use(path, bodyLimit((c) => readConfig(c.env).maxBodyBytes));
  }

  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/', (c) => c.html(playgroundHtml({ modelId: c.var.config.modelId })));
  app.route('/', chatCompletionsRoute());
  app.route('/', completionsRoute());
  app.route('/', modelsRoute());
  app.route('/', tokenizeRoute());
  app.route('/', fleetRoutes());

  app.notFound(handleNotFound);
  app.onError(handleError);
  return app;
}
