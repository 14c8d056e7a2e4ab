// The generation requests' rules across fields (a stop token id inside the vocabulary, top_logprobs only with logprobs,
// a named tool among the tools, …), in the order they are reported. One definition for both checks of a body: the zod
// schemas' refinements (edge/schemas.ts) and the edge's own (edge/validate-request.ts).
import { getTokenizer } from './tokenizer/index.js';

export type AddIssue = (path: PropertyKey[], message: string) => void;

type Tool = { function: { name: string } };
/** The fields of a chat request the rules read. */
export type ChatRuleFields = {
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  stop_token_ids?: number[] | null;
  logit_bias?: Record<string, number> | null;
  tools?: Tool[] | null;
  tool_choice?: string | Tool | null;
};
/** The fields of a legacy completion request the rules read. */
export type CompletionRuleFields = {
  n?: number | null;
  best_of?: number | null;
  suffix?: string | null;
  stop_token_ids?: number[] | null;
  logit_bias?: Record<string, number> | null;
  prompt: string | string[] | number[] | number[][];
};

/**
 * Token ids the client sent (stop_token_ids, token-id prompts) must be in the tokenizer's vocabulary: a worker would
 * refuse them with 400, so the edge refuses them first, naming the id's position.
 */
function checkTokenIds(add: AddIssue, ids: readonly number[] | null | undefined, path: PropertyKey[]): void {
  if (!ids) return;
  const vocabSize = getTokenizer().vocabSize;
  const bad = ids.findIndex((id) => id >= vocabSize);
  if (bad !== -1) add([...path, bad], `token id ${ids[bad]} is not in the vocabulary (ids are below ${vocabSize})`);
}

/**
 * logit_bias as OpenAI defines it (token id → bias in [-100, 100]), checked key by key; biases other than 0 are then
 * refused, because the sampler does not apply them.
 */
function checkLogitBias(add: AddIssue, bias: Record<string, number> | null | undefined): void {
  if (!bias) return;
  const vocabSize = getTokenizer().vocabSize;
  for (const [key, value] of Object.entries(bias)) {
    if (!/^\d{1,9}$/.test(key) || Number(key) >= vocabSize) {
      add(['logit_bias'], `"${key.slice(0, 32)}" is not a token id (ids are integers below ${vocabSize})`);
      return;
    }
    if (!(value >= -100 && value <= 100)) {
      add(['logit_bias'], `the bias of token ${key} must be between -100 and 100`);
      return;
    }
  }
  if (Object.values(bias).some((value) => value !== 0)) add(['logit_bias'], 'logit_bias is not supported by this server');
}

export function chatRequestRules(body: ChatRuleFields, add: AddIssue): void {
  if (body.top_logprobs != null && body.top_logprobs > 0 && body.logprobs !== true) add(['top_logprobs'], 'top_logprobs requires logprobs to be true');
  checkTokenIds(add, body.stop_token_ids, ['stop_token_ids']);
  checkLogitBias(add, body.logit_bias);
  if (body.tool_choice && body.tool_choice !== 'none' && body.tool_choice !== 'auto' && !body.tools?.length) add(['tool_choice'], 'tool_choice requires tools');
  if (typeof body.tool_choice === 'object' && body.tool_choice && body.tools?.length) {
    const name = body.tool_choice.function.name;
    if (!body.tools.some((t) => t.function.name === name)) add(['tool_choice', 'function', 'name'], `no tool named "${name}" in tools`);
  }
}

export function completionRequestRules(body: CompletionRuleFields, add: AddIssue): void {
  if (body.suffix) add(['suffix'], 'suffix is not supported by this server');
  if (body.best_of != null && body.best_of !== (body.n ?? 1)) add(['best_of'], 'best_of other than n is not supported by this server');
  checkTokenIds(add, body.stop_token_ids, ['stop_token_ids']);
  checkLogitBias(add, body.logit_bias);
  const { prompt } = body;
  if (Array.isArray(prompt) && typeof prompt[0] === 'number') checkTokenIds(add, prompt as number[], ['prompt']);
  else if (Array.isArray(prompt)) (prompt as unknown[]).forEach((p, i) => Array.isArray(p) && checkTokenIds(add, p, ['prompt', i]));
}
