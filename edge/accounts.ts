/**
 * @module Accounts: API keys, per-key rate limits and quotas, the response cache and usage metering, installed into
 * the edge app in two calls:
 *
 *   const app = createApp({ extensions: accountsMiddleware() });   // auth → model access → cache → metering → limits
 *   mountAccounts(app);                                            // /admin/* and GET /v1/usage
 *   export { RateLimiter } from './rate-limiter-do.ts';            // in the worker entry: the Durable Object class
 *
 * Bindings (wrangler.toml, typed by the generated `Env` of edge/env.d.ts): KEYS (KV: key records), RATE_LIMITER
 * (Durable Object: RateLimiter), USAGE (D1: usage records), ADMIN_TOKEN (secret), RESPONSE_CACHE_TTL_S (var, seconds).
 */
import type { Hono, MiddlewareHandler } from 'hono';
import { adminRoutes, usageRoutes } from './admin.ts';
import type { AccountsEnv, EdgeEnv } from './edge-env.ts';
import { apiKeyAuth, modelAccess } from './middleware/auth.ts';
import { metering } from './middleware/metering.ts';
import { rateLimit } from './middleware/rate-limit.ts';
import { responseCache } from './middleware/response-cache.ts';

/** The extension middleware, in the order they must run, for createApp({ extensions }). */
export function accountsMiddleware(): MiddlewareHandler<AccountsEnv>[] {
  // metering before the rate limiter: the record of a lease is registered before the lease is asked for
  return [apiKeyAuth(), modelAccess(), responseCache(), metering(), rateLimit()];
}

/** The admin API (/admin/*, behind ADMIN_TOKEN) and GET /v1/usage (behind the extensions' key auth). */
export function mountAccounts(app: Hono<EdgeEnv>): void {
  app.route('/', adminRoutes());
  app.route('/', usageRoutes());
}
