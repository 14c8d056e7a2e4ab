/**
 * @module Authentication: the middleware that turns `Authorization: Bearer sk-…` into the key record on the context
 * (from the key store, edge/key-store.ts, which keeps records it read for a few seconds), plus the per-key model
 * allow-list check. Unknown, malformed or revoked
 * keys get OpenAI's 401 `invalid_api_key`.
 */
import type { MiddlewareHandler } from 'hono';
import type { AccountsEnv } from '../edge-env.ts';
import { apiError, modelNotFound } from '../errors.ts';
import { authenticatedKey, KEY_PATTERN, sha256Hex } from '../key-store.ts';
import { runAfterResponse } from '../platform.ts';

const invalidKey = (message: string) =>
  apiError(401, message, { type: 'invalid_request_error', code: 'invalid_api_key', headers: { 'www-authenticate': 'Bearer' } });

/** Middleware factory: the bearer secret → its key record in `c.var.apiKey`; 401 for anything else. */
export function apiKeyAuth(): MiddlewareHandler<AccountsEnv> {
  return async function apiKeyAuth(c, next) {
    if (c.get('apiKey')) return next(); // already authenticated further up the chain
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw invalidKey("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
    }
    const secret = match[1];
    const shown = secret.length > 10 ? `${secret.slice(0, 6)}…${secret.slice(-4)}` : '…';
    if (!KEY_PATTERN.test(secret)) throw invalidKey(`Incorrect API key provided: ${shown}.`);
    const record = await authenticatedKey(c.env.KEYS, await sha256Hex(secret), Date.now(), (work) => runAfterResponse(c, work));
    if (!record) throw invalidKey(`Incorrect API key provided: ${shown}.`);
    if (record.revoked_at !== null) throw invalidKey(`The API key ${record.hint}… has been revoked.`);
    c.set('apiKey', record);
    c.get('lifecycle').tenant = record.tenant;
    await next();
  };
}

/**
 * Middleware factory: a key restricted to some models gets 404 model_not_found for the others, exactly as if the
 * model did not exist. Checked when the route prepares the request (the validated body's model), before the
 * response cache or a worker could answer; the body is never read here, so the app's body limit still applies.
 */
export function modelAccess(): MiddlewareHandler<AccountsEnv> {
  return async function modelAccess(c, next) {
    const allowed = c.get('apiKey')?.models;
    if (allowed) {
      c.get('lifecycle').intercept(async (prepared) => {
        if (!allowed.includes(prepared.model)) throw modelNotFound(prepared.model);
        return undefined;
      });
    }
    await next();
  };
}
