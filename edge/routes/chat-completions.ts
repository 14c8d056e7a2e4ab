// POST /v1/chat/completions: validate → thinking mode → Qwen3 template + tokens → n worker generations → per
// choice: detokenise → split reasoning → stop strings on content → tool calls → OpenAI JSON or chat.completion.chunk SSE.
import { Hono } from 'hono';
import type { FinishReason, GenerateEvent, TokenLogprob, Usage } from '../../gpu-worker/protocol.ts';
import type { ChatMessage } from '../chat-template.ts';
import type { EdgeConfig, EdgeEnv } from '../edge-env.ts';
import { invalidRequest, tooManyGenerations } from '../errors.ts';
import { collectChoices, countsOf, finishChoices, generateRequests, newCompletionId, settleUsage, startGenerations, usageOf } from '../generation.ts';
import { getPromptCache } from '../prompt-cache.ts';
import { ReasoningParser } from '../reasoning-parser.ts';
import type { ChatCompletionRequest } from '../schemas.ts';
import { chatLogprobs, streamChunks, type ChunkStream } from '../sse.ts';
import { StopStringMatcher } from '../stop-strings.ts';
import { structuredOutput } from '../structured-output.ts';
import { decideThinkingMode, formatThinkingHeader, THINKING_HEADER, type ThinkingDecision } from '../thinking-mode.ts';
import { getTokenizer, StreamingDetokenizer } from '../tokenizer/index.js';
import { checkChatRequest, completionBudget, generationBound, requireModel, validBody } from '../validate-request.ts';
import { ToolCallParser, type ToolCall, type ToolCallDelta, type ToolChoice } from '../tool-call-parser.ts';
import { largestContext } from '../platform.ts';
import type { UpstreamStream } from '../upstream.ts';

export type ChatDelta = { role?: 'assistant'; content?: string; reasoning_content?: string; reasoning?: string; tool_calls?: ToolCallDelta[] };
type ChoiceOptions = { thinking: boolean; excludeReasoning: boolean; toolsOffered: boolean; toolChoice: ToolChoice; stop: ChatCompletionRequest['stop'] };

/** One choice's output pipeline; push() per worker frame, finish() once at the end. */
export class ChatChoice {
  private readonly detok = new StreamingDetokenizer(getTokenizer(), { skipSpecialTokens: true });
  private readonly reasoningParser: ReasoningParser;
  private readonly stop: StopStringMatcher;
  private readonly tools: ToolCallParser;
  private pendingLogprobs: TokenLogprob[] = [];
  private finished = false;
  tokenCount = 0;
  stopped = false;
  usage?: Usage;
  workerFinish?: FinishReason;

  constructor(
    readonly index: number,
    private readonly options: ChoiceOptions,
  ) {
    const parseTools = options.toolsOffered && options.toolChoice !== 'none';
    this.reasoningParser = new ReasoningParser({ promptClosedThinking: !options.thinking, toolCallEndsReasoning: parseTools });
    this.stop = new StopStringMatcher(options.stop);
    this.tools = new ToolCallParser({ toolChoice: parseTools ? options.toolChoice : 'none' });
  }

  push(event: GenerateEvent): ChatDelta[] {
    this.tokenCount += event.tokens.length;
    if (event.logprobs) this.pendingLogprobs.push(...event.logprobs);
    if (event.finish_reason) {
      this.workerFinish = event.finish_reason;
      this.usage = event.usage;
    }
    if (this.stopped) return [];
    // token by token, so that the parser can tell on which side of a tag each token's text lands
    const split = { reasoning: '', content: '' };
    for (const token of event.tokens) this.reasoningParser.pushInto(split, this.detok.push(token), 1);
    return this.route(split, false);
  }

  finish(): ChatDelta[] {
    if (this.finished || this.stopped) return [];
    this.finished = true;
    const tail = this.reasoningParser.push(this.detok.flush());
    const last = this.reasoningParser.finish();
    return this.route({ reasoning: tail.reasoning + last.reasoning, content: tail.content + last.content }, true);
  }

  private route(split: { reasoning: string; content: string }, atEnd: boolean): ChatDelta[] {
    const deltas: ChatDelta[] = [];
    if (split.reasoning && !this.options.excludeReasoning) deltas.push({ reasoning_content: split.reasoning, reasoning: split.reasoning });
    const matched = this.stop.push(split.content);
    let text = matched.text;
    if (matched.matched !== undefined) this.stopped = true;
    else if (atEnd) text += this.stop.finish().text;
    const parts = [this.tools.push(text)];
    if (atEnd || this.stopped) parts.push(this.tools.finish());
    for (const part of parts) {
      if (part.content) deltas.push({ content: part.content });
      for (const call of part.toolCalls) deltas.push({ tool_calls: [call] });
    }
    return deltas;
  }

  takeLogprobs(): TokenLogprob[] {
    const taken = this.pendingLogprobs;
    this.pendingLogprobs = [];
    return taken;
  }

  /** Generated tokens whose text went to reasoning, the think tags included (edge/reasoning-parser.ts). */
  get reasoningTokens(): number {
    return this.reasoningParser.reasoningTokens;
  }

  get finishReason(): 'stop' | 'length' | 'tool_calls' {
    if (this.tools.validCallCount > 0) return 'tool_calls';
    if (this.stopped) return 'stop';
    return this.workerFinish === 'length' ? 'length' : 'stop';
  }
}

/** The request's thinking mode, the tools the template shows, and the rendered prompt with its tokens. */
export function chatPrompt(body: ChatCompletionRequest, config: Pick<EdgeConfig, 'thinkingDefault' | 'splitSpecialTokens'>) {
  const messages = body.messages as ChatMessage[];
  const thinking = decideThinkingMode({ controls: body, messages, thinkingDefault: config.thinkingDefault });
  const tools = (body.tool_choice ?? 'auto') === 'none' || !body.tools?.length ? undefined : body.tools;
  let prompt;
  try {
    prompt = getPromptCache().chat({ messages, tools, enableThinking: thinking.enabled, splitSpecialTokens: body.split_special_tokens ?? config.splitSpecialTokens });
  } catch (err) {
    throw invalidRequest(`messages could not be rendered: ${(err as Error).message}`, 'messages');
  }
  return { thinking, tools, prompt };
}

/** The completion budget within `context`, the worker requests of the n choices, and the choices' output options. */
export function chatGenerations(
  body: ChatCompletionRequest,
  args: { requestId: string; promptIds: number[]; thinking: ThinkingDecision; tools: ChatCompletionRequest['tools']; context: number | undefined; presencePenalty: number },
) {
  const { promptIds, thinking } = args;
  const budgetParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = completionBudget(promptIds.length, body.max_completion_tokens ?? body.max_tokens, args.context, { prompt: 'messages', budget: budgetParam });
  const topLogprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
  const requests = generateRequests({
    requestId: args.requestId, prompt: promptIds, n: body.n ?? 1, maxTokens, body, thinking: thinking.enabled,
    presencePenalty: args.presencePenalty, logprobs: topLogprobs, thinkingBudget: thinking.budget,
    structured: structuredOutput(body, thinking.enabled),
  });
  const choiceOptions: ChoiceOptions = {
    thinking: thinking.enabled, excludeReasoning: thinking.excludeReasoning, toolsOffered: !!args.tools, toolChoice: body.tool_choice ?? 'auto', stop: body.stop,
  };
  return { budgetParam, maxTokens, topLogprobs, requests, choiceOptions };
}

export function chatCompletionsRoute(): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.post('/v1/chat/completions', validBody(checkChatRequest), async function chatCompletions(c) {
    const body = c.req.valid('json');
    const config = c.get('config');
    requireModel(body.model, config.modelId);
    if ((body.n ?? 1) > config.maxGenerations) throw tooManyGenerations({ generations: body.n ?? 1, prompts: [body.messages] }, config.maxGenerations);
    const { thinking, tools, prompt } = chatPrompt(body, config);
    const context = await largestContext(c);
    const { budgetParam, maxTokens, topLogprobs, requests, choiceOptions } = chatGenerations(body, {
      requestId: c.get('requestId'), promptIds: prompt.ids, thinking, tools, context, presencePenalty: config.presencePenaltyDefault,
    });
    const stream = body.stream === true;
    c.header(THINKING_HEADER, formatThinkingHeader(thinking));
    const shortCircuit = await c.get('lifecycle').prepare({
      endpoint: 'chat.completions', model: body.model, prompts: [prompt.ids], thinking, stream, generations: requests.length,
      maxTokens: generationBound(prompt.ids.length, maxTokens, context),
      get fingerprint() { // only the response cache reads it, for deterministic requests
        return JSON.stringify(['chat', requests.map(({ request_id: _, ...r }) => r), choiceOptions, stream, body.stream_options ?? null]);
      },
      deterministic: requests[0].sampling?.temperature === 0 || body.seed != null,
    });
    if (shortCircuit) return shortCircuit;

    const params = { prompt: 'messages', max_tokens: budgetParam, logprobs: 'top_logprobs', thinking_budget: null };
    const upstreams = await startGenerations(c, requests, params);
    const choices = upstreams.map((_, i) => new ChatChoice(i, choiceOptions));
    const id = newCompletionId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const usage = () => usageOf(prompt.ids.length, choices);
    c.get('lifecycle').track(() => countsOf(usage()));
    const logprobsOf = (choice: ChatChoice) => (topLogprobs === undefined ? null : { content: chatLogprobs(getTokenizer(), choice.takeLogprobs(), topLogprobs), refusal: null });
    const cancelAll = () => upstreams.forEach((u) => u.cancel());

    if (stream) {
      return streamChunks(c, { id, object: 'chat.completion.chunk', created, model: body.model }, body.stream_options?.include_usage === true, async (out) => {
        out.signal.addEventListener('abort', () => {
          cancelAll();
          settleUsage(c, 'aborted', 499, usage());
        });
        await out.chunks(choices.map((choice) => ({ index: choice.index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })));
        await finishChoices(c, out, choices.map((choice, i) => pumpChoice(choice, upstreams[i], out, logprobsOf)), cancelAll, usage);
      });
    }

    const messagesOut = await collectChoices(c, Promise.all(choices.map((choice, i) => collectChoice(choice, upstreams[i]))), cancelAll, usage);
    return c.json({
      id, object: 'chat.completion', created, model: body.model,
      choices: choices.map((choice, i) => ({ index: i, message: messagesOut[i], logprobs: logprobsOf(choice), finish_reason: choice.finishReason })),
      usage: usage(),
    });
  });
  return app;
}

/**
 * Streams one choice: a chunk per delta, those of one worker event written together (logprobs ride on the next chunk
 * out), then its finish_reason chunk. Once per worker event, so each chunk is written as text (deltaJson), and a write
 * is awaited only while the client has not taken the one before.
 */
async function pumpChoice(choice: ChatChoice, upstream: UpstreamStream, out: ChunkStream, logprobsOf: (ch: ChatChoice) => unknown): Promise<void> {
  const emit = (deltas: ChatDelta[]) =>
    out.choiceBodies(choice.index, deltas.map((delta) => `"delta":${deltaJson(delta)},"logprobs":${JSON.stringify(logprobsOf(choice))},"finish_reason":null}`));
  for (let event; (event = await upstream.next()); ) {
    const written = emit(choice.push(event));
    if (written) await written;
    if (choice.stopped) {
      upstream.cancel();
      break;
    }
  }
  await emit(choice.finish());
  await out.chunks([{ index: choice.index, delta: {}, logprobs: logprobsOf(choice), finish_reason: choice.finishReason }]);
}

/** JSON.stringify(delta), written out for the two deltas nearly every token makes (the text serialised once). */
export function deltaJson(delta: ChatDelta): string {
  if (delta.role === undefined && delta.tool_calls === undefined) {
    const { content, reasoning_content: reasoning } = delta;
    if (reasoning === undefined && content !== undefined && delta.reasoning === undefined) return `{"content":${JSON.stringify(content)}}`;
    if (content === undefined && reasoning !== undefined && delta.reasoning === reasoning) {
      const text = JSON.stringify(reasoning);
      return `{"reasoning_content":${text},"reasoning":${text}}`;
    }
  }
  return JSON.stringify(delta);
}

/** Reads one choice to the end and folds its deltas into an assistant message. */
export async function collectChoice(choice: ChatChoice, upstream: UpstreamStream) {
  let reasoning = '';
  let content = '';
  const calls: ToolCall[] = [];
  const fold = (deltas: ChatDelta[]) => {
    for (const d of deltas) {
      reasoning += d.reasoning_content ?? '';
      content += d.content ?? '';
      for (const t of d.tool_calls ?? []) {
        if (t.id !== undefined) calls[t.index] = { id: t.id, type: 'function', function: { name: t.function.name ?? '', arguments: '' } };
        calls[t.index].function.arguments += t.function.arguments ?? '';
      }
    }
  };
  for (let event; (event = await upstream.next()); ) {
    fold(choice.push(event));
    if (choice.stopped) {
      upstream.cancel();
      break;
    }
  }
  fold(choice.finish());
  const message: Record<string, unknown> = { role: 'assistant', content: calls.length > 0 && !content ? null : content };
  message.reasoning_content = reasoning || null;
  message.reasoning = reasoning || null;
  if (calls.length > 0) message.tool_calls = calls;
  return message;
}
