// vLLM's POST /tokenize ({prompt} or chat {messages, add_generation_prompt, chat_template_kwargs, tools} →
// {count, max_model_len, tokens}) and POST /detokenize ({tokens} → {prompt}). Chat prompts are rendered exactly as
// /v1/chat/completions would send them (same thinking-mode decision, same template, same reading of special-token
// text), so `count` is what gets billed; `split_special_tokens` in the answer says whether added-token spellings in
// the client's text were encoded as text (chat default: SPLIT_SPECIAL_TOKENS) or as control tokens (raw prompt default).
import { Hono } from 'hono';
import type { ChatMessage } from '../chat-template.ts';
import type { EdgeEnv } from '../edge-env.ts';
import { invalidRequest } from '../errors.ts';
import { largestContext } from '../platform.ts';
import { getPromptCache } from '../prompt-cache.ts';
import { decideThinkingMode } from '../thinking-mode.ts';
import { getTokenizer } from '../tokenizer/index.js';
import { jsonBody, requireModel } from '../validate-request.ts';

export function tokenizeRoute(): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();

  app.post('/tokenize', jsonBody(async () => (await import('../schemas.ts')).tokenizeRequestSchema), async function tokenize(c) {
    const body = c.req.valid('json');
    const config = c.get('config');
    requireModel(body.model, config.modelId);
    let tokens: number[];
    let splitSpecialTokens: boolean;
    if ('messages' in body) {
      const messages = body.messages as ChatMessage[];
      const thinking = decideThinkingMode({ controls: body, messages, thinkingDefault: config.thinkingDefault });
      splitSpecialTokens = body.split_special_tokens ?? config.splitSpecialTokens;
      try {
        tokens = getPromptCache().chat({
          messages, tools: body.tools ?? undefined, enableThinking: thinking.enabled, addGenerationPrompt: body.add_generation_prompt ?? true, splitSpecialTokens,
        }).ids;
      } catch (err) {
        throw invalidRequest(`messages could not be rendered: ${(err as Error).message}`, 'messages');
      }
    } else {
      splitSpecialTokens = body.split_special_tokens ?? false;
      tokens = splitSpecialTokens ? getTokenizer().encode(body.prompt, { addedTokens: 'text' }) : getPromptCache().encode(body.prompt).ids;
    }
    const result: Record<string, unknown> = { count: tokens.length, max_model_len: (await largestContext(c)) ?? null, tokens, split_special_tokens: splitSpecialTokens };
    if (body.return_token_strs) result.token_strs = tokens.map((id) => getTokenizer().idToToken(id) ?? null);
    return c.json(result);
  });

  app.post('/detokenize', jsonBody(async () => (await import('../schemas.ts')).detokenizeRequestSchema), async function detokenize(c) {
    const body = c.req.valid('json');
    requireModel(body.model, c.get('config').modelId);
    const tokenizer = getTokenizer();
    const bad = body.tokens.findIndex((id) => id >= tokenizer.vocabSize);
    if (bad !== -1) throw invalidRequest(`token ${body.tokens[bad]} is not in the vocabulary`, `tokens[${bad}]`);
    return c.json({ prompt: tokenizer.decode(body.tokens) });
  });

  return app;
}
