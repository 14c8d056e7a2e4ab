// Hono's trie router with its answers remembered per method and path. The trie walks every middleware pattern on
// each request (request id, context, secrets, the accounts layer, body limit, the route: a dozen nodes for
// /v1/chat/completions); an isolate serves a handful of paths, so after a path's first request the match is one map
// lookup. A match result is only read by Hono (its handlers, and params it decodes when asked), never changed, so one
// result serves every request for that method and path.
import type { Result, Router } from 'hono/router';
import { TrieRouter } from 'hono/router/trie-router';

/** distinct method + path pairs remembered; past that the map starts over (a scan of random paths cannot grow it) */
export const MEMO_ROUTES = 64;

export class MemoRouter<T> implements Router<T> {
  readonly name = 'MemoRouter';
  private readonly trie = new TrieRouter<T>();
  private readonly matches = new Map<string, Result<T>>();

  add(method: string, path: string, handler: T): void {
    this.matches.clear(); // a route added later may match paths seen before
    this.trie.add(method, path, handler);
  }

  match(method: string, path: string): Result<T> {
    const key = `${method} ${path}`;
    let result = this.matches.get(key);
    if (result === undefined) {
      result = this.trie.match(method, path);
      if (this.matches.size >= MEMO_ROUTES) this.matches.clear();
      this.matches.set(key, result);
    }
    return result;
  }

  /** method + path pairs remembered now (tests) */
  get size(): number {
    return this.matches.size;
  }
}
