// Refuses request bodies over the configured size (MAX_BODY_BYTES) with 413 in OpenAI's error shape, before any
// JSON parsing. A body with a Content-Length is judged by it; a chunked one (no length given) is read here, counting,
// and its text handed to the routes' body readers (c.req.text() and c.req.json(), which read hono's body cache).
import type { Context, MiddlewareHandler } from 'hono';
import { bodyTooLarge } from '../errors.ts';

/** `maxBytes` is read per request (it comes from the env bindings). */
export function bodyLimit(maxBytes: (c: Context) => number): MiddlewareHandler {
  return async function bodyLimit(c, next) {
    const raw = c.req.raw;
    if (!raw.body) return next();
    const limit = maxBytes(c);
    const length = raw.headers.get('content-length');
    if (length !== null && !raw.headers.has('transfer-encoding')) {
      if (parseInt(length || '0', 10) > limit) throw bodyTooLarge(limit);
      return next();
    }
    // hono keeps each body reading as a promise in bodyCache (its type names the resolved values)
    (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(await readText(raw.body, limit));
    return next();
  };
}

/** The body's text, read to its end; 413 as soon as more than `limit` bytes arrived. */
async function readText(body: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      reader.cancel().catch(() => {});
      throw bodyTooLarge(limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return new TextDecoder().decode(chunks[0]);
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) bytes.set(chunk, at), (at += chunk.byteLength);
  return new TextDecoder().decode(bytes);
}
