// In-isolate LRU caches of prompt work: whole chat requests (rendered + tokenised) and leading system turns
// (tokenised), so a repeated conversation costs a map lookup and a shared system prompt (with its tool list) is
// tokenised once per isolate. Splitting at the end of `<|im_end|>` is exact: added tokens cut the text into
// segments the BPE never merges across, so ids(prefix + rest) = ids(prefix) + ids(rest). Prompts are handled in the
// protected form of edge/prompt-text.ts, in which only the template's own `<|im_end|>` is a turn end.
import { renderProtectedChat, type RenderChatInput } from './chat-template.ts';
import { encodeProtectedText, protectText, unprotectText } from './prompt-text.ts';

const SYSTEM_OPEN = '<|im_start|>system\n';
const TURN_END = '<|im_end|>';

export type EncodedPrompt = {
  text: string;
  ids: number[];
  /** tokens taken from the cache rather than tokenised now */
  reusedTokens: number;
};

/** Map-ordered LRU bounded by entries and by a total weight (characters + tokens held). */
class Lru<V> {
  private readonly map = new Map<string, { value: V; weight: number }>();
  private weight = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxWeight: number,
  ) {}

  get(key: string): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    this.map.delete(key);
    this.map.set(key, hit);
    return hit.value;
  }

  set(key: string, value: V, weight: number): void {
    if (weight > this.maxWeight / 4) return; // one huge prompt must not flush everything else
    const old = this.map.get(key);
    if (old) {
      this.weight -= old.weight;
      this.map.delete(key);
    }
    this.map.set(key, { value, weight });
    this.weight += weight;
    while (this.map.size > this.maxEntries || this.weight > this.maxWeight) {
      const [oldestKey, oldest] = this.map.entries().next().value!;
      this.map.delete(oldestKey);
      this.weight -= oldest.weight;
    }
  }

  get size(): number {
    return this.map.size;
  }
}

export type PromptCacheStats = { hits: number; prefixHits: number; misses: number; entries: number; prefixEntries: number };

export class PromptCache {
  /** canonical request JSON → rendered text + ids */
  private readonly chats: Lru<{ text: string; ids: number[] }>;
  /** leading system turn text → ids */
  private readonly prefixes: Lru<number[]>;
  private readonly stats = { hits: 0, prefixHits: 0, misses: 0 };

  constructor(options: { maxEntries?: number; maxWeight?: number } = {}) {
    const maxEntries = options.maxEntries ?? 512;
    // ~ 8 MB of strings and number arrays at the default
    const maxWeight = options.maxWeight ?? 2_000_000;
    this.chats = new Lru(maxEntries, maxWeight);
    this.prefixes = new Lru(maxEntries, maxWeight / 2);
  }

  /** The chat template rendered and tokenised, reusing earlier work where the request or its system turn repeats. */
  chat(input: RenderChatInput): EncodedPrompt {
    const key = JSON.stringify([
      input.messages, input.tools ?? null, input.enableThinking ?? true, input.addGenerationPrompt ?? true, input.splitSpecialTokens ?? true,
    ]);
    const hit = this.chats.get(key);
    if (hit) {
      this.stats.hits++;
      return { text: hit.text, ids: hit.ids, reusedTokens: hit.ids.length };
    }
    const encoded = this.encodeProtected(renderProtectedChat(input));
    this.chats.set(key, { text: encoded.text, ids: encoded.ids }, key.length + encoded.text.length + encoded.ids.length);
    return encoded;
  }

  /** Plain text to ids, added-token spellings included (as the tokenizer reads them), reusing a cached leading system turn. */
  encode(text: string): EncodedPrompt {
    return this.encodeProtected(protectText(text, false));
  }

  private encodeProtected(protectedText: string): EncodedPrompt {
    const text = unprotectText(protectedText);
    const prefixEnd = protectedText.startsWith(SYSTEM_OPEN) ? protectedText.indexOf(TURN_END) : -1;
    if (prefixEnd === -1) {
      this.stats.misses++;
      return { text, ids: encodeProtectedText(protectedText), reusedTokens: 0 };
    }
    const split = prefixEnd + TURN_END.length;
    const prefix = protectedText.slice(0, split);
    let prefixIds = this.prefixes.get(prefix);
    const reused = prefixIds !== undefined;
    if (prefixIds === undefined) {
      prefixIds = encodeProtectedText(prefix);
      this.prefixes.set(prefix, prefixIds, prefix.length + prefixIds.length);
      this.stats.misses++;
    } else {
      this.stats.prefixHits++;
    }
    return { text, ids: prefixIds.concat(encodeProtectedText(protectedText.slice(split))), reusedTokens: reused ? prefixIds.length : 0 };
  }

  snapshot(): PromptCacheStats {
    return { ...this.stats, entries: this.chats.size, prefixEntries: this.prefixes.size };
  }
}

let shared: PromptCache | undefined;

/** The isolate-wide prompt cache. */
export function getPromptCache(): PromptCache {
  return (shared ??= new PromptCache());
}
