// What a GPU worker sends the edge, checked without zod (edge/validate.ts): the SSE frames of /v1/generate (the last
// of every stream carries finish_reason and usage, so every request reads one) and error bodies, by the rules of
// gpu-worker/protocol.ts's GenerateEventSchema and ErrorBodySchema, which a test holds these to.
import type { ErrorBody, GenerateEvent } from '../gpu-worker/protocol.ts';
import { array, int, nullish, num, object, oneOf, optional, string, type Check, type Issue } from './validate.ts';

const tokenLogprob = object({ token: int(), logprob: num(), top: optional(array(object({ token: int(), logprob: num() }))) });

const generateEvent = object({
  tokens: array(int()),
  logprobs: optional(array(tokenLogprob)),
  finish_reason: optional(oneOf(['stop', 'length', 'cancelled'])),
  stop_token_id: optional(int()),
  usage: optional(object({ prompt_tokens: int(), completion_tokens: int(), cached_tokens: int() })),
});

const errorBody = object({ error: object({ message: string, type: string, param: nullish(string), code: nullish(string) }) });

function parsed<T>(check: Check, json: unknown): T | undefined {
  const issues: Issue[] = [];
  const value = check(json, issues);
  return issues.length === 0 ? (value as T) : undefined;
}

/** A /v1/generate frame as the protocol defines it (its declared fields), or undefined. */
export const parseGenerateEvent = (json: unknown): GenerateEvent | undefined => parsed(generateEvent, json);

/** A worker's error body as the protocol defines it, or undefined. */
export const parseErrorBody = (json: unknown): ErrorBody | undefined => parsed(errorBody, json);
