// Streaming matcher for the request's `stop` strings on detokenised text: text that could still grow into a stop
// string is held back, the stop string itself is never emitted, and the caller learns which one matched so it can
// cancel generation and finish with finish_reason "stop".
//
// When several stop strings occur, the one that *ends* first wins (the first one generation would have produced,
// whatever the chunking); among those ending at the same place, the longest.

export type StopMatch = {
  /** Text safe to send to the client now. */
  text: string;
  /** The stop string that ended the output, once one has matched. */
  matched?: string;
};

export class StopStringMatcher {
  private readonly stops: string[];
  private pending = '';
  private matchedStop: string | undefined;

  constructor(stop: string | readonly string[] | null | undefined) {
    const list = stop == null ? [] : typeof stop === 'string' ? [stop] : [...stop];
    this.stops = list.filter((s) => s.length > 0);
  }

  /** The stop string that matched, if any; after a match all further text is discarded. */
  get matched(): string | undefined {
    return this.matchedStop;
  }

  push(delta: string): StopMatch {
    if (this.matchedStop !== undefined) return { text: '', matched: this.matchedStop };
    if (this.stops.length === 0) return { text: delta };
    this.pending += delta;

    const hit = earliestEndingStop(this.pending, this.stops);
    if (hit) {
      const text = this.pending.slice(0, hit.index);
      this.pending = '';
      this.matchedStop = hit.stop;
      return { text, matched: hit.stop };
    }
    const held = longestStopPrefixSuffix(this.pending, this.stops);
    const text = this.pending.slice(0, this.pending.length - held);
    this.pending = this.pending.slice(this.pending.length - held);
    return { text };
  }

  /** End of generation: what was held back was not a stop string after all. */
  finish(): StopMatch {
    if (this.matchedStop !== undefined) return { text: '', matched: this.matchedStop };
    const text = this.pending;
    this.pending = '';
    return { text };
  }
}

/** Non-streaming: the text up to the first stop string, and which one matched. */
export function applyStopStrings(text: string, stop: string | readonly string[] | null | undefined): StopMatch {
  const matcher = new StopStringMatcher(stop);
  const first = matcher.push(text);
  const last = matcher.finish();
  return { text: first.text + last.text, matched: matcher.matched };
}

function earliestEndingStop(text: string, stops: readonly string[]): { index: number; stop: string } | undefined {
  let best: { index: number; end: number; stop: string } | undefined;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index === -1) continue;
    const end = index + stop.length;
    if (best === undefined || end < best.end || (end === best.end && index < best.index)) best = { index, end, stop };
  }
  return best;
}

/** Length of the longest suffix of text that is a proper prefix of some stop string. */
function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let longest = 0;
  for (const stop of stops) {
    for (let length = Math.min(stop.length - 1, text.length); length > longest; length--) {
      if (text.endsWith(stop.slice(0, length))) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}
