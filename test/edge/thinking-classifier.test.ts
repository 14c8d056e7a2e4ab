// Proves edge/thinking-classifier.ts on the labelled multilingual evaluation set test/fixtures/thinking-prompts.json
// (written for the project; its held-out third was never used to tune the cues): at least 90% right in every language,
// on the whole set and on the held-out part alone. Speed and size are measured by bench/thinking-classifier.mjs.
import { describe, expect, it } from 'vitest';
import { classifyPrompt } from '../../edge/thinking-classifier.ts';
import evaluation from '../fixtures/thinking-prompts.json';

type LabelledPrompt = { lang: string; think: boolean; kind: string; split: 'dev' | 'heldout'; text: string };
const prompts = evaluation.prompts as LabelledPrompt[];
const languages = [...new Set(prompts.map((p) => p.lang))];

function accuracy(selected: LabelledPrompt[]): { accuracy: number; misses: string[] } {
  const misses = selected.filter((p) => classifyPrompt(p.text).enabled !== p.think).map((p) => `${p.think ? 'THINK' : 'skip'}: ${p.text}`);
  return { accuracy: 1 - misses.length / selected.length, misses };
}

describe('evaluation set', () => {
  it('Should hold at least 400 prompts in at least 12 languages, balanced per language, a third held out', () => {
    expect(prompts.length).toBeGreaterThanOrEqual(400);
    expect(languages.length).toBeGreaterThanOrEqual(12);
    for (const lang of languages) {
      const ofLanguage = prompts.filter((p) => p.lang === lang);
      expect(ofLanguage.filter((p) => p.think).length, lang).toBe(ofLanguage.filter((p) => !p.think).length);
      expect(ofLanguage.filter((p) => p.split === 'heldout').length, lang).toBeGreaterThanOrEqual(ofLanguage.length / 4);
    }
    expect(new Set(prompts.map((p) => p.text)).size).toBe(prompts.length);
  });
});

describe('auto classifier', () => {
  it.each(languages)('Should label at least 90%% of the %s prompts right, on the whole set and on the held-out part', (lang) => {
    const all = accuracy(prompts.filter((p) => p.lang === lang));
    const heldOut = accuracy(prompts.filter((p) => p.lang === lang && p.split === 'heldout'));
    expect({ accuracy: all.accuracy >= 0.9, misses: all.misses }).toEqual({ accuracy: true, misses: all.misses });
    expect({ accuracy: heldOut.accuracy >= 0.9, misses: heldOut.misses }).toEqual({ accuracy: true, misses: heldOut.misses });
  });

  it('Should think for the requests the English-only scorer missed, and not for chit-chat in the same languages', () => {
    for (const prompt of ['证明根号2是无理数。', 'Beweise, dass es unendlich viele Primzahlen gibt.', '파이썬으로 에라토스테네스의 체를 구현해 주세요.']) {
      expect(classifyPrompt(prompt).enabled, prompt).toBe(true);
    }
    for (const prompt of ['你好！', 'Hallo, wie geht es dir?', '안녕하세요!']) expect(classifyPrompt(prompt).enabled, prompt).toBe(false);
  });

  it('Should say which cue decided', () => {
    expect(classifyPrompt('Solve 2x + 3 = 7').reason).toMatch(/^classifier: math/);
    expect(classifyPrompt('hey there').reason).toMatch(/^classifier: chit-chat/);
    expect(classifyPrompt('Traduce al inglés: buenos días').reason).toMatch(/^classifier: (rewrite|chit-chat)/);
  });

  it('Should read at most 4,000 characters of a long prompt and still find a cue at its end', () => {
    const long = `${'Please keep this paragraph as it is. '.repeat(500)}Then prove that 17 is prime.`;
    expect(classifyPrompt(long).enabled).toBe(true);
  });
});
