// Decides per request whether Qwen3 thinks, why, and with what budget: explicit request fields first, then Qwen's
// /think and /no_think soft switches, then the multilingual prompt classifier of edge/thinking-classifier.ts
// (THINKING_DEFAULT=auto), else the deployment default. Also holds the per-mode sampling defaults Qwen recommends.
import { contentToText, type ChatMessage } from './chat-template.ts';
import type { ReasoningEffort, SamplingFields, ThinkingControls } from './schemas.ts';
import { classifyPrompt } from './thinking-classifier.ts';

/** Thinking budget per effort level, in tokens; undefined = no budget (the request's max tokens is the only cap). */
export const EFFORT_BUDGET_TOKENS: Readonly<Record<Exclude<ReasoningEffort, 'none'>, number | undefined>> = {
  minimal: 256,
  low: 1024,
  medium: 4096,
  high: 16384,
  xhigh: 32768,
  max: undefined,
};

export type ThinkingDefault = 'auto' | 'on' | 'off';
export type ThinkingSource = 'explicit' | 'soft-switch' | 'auto' | 'default';

export type ThinkingDecision = {
  enabled: boolean;
  source: ThinkingSource;
  /** Human-readable: which field, switch or classifier cue decided. */
  reason: string;
  /** Thinking budget in tokens (Qwen's two-pass method, docs/chat-format.md#thinking-budget); absent = unlimited. */
  budget?: number;
  /** The model still thinks but the response must not carry reasoning (OpenRouter exclude, vLLM include_reasoning=false). */
  excludeReasoning: boolean;
};

export type ThinkingModeInput = {
  controls: ThinkingControls;
  messages: readonly ChatMessage[];
  /** THINKING_DEFAULT of the deployment. */
  thinkingDefault: ThinkingDefault;
};

export const THINKING_HEADER = 'x-thinking-mode';

/** Reads THINKING_DEFAULT; anything unrecognised falls back to auto. */
export function parseThinkingDefault(value: string | undefined): ThinkingDefault {
  const normalised = value?.trim().toLowerCase();
  return normalised === 'on' || normalised === 'off' ? normalised : 'auto';
}

export function decideThinkingMode({ controls, messages, thinkingDefault }: ThinkingModeInput): ThinkingDecision {
  const excludeReasoning = controls.reasoning?.exclude === true || controls.include_reasoning === false;
  const finish = (enabled: boolean, source: ThinkingSource, reason: string, effort?: ReasoningEffort): ThinkingDecision => {
    const decision: ThinkingDecision = { enabled, source, reason, excludeReasoning };
    const budget = enabled ? budgetFor(controls, effort) : undefined;
    if (budget !== undefined) decision.budget = budget;
    return decision;
  };

  const explicit = explicitChoice(controls);
  if (explicit) return finish(explicit.enabled, 'explicit', explicit.reason, explicit.effort);

  const softSwitch = findSoftSwitch(messages);
  if (softSwitch) return finish(softSwitch === '/think', 'soft-switch', `${softSwitch} in the latest instruction`);

  if (thinkingDefault === 'auto') {
    const latestUser = [...messages].reverse().find((m) => m.role === 'user');
    if (latestUser) {
      const verdict = classifyPrompt(contentToText(latestUser.content));
      return finish(verdict.enabled, 'auto', verdict.reason);
    }
  }
  return finish(thinkingDefault !== 'off', 'default', `THINKING_DEFAULT=${thinkingDefault}`);
}

/** `on; source=soft-switch` (plus `; budget=N` when there is one): the value of THINKING_HEADER. */
export function formatThinkingHeader(decision: ThinkingDecision): string {
  const parts = [decision.enabled ? 'on' : 'off', `source=${decision.source}`];
  if (decision.budget !== undefined) parts.push(`budget=${decision.budget}`);
  return parts.join('; ');
}

type ExplicitChoice = { enabled: boolean; reason: string; effort?: ReasoningEffort };

/** First explicit control wins, in this order: vLLM kwarg, OpenRouter object, OpenAI effort, Ollama think, vLLM budget 0. */
function explicitChoice(controls: ThinkingControls): ExplicitChoice | undefined {
  const kwarg = controls.chat_template_kwargs?.enable_thinking;
  if (typeof kwarg === 'boolean') return { enabled: kwarg, reason: `chat_template_kwargs.enable_thinking=${kwarg}` };

  const reasoning = controls.reasoning;
  if (reasoning) {
    if (reasoning.enabled === false) return { enabled: false, reason: 'reasoning.enabled=false' };
    if (reasoning.effort) return fromEffort(reasoning.effort, 'reasoning.effort');
    if (reasoning.max_tokens != null) return { enabled: reasoning.max_tokens > 0, reason: `reasoning.max_tokens=${reasoning.max_tokens}` };
    if (reasoning.enabled === true) return { enabled: true, reason: 'reasoning.enabled=true' };
  }
  if (controls.reasoning_effort) return fromEffort(controls.reasoning_effort, 'reasoning_effort');
  if (typeof controls.think === 'boolean') return { enabled: controls.think, reason: `think=${controls.think}` };
  if (typeof controls.think === 'string') return fromEffort(controls.think, 'think');
  if (controls.thinking_token_budget === 0) return { enabled: false, reason: 'thinking_token_budget=0' };
  return undefined;
}

function fromEffort(effort: ReasoningEffort, field: string): ExplicitChoice {
  return { enabled: effort !== 'none', reason: `${field}=${effort}`, effort };
}

function budgetFor(controls: ThinkingControls, effort: ReasoningEffort | undefined): number | undefined {
  const explicitTokens = controls.reasoning?.max_tokens ?? controls.thinking_token_budget;
  if (explicitTokens != null && explicitTokens > 0) return explicitTokens;
  const level = effort ?? controls.reasoning?.effort ?? controls.reasoning_effort;
  return level && level !== 'none' ? EFFORT_BUDGET_TOKENS[level] : undefined;
}

const SOFT_SWITCH = /(?<![\w/.-])\/(no_think|think)\b/g;

/** The latest /think or /no_think in a user or system message (Qwen: "the most recent instruction" wins). */
export function findSoftSwitch(messages: readonly ChatMessage[]): '/think' | '/no_think' | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const { role, content } = messages[i];
    if (role !== 'user' && role !== 'system' && role !== 'developer') continue;
    const matches = [...contentToText(content).matchAll(SOFT_SWITCH)];
    if (matches.length > 0) return matches[matches.length - 1][1] === 'think' ? '/think' : '/no_think';
  }
  return undefined;
}

// --- sampling defaults (docs/model.md#sampling-defaults) ----------------------------------------------------

export const THINKING_SAMPLING = { temperature: 0.6, top_p: 0.95, top_k: 20, min_p: 0 } as const;
export const NON_THINKING_SAMPLING = { temperature: 0.7, top_p: 0.8, top_k: 20, min_p: 0 } as const;

/**
 * Fills only the sampling fields the client left out (undefined or null) with Qwen's per-mode values.
 * presencePenalty is a deployment setting (Qwen suggests 1.5 for quantized models; default 0).
 */
export function applySamplingDefaults<T extends SamplingFields>(
  request: T,
  thinkingEnabled: boolean,
  options: { presencePenalty?: number } = {},
): T & { temperature: number; top_p: number; top_k: number; min_p: number; presence_penalty: number } {
  const defaults = thinkingEnabled ? THINKING_SAMPLING : NON_THINKING_SAMPLING;
  return {
    ...request,
    temperature: request.temperature ?? defaults.temperature,
    top_p: request.top_p ?? defaults.top_p,
    top_k: request.top_k ?? defaults.top_k,
    min_p: request.min_p ?? defaults.min_p,
    presence_penalty: request.presence_penalty ?? options.presencePenalty ?? 0,
  };
}
