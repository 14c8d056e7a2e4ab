// Gives every request an id: the client's `x-request-id` when it is a sane token, else a fresh one. It is echoed on
// the response (the openai SDK exposes it as `request_id`), stored as c.var.requestId and sent on to the worker.
import type { MiddlewareHandler } from 'hono';
import { toHex } from '../../gpu-worker/signing.ts';

export const REQUEST_ID_HEADER = 'x-request-id';
const ACCEPTED = /^[\w.:-]{1,128}$/;

export function newRequestId(): string {
  return `req_${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
}

export function requestId(): MiddlewareHandler<{ Variables: { requestId: string } }> {
  return async function requestId(c, next) {
    const incoming = c.req.header(REQUEST_ID_HEADER);
    const id = incoming && ACCEPTED.test(incoming) ? incoming : newRequestId();
    c.set('requestId', id);
    c.header(REQUEST_ID_HEADER, id);
    await next();
    // error responses are built outside c.header's reach; make sure they carry it too
    if (!c.res.headers.has(REQUEST_ID_HEADER)) {
      try {
        c.res.headers.set(REQUEST_ID_HEADER, id);
      } catch {
        c.res = new Response(c.res.body, c.res);
        c.res.headers.set(REQUEST_ID_HEADER, id);
      }
    }
  };
}
