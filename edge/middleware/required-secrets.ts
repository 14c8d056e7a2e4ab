// Refuses to serve with a secret missing: without WORKER_SECRET the edge would send unsigned requests to the GPU
// workers, without ADMIN_TOKEN the admin API would have no lock. Such a request gets 500 `server_error` naming the
// secret (and how to set it); the isolate logs each missing secret once. wrangler.toml declares both as required, so
// `wrangler deploy` already refuses a Worker without them; this covers a secret deleted later, or set empty.
import type { MiddlewareHandler } from 'hono';
import { apiError } from '../errors.ts';

export type SecretName = 'WORKER_SECRET' | 'ADMIN_TOKEN';

const reported = new Set<SecretName>();

/** Middleware factory: 500 unless every named secret is a non-empty string in the env bindings. */
export function requiredSecrets(...names: SecretName[]): MiddlewareHandler {
  return async function requiredSecrets(c, next) {
    const env = (c.env ?? {}) as Partial<Record<SecretName, unknown>>;
    const missing = names.find((name) => typeof env[name] !== 'string' || (env[name] as string).trim() === '');
    if (missing) {
      if (!reported.has(missing)) {
        reported.add(missing);
        console.error(`[edge] the secret ${missing} is not set: refusing every request that needs it (wrangler secret put ${missing})`);
      }
      throw apiError(500, `The server is misconfigured: the secret ${missing} is not set. Its operator must set it (\`wrangler secret put ${missing}\`; locally in .dev.vars).`, {
        type: 'server_error',
        code: 'missing_secret',
      });
    }
    await next();
  };
}
