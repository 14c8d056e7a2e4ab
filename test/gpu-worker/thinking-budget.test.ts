// The thinking budget (protocol.ts definition, enforced in scheduler.ts) through the real worker and the `demo`
// checkpoint, whose scripted output after "<|im_start|>assistant\n" is <think>, 19 reasoning tokens, </think>,
// "\n\n" and an answer: with budget N the stream holds exactly the inject sequence right after N thinking tokens,
// then the answer; a budget the model stays under changes nothing; a prompt already inside <think> counts from
// the first generated token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { END_THINK_ID, THINK_START_ID } from '../../gpu-worker/protocol.ts';
import { generate, startWorker, type Worker } from './worker-process.ts';

const THINKING_PROMPT = [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198];   // …<|im_start|>assistant\n
const NEWLINES = 271;                                                                  // "\n\n"
// Stand-in for the tokenized closing text; any ids work, it must end with </think> "\n\n" like Qwen's.
const INJECT = [271, 82796, 279, 7199, 882, 553, 279, 1196, 11, 358, 614, 311, 2968, 279, 6291, 13, 198, END_THINK_ID, NEWLINES];

let w: Worker;
let free: number[];        // the stream with no budget
beforeAll(async () => {
  w = await startWorker({}, 'demo');
  free = (await generate(w, { prompt: THINKING_PROMPT, max_tokens: 100 })).tokens;
});
afterAll(async () => {
  await w?.stop();
});

const budget = (n: number, extra = {}) => ({ max_thinking_tokens: n, inject_ids: INJECT, ...extra });

describe('thinking budget', () => {
  it('Should see the demo model open and close its own think block', () => {
    expect(free[0]).toBe(THINK_START_ID);
    const end = free.indexOf(END_THINK_ID);
    expect(end).toBeGreaterThan(10);
    expect(free[end + 1]).toBe(NEWLINES);
  });

  it('Should force exactly the inject sequence right after N thinking tokens, then answer', async () => {
    for (const n of [0, 1, 5, 12]) {
      const r = await generate(w, { prompt: THINKING_PROMPT, max_tokens: 100, thinking_budget: budget(n) });
      expect(r.tokens.slice(0, 1 + n), `N=${n}`).toEqual(free.slice(0, 1 + n));     // <think> + N thinking tokens
      expect(r.tokens.slice(1 + n, 1 + n + INJECT.length), `N=${n}`).toEqual(INJECT);
      const answer = free.slice(free.indexOf(END_THINK_ID) + 2);                    // after </think> "\n\n"
      expect(r.tokens.slice(1 + n + INJECT.length), `N=${n}`).toEqual(answer);
      expect(r.final!.usage!.completion_tokens).toBe(r.tokens.length + (r.final!.finish_reason === 'stop' ? 1 : 0));
    }
  });

  it('Should change nothing when the model closes the block within the budget', async () => {
    const thinking = free.indexOf(END_THINK_ID) - 1;                               // 19 tokens between the tags
    const r = await generate(w, { prompt: THINKING_PROMPT, max_tokens: 100, thinking_budget: budget(thinking + 1) });
    expect(r.tokens).toEqual(free);
    // Exactly N = thinking: the budget is spent before </think> could be sampled, so the inject follows (as Qwen's
    // two-pass method does after N tokens without </think>).
    const atLimit = await generate(w, { prompt: THINKING_PROMPT, max_tokens: 100, thinking_budget: budget(thinking) });
    expect(atLimit.tokens.slice(1 + thinking, 1 + thinking + INJECT.length)).toEqual(INJECT);
  });

  it('Should count from the first generated token when the prompt already ends inside <think>', async () => {
    const inThink = [...THINKING_PROMPT, THINK_START_ID];
    const r = await generate(w, { prompt: inThink, max_tokens: 100, thinking_budget: budget(3) });
    expect(r.tokens.slice(0, 3)).toEqual(free.slice(1, 4));
    expect(r.tokens.slice(3, 3 + INJECT.length)).toEqual(INJECT);
    const forcedOff = await generate(w, { prompt: inThink, max_tokens: 100, thinking_budget: budget(3, { prompt_in_think: false }) });
    expect(forcedOff.tokens).toEqual(free.slice(1));                               // never saw <think>: no budget
  });

  it('Should keep budgets apart across concurrent streams and count injected tokens in max_tokens', async () => {
    const ns = [2, 7, 0, 4, 9, 1];
    const rs = await Promise.all(ns.map((n) => generate(w, { prompt: THINKING_PROMPT, max_tokens: 100, thinking_budget: budget(n) })));
    rs.forEach((r, i) => expect(r.tokens.slice(1 + ns[i], 1 + ns[i] + INJECT.length)).toEqual(INJECT));
    const cut = await generate(w, { prompt: THINKING_PROMPT, max_tokens: 6, thinking_budget: budget(2) });
    expect(cut.tokens).toEqual([...free.slice(0, 3), ...INJECT.slice(0, 3)]);
    expect(cut.final!.finish_reason).toBe('length');
  });
});
