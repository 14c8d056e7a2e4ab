// Proves edge/stop-strings.ts: stop strings are found across chunk boundaries, never emitted, text that might become
// one is held back, and streaming split at every boundary equals the one-shot result.
import { describe, expect, it } from 'vitest';
import { applyStopStrings, StopStringMatcher, type StopMatch } from '../../edge/stop-strings.ts';

function streamPieces(pieces: string[], stop: string[]): StopMatch {
  const matcher = new StopStringMatcher(stop);
  let text = '';
  for (const piece of pieces) text += matcher.push(piece).text;
  text += matcher.finish().text;
  return { text, matched: matcher.matched };
}

function* splittings(text: string): Generator<string[]> {
  for (let i = 0; i <= text.length; i++) {
    yield [text.slice(0, i), text.slice(i)];
    for (let j = i + 1; j < text.length; j++) yield [text.slice(0, i), text.slice(i, j), text.slice(j)];
  }
  yield [...text];
}

const CASES: { name: string; text: string; stop: string[]; expected: StopMatch }[] = [
  { name: 'a single stop string', text: 'Hello world. END and more', stop: ['END'], expected: { text: 'Hello world. ', matched: 'END' } },
  { name: 'no match keeps everything', text: 'no stop here, EN', stop: ['END'], expected: { text: 'no stop here, EN', matched: undefined } },
  { name: 'a repeated prefix before the match', text: 'xx###y', stop: ['##y'], expected: { text: 'xx#', matched: '##y' } },
  { name: 'the stop string ending first wins', text: 'abcd', stop: ['abcd', 'bc'], expected: { text: 'a', matched: 'bc' } },
  { name: 'the longer of two ending together', text: 'xabc', stop: ['bc', 'abc'], expected: { text: 'x', matched: 'abc' } },
  { name: 'a multi-line stop string', text: 'Q: 1\nA: 2\n\nQ: 3', stop: ['\n\nQ:'], expected: { text: 'Q: 1\nA: 2', matched: '\n\nQ:' } },
  { name: 'a stop string at the very start', text: 'STOPx', stop: ['STOP'], expected: { text: '', matched: 'STOP' } },
  { name: 'non-ASCII stop strings', text: 'α β γ — δ', stop: ['γ —'], expected: { text: 'α β ', matched: 'γ —' } },
  { name: 'four stop strings', text: 'one two three', stop: ['four', 'three', 'wo t', 'x'], expected: { text: 'one t', matched: 'wo t' } },
];

describe('StopStringMatcher', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('Should handle %s, one-shot and split at every boundary', (_name, testCase) => {
    expect(applyStopStrings(testCase.text, testCase.stop)).toEqual(testCase.expected);
    for (const pieces of splittings(testCase.text)) {
      const streamed = streamPieces(pieces, testCase.stop);
      if (streamed.text !== testCase.expected.text || streamed.matched !== testCase.expected.matched) {
        expect({ pieces, streamed }).toEqual({ pieces, streamed: testCase.expected });
      }
    }
  });

  it('Should hold back a possible stop prefix and release it when it does not match', () => {
    const matcher = new StopStringMatcher(['</end>']);
    expect(matcher.push('answer </e')).toEqual({ text: 'answer ' });
    expect(matcher.push('nv>')).toEqual({ text: '</env>' });
    expect(matcher.push('</en')).toEqual({ text: '' });
    expect(matcher.finish()).toEqual({ text: '</en' });
    expect(matcher.matched).toBeUndefined();
  });

  it('Should emit nothing after a match', () => {
    const matcher = new StopStringMatcher('STOP');
    expect(matcher.push('abSTOPcd')).toEqual({ text: 'ab', matched: 'STOP' });
    expect(matcher.push('more')).toEqual({ text: '', matched: 'STOP' });
    expect(matcher.finish()).toEqual({ text: '', matched: 'STOP' });
  });

  it('Should pass text straight through without stop strings (null, empty list, empty strings)', () => {
    for (const stop of [null, undefined, [], ['']]) {
      const matcher = new StopStringMatcher(stop);
      expect(matcher.push('a<b')).toEqual({ text: 'a<b' });
      expect(matcher.finish()).toEqual({ text: '' });
    }
  });
});
