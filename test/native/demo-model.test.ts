// The `demo` checkpoint: its committed token chain matches Qwen3's real tokenizer, and decoding it through the
// engine (CLI) follows the script in both thinking and non-thinking mode, greedy and at the advised temperatures.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without types
import { DEMO_ANSWER, DEMO_REASONING, demoChainIds, loadReferenceTokenizer } from '../../scripts/gen-demo-script.mjs';

const cli = join(__dirname, '..', '..', 'native', 'build', 'qwen3');
let dir: string;
const tokenizer = loadReferenceTokenizer();
const encode = (s: string): number[] => tokenizer.encode(s, { add_special_tokens: false }).ids;

function generate(prompt: number[], extra: string[] = []): { tokens: number[]; finish_reason: string } {
  const out = execFileSync(cli, ['generate', '--model', dir, '--tokens', prompt.join(','), '--max-tokens', '100', ...extra]);
  return JSON.parse(out.toString());
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'q3-demo-'));
  execFileSync(cli, ['make-demo-model', '--out', dir, '--preset', 'demo', '--seed', '7']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('demo checkpoint', () => {
  it('Should embed the chain that the tokenizer produces for the script', () => {
    const header = readFileSync(join(__dirname, '..', '..', 'native', 'demo', 'demo_script.h'), 'utf8');
    const committed = header.match(/kDemoChain\[\] = \{([^}]*)\}/)![1].split(',').map((s) => Number(s.trim()));
    expect(committed).toEqual(demoChainIds(tokenizer));
  });

  it('Should think one sentence, then answer, after a thinking-mode prompt', () => {
    const prompt = encode('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    const r = generate(prompt);
    expect(r.finish_reason).toBe('stop');
    expect(tokenizer.decode(r.tokens, { skip_special_tokens: false })).toBe(
      `<think>${DEMO_REASONING}</think>\n\n${DEMO_ANSWER}<|im_end|>`,
    );
  });

  it('Should answer directly after a non-thinking prompt (empty think block)', () => {
    const prompt = encode('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
    const r = generate(prompt, ['--temperature', '0.7', '--top-p', '0.8', '--top-k', '20', '--seed', '3']);
    expect(tokenizer.decode(r.tokens, { skip_special_tokens: false })).toBe(`${DEMO_ANSWER}<|im_end|>`);
  });

  it('Should keep to the script at the thinking-mode sampling defaults', () => {
    const prompt = encode('<|im_start|>user\nwhat is 2+2?<|im_end|>\n<|im_start|>assistant\n');
    for (const seed of ['1', '2']) {
      const r = generate(prompt, ['--temperature', '0.6', '--top-p', '0.95', '--top-k', '20', '--seed', seed]);
      expect(tokenizer.decode(r.tokens, { skip_special_tokens: false })).toContain(`</think>\n\n${DEMO_ANSWER}`);
    }
  });
});
