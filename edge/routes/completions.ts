// POST /v1/completions (legacy): prompt as text, texts, token ids or lists of ids → one worker generation per prompt
// × n → detokenise → stop strings → text_completion JSON or SSE. No template and no reasoning split: raw text.
import { Hono } from 'hono';
import { END_THINK_ID, promptEndsInThink, THINK_START_ID } from '../../gpu-worker/protocol-basics.ts';
import type { FinishReason, GenerateEvent, TokenLogprob, Usage } from '../../gpu-worker/protocol.ts';
import type { EdgeEnv } from '../edge-env.ts';
import { invalidRequest, tooManyGenerations } from '../errors.ts';
import { collectChoices, countsOf, finishChoices, generateRequests, newCompletionId, settleUsage, startGenerations, usageOf } from '../generation.ts';
import { largestContext } from '../platform.ts';
import { getPromptCache } from '../prompt-cache.ts';
import { completionLogprobs, streamChunks } from '../sse.ts';
import { StopStringMatcher } from '../stop-strings.ts';
import { structuredOutput } from '../structured-output.ts';
import { getTokenizer, StreamingDetokenizer } from '../tokenizer/index.js';
import { checkCompletionRequest, completionBudget, generationBound, requireModel, validBody } from '../validate-request.ts';

/** OpenAI's default for legacy completions (tokens). */
const DEFAULT_MAX_TOKENS = 16;
const ASSISTANT_TURN = '<|im_start|>assistant\n';

class TextChoice {
  private readonly detok = new StreamingDetokenizer(getTokenizer(), { skipSpecialTokens: true });
  private readonly stop: StopStringMatcher;
  private pendingLogprobs: TokenLogprob[] = [];
  tokenCount = 0;
  stopped = false;
  usage?: Usage;
  workerFinish?: FinishReason;
  /** characters emitted so far (text_offset of the next token) */
  offset = 0;

  constructor(
    readonly index: number,
    stop: string | string[] | null | undefined,
  ) {
    this.stop = new StopStringMatcher(stop);
  }

  push(event: GenerateEvent): string {
    this.tokenCount += event.tokens.length;
    if (event.logprobs) this.pendingLogprobs.push(...event.logprobs);
    if (event.finish_reason) {
      this.workerFinish = event.finish_reason;
      this.usage = event.usage;
    }
    if (this.stopped) return '';
    const matched = this.stop.push(this.detok.push(event.tokens));
    if (matched.matched !== undefined) this.stopped = true;
    return matched.text;
  }

  finish(): string {
    if (this.stopped) return '';
    return this.stop.push(this.detok.flush()).text + this.stop.finish().text;
  }

  takeLogprobs(): TokenLogprob[] {
    const taken = this.pendingLogprobs;
    this.pendingLogprobs = [];
    return taken;
  }

  get finishReason(): 'stop' | 'length' {
    return !this.stopped && this.workerFinish === 'length' ? 'length' : 'stop';
  }
}

export function completionsRoute(): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.post('/v1/completions', validBody(checkCompletionRequest), async function completions(c) {
    const body = c.req.valid('json');
    const config = c.get('config');
    requireModel(body.model, config.modelId);
    if (body.echo && body.logprobs != null) throw invalidRequest('echo with logprobs is not supported by this server', 'echo');
    const n = body.n ?? 1;
    const promptList = promptsOf(body.prompt);
    if (promptList.length * n > config.maxGenerations) throw tooManyGenerations({ generations: promptList.length * n, prompts: promptList }, config.maxGenerations);
    const tokenizer = getTokenizer();
    const prompts = promptIds(promptList);
    const context = await largestContext(c);
    const requests = prompts.flatMap((ids, p) => {
      const maxTokens = completionBudget(ids.length, body.max_tokens ?? DEFAULT_MAX_TOKENS, context, { prompt: 'prompt', budget: 'max_tokens' });
      // a prompt ending in an open assistant turn makes Qwen3 think: give it the thinking-mode sampling defaults
      const thinking = tokenizer.decode(ids.slice(-4)).endsWith(ASSISTANT_TURN);
      // a format applies after the think block the model is about to open (or is inside)
      const afterThink = thinking || promptEndsInThink(ids, THINK_START_ID, END_THINK_ID);
      return generateRequests({
        requestId: prompts.length > 1 ? `${c.get('requestId')}-p${p}` : c.get('requestId'), prompt: ids, n, maxTokens, body, thinking,
        presencePenalty: config.presencePenaltyDefault, logprobs: body.logprobs ?? undefined,
        structured: structuredOutput(body, afterThink),
      });
    });
    const stream = body.stream === true;
    const shortCircuit = await c.get('lifecycle').prepare({
      endpoint: 'completions', model: body.model, prompts, stream, generations: requests.length,
      maxTokens: Math.max(...prompts.map((ids) => generationBound(ids.length, body.max_tokens ?? DEFAULT_MAX_TOKENS, context))),
      get fingerprint() { // only the response cache reads it, for deterministic requests
        return JSON.stringify(['completions', requests.map(({ request_id: _, ...r }) => r), body.stop ?? null, body.echo ?? false, stream, body.stream_options ?? null]);
      },
      deterministic: requests[0].sampling?.temperature === 0 || body.seed != null,
    });
    if (shortCircuit) return shortCircuit;

    const upstreams = await startGenerations(c, requests, { prompt: 'prompt', max_tokens: 'max_tokens' });
    const choices = upstreams.map((_, i) => new TextChoice(i, body.stop));
    const echoOf = (choice: TextChoice) => (body.echo ? tokenizer.decode(prompts[Math.floor(choice.index / n)]) : '');
    const promptTokens = prompts.reduce((sum, ids) => sum + ids.length, 0);
    const usage = () => usageOf(promptTokens, choices);
    c.get('lifecycle').track(() => countsOf(usage()));
    const logprobsOf = (choice: TextChoice, text: string) => {
      if (body.logprobs == null) return null;
      const out = completionLogprobs(tokenizer, choice.takeLogprobs(), body.logprobs, choice.offset);
      choice.offset += text.length;
      return out;
    };
    const cancelAll = () => upstreams.forEach((u) => u.cancel());
    const id = newCompletionId('cmpl');
    const created = Math.floor(Date.now() / 1000);

    if (stream) {
      return streamChunks(c, { id, object: 'text_completion', created, model: body.model }, body.stream_options?.include_usage === true, async (out) => {
        out.signal.addEventListener('abort', () => {
          cancelAll();
          settleUsage(c, 'aborted', 499, usage());
        });
        const pump = async (choice: TextChoice) => {
          const send = (text: string, finish: string | null) =>
            out.choices([{ index: choice.index, text, logprobs: logprobsOf(choice, text), finish_reason: finish }]);
          const echo = echoOf(choice);
          if (echo) await send(echo, null);
          for await (const event of upstreams[choice.index]) {
            const text = choice.push(event);
            if (text) await send(text, null);
            if (choice.stopped) break;
          }
          await send(choice.finish(), choice.finishReason);
        };
        await finishChoices(c, out, choices.map(pump), cancelAll, usage);
      });
    }

    const collectText = async (choice: TextChoice) => {
      let text = echoOf(choice);
      for await (const event of upstreams[choice.index]) {
        text += choice.push(event);
        if (choice.stopped) break;
      }
      return text + choice.finish();
    };
    const texts = await collectChoices(c, Promise.all(choices.map(collectText)), cancelAll, usage);
    return c.json({
      id, object: 'text_completion', created, model: body.model,
      choices: choices.map((choice, i) => ({ index: i, text: texts[i], logprobs: logprobsOf(choice, ''), finish_reason: choice.finishReason })),
      usage: usage(),
    });
  });
  return app;
}

/** Every prompt form as a list of prompts, each text or token ids. */
function promptsOf(prompt: string | string[] | number[] | number[][]): (string | number[])[] {
  return typeof prompt === 'string' ? [prompt] : typeof prompt[0] === 'number' ? [prompt as number[]] : (prompt as (string | number[])[]);
}

/**
 * Each prompt as token ids; text goes through the prompt cache (special tokens written literally are encoded).
 * Token-id prompts were checked against the vocabulary by the schema.
 */
function promptIds(lists: (string | number[])[]): number[][] {
  return lists.map((item) => {
    const ids = typeof item === 'string' ? getPromptCache().encode(item).ids : item;
    if (ids.length === 0) throw invalidRequest('prompt must not be empty', 'prompt');
    return ids;
  });
}
