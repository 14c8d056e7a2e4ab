// Refuses request bodies over the configured size (MAX_BODY_BYTES) with 413 in OpenAI's error shape, before any
// JSON parsing. Wraps hono's bodyLimit, which also counts chunked bodies that carry no Content-Length.
import type { MiddlewareHandler } from 'hono';
import { bodyLimit as honoBodyLimit } from 'hono/body-limit';
import { bodyTooLarge } from '../errors.ts';

/** `maxBytes` is read per request (it comes from the env bindings); limiters are built once per size. */
export function bodyLimit(maxBytes: (c: Parameters<MiddlewareHandler>[0]) => number): MiddlewareHandler {
  const limiters = new Map<number, MiddlewareHandler>();
  return async function bodyLimit(c, next) {
    const limit = maxBytes(c);
    let limiter = limiters.get(limit);
    if (!limiter) {
      limiter = honoBodyLimit({
        maxSize: limit,
        onError: () => {
          throw bodyTooLarge(limit);
        },
      });
      limiters.set(limit, limiter);
    }
    return limiter(c, next);
  };
}
