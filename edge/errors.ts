// OpenAI-shaped errors for the edge: every failure leaves as {"error": {message, type, param, code}} with the status
// the official SDKs map to their error classes (400 BadRequestError, 404 NotFoundError, 413, 429, 503, …).
// Code throws `apiError(...)` (an HTTPException carrying the finished response); `handleError` is the one app.onError.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable'
  | 'timeout_error';

/** nginx's status for a client that closed the request; nobody reads it, but usage records carry it */
export const CLIENT_CLOSED = 499;

export type OpenAIErrorBody = {
  error: { message: string; type: OpenAIErrorType | string; param: string | null; code: string | null };
};

export type ApiErrorOptions = {
  type?: OpenAIErrorType;
  param?: string | null;
  code?: string | null;
  headers?: Record<string, string>;
};

/** The JSON body of an OpenAI error; also what a mid-stream error frame carries. */
export function errorBody(message: string, options: ApiErrorOptions = {}, status = 400): OpenAIErrorBody {
  return {
    error: { message, type: options.type ?? defaultType(status), param: options.param ?? null, code: options.code ?? null },
  };
}

/** An HTTPException whose response is the OpenAI error body; throw it from middleware and routes. */
export function apiError(status: ContentfulStatusCode, message: string, options: ApiErrorOptions = {}): HTTPException {
  const res = Response.json(errorBody(message, options, status), { status, headers: options.headers });
  return new HTTPException(status, { res, message });
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  apiError(400, message, { type: 'invalid_request_error', param, code });

export const modelNotFound = (model: string) =>
  apiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, {
    type: 'invalid_request_error',
    param: 'model',
    code: 'model_not_found',
  });

export const bodyTooLarge = (limitBytes: number) =>
  apiError(413, `Request body is larger than ${limitBytes} bytes.`, {
    type: 'invalid_request_error',
    code: 'request_too_large',
  });

export const noHealthyWorker = (detail: string, retryAfterS = 1) =>
  apiError(503, `No inference worker is available: ${detail}`, {
    type: 'service_unavailable',
    code: 'no_healthy_worker',
    headers: { 'retry-after': String(retryAfterS) },
  });

/** Every worker answered 503 + Retry-After (queue full, draining): backpressure, not a fault; retry after that long. */
export const workersBusy = (retryAfterS: number) =>
  apiError(503, 'The inference workers are at capacity. Please retry after the delay in the Retry-After header.', {
    type: 'service_unavailable',
    code: 'server_overloaded',
    headers: { 'retry-after': String(retryAfterS) },
  });

/** More generations (prompts × n) in one request than `limit` allows: no retry can help. */
export const tooManyGenerations = (request: { generations: number; prompts: readonly unknown[] }, limit: number, what = 'one request may run at most') =>
  apiError(400, `This request asks for ${request.generations} generations (${request.prompts.length} prompt(s) × n); ${what} ${limit} at once.`, {
    type: 'invalid_request_error',
    param: request.generations > request.prompts.length ? 'n' : 'prompt',
    code: 'too_many_generations',
  });

const CANCELLED_MESSAGE =
  'The generation was cut short: the inference worker cancelled it (e.g. it was shutting down). The output is incomplete; please retry.';

/** A worker cut a started generation short (finish_reason "cancelled"): never reported as a complete answer. */
export const generationCancelledBody = () => errorBody(CANCELLED_MESSAGE, { type: 'server_error', code: 'generation_cancelled' }, 503);

export const generationCancelled = () =>
  apiError(503, CANCELLED_MESSAGE, { type: 'server_error', code: 'generation_cancelled', headers: { 'retry-after': '1' } });

/** A worker failed after the generation started (it died, broke the protocol or stalled). */
export const upstreamFailed = (detail: string) =>
  apiError(502, `The inference worker failed mid-generation: ${detail}`, { type: 'server_error', code: 'upstream_error' });

export const upstreamTimeout = (timeoutMs: number) =>
  apiError(504, `The inference worker did not answer within ${timeoutMs} ms.`, { type: 'timeout_error', code: 'timeout' });

function defaultType(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 503) return 'service_unavailable';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** app.onError: our HTTPExceptions pass through; Hono's own (malformed JSON, …) and crashes get the OpenAI shape. */
export function handleError(err: Error, c: Context): Response {
  if (err instanceof HTTPException) {
    const res = err.res;
    if (res && res.headers.get('content-type')?.includes('application/json')) return res;
    const status = err.status as ContentfulStatusCode;
    return c.json(errorBody(err.message || res?.statusText || 'Bad request', {}, status), status);
  }
  if (err.name === 'AbortError' || c.req.raw.signal?.aborted) {
    // the client left before the response started; nobody reads this (499 = client closed request)
    return c.json(errorBody('Client closed the request.', {}, 400), CLIENT_CLOSED as ContentfulStatusCode);
  }
  console.error('[edge] unhandled error', err);
  return c.json(errorBody('The server had an error while processing your request.', { type: 'server_error' }, 500), 500);
}

/** app.notFound: unknown paths in the same shape. */
export function handleNotFound(c: Context): Response {
  return c.json(errorBody(`Unknown request URL: ${c.req.method} ${new URL(c.req.url).pathname}`, { type: 'invalid_request_error', code: 'unknown_url' }, 404), 404);
}
