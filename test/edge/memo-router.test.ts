// edge/memo-router.ts: the remembered matches are the trie's own, a route added after a match is found, and the
// memory stays bounded however many paths are asked for.
import { Hono } from 'hono';
import { TrieRouter } from 'hono/router/trie-router';
import { describe, expect, it } from 'vitest';
import { MEMO_ROUTES, MemoRouter } from '../../edge/memo-router.ts';

/** The same routes in a plain trie and a memo router; handlers are names, so results compare by value. */
function routers() {
  const trie = new TrieRouter<string>();
  const memo = new MemoRouter<string>();
  const routes: [string, string, string][] = [
    ['ALL', '*', 'requestId'],
    ['ALL', '/v1/*', 'auth'],
    ['POST', '/v1/chat/completions', 'chat'],
    ['GET', '/v1/models', 'models'],
    ['GET', '/v1/models/:model', 'model'],
    ['GET', '/admin/keys/:id/usage', 'usage'],
  ];
  for (const [method, path, handler] of routes) {
    trie.add(method, path, handler);
    memo.add(method, path, handler);
  }
  return { trie, memo };
}

const asked: [string, string][] = [
  ['POST', '/v1/chat/completions'], ['GET', '/v1/chat/completions'], ['GET', '/v1/models'], ['GET', '/v1/models/qwen3-8b-awq'],
  ['GET', '/v1/models/other'], ['GET', '/admin/keys/k1/usage'], ['GET', '/nowhere'], ['POST', '/v1/unknown'],
];

describe('MemoRouter', () => {
  it('answers every path as the trie does, the first time and when remembered', () => {
    const { trie, memo } = routers();
    for (let pass = 0; pass < 2; pass++) {
      for (const [method, path] of asked) expect(memo.match(method, path)).toEqual(trie.match(method, path));
    }
    expect(memo.size).toBe(asked.length);
    const [handlers] = memo.match('GET', '/v1/models/qwen3-8b-awq');
    expect(handlers.map(([handler]) => handler)).toEqual(['requestId', 'auth', 'model']);
  });

  it('finds a route added after a path was matched', () => {
    const { memo } = routers();
    expect(memo.match('POST', '/v1/completions')[0].map(([h]) => h)).toEqual(['requestId', 'auth']);
    memo.add('POST', '/v1/completions', 'completions');
    expect(memo.match('POST', '/v1/completions')[0].map(([h]) => h)).toEqual(['requestId', 'auth', 'completions']);
  });

  it(`remembers at most ${MEMO_ROUTES} paths, and still answers past that`, () => {
    const { trie, memo } = routers();
    for (let i = 0; i < 5 * MEMO_ROUTES; i++) {
      const path = `/v1/models/m${i}`;
      expect(memo.match('GET', path)).toEqual(trie.match('GET', path));
      expect(memo.size).toBeLessThanOrEqual(MEMO_ROUTES);
    }
  });

  it('gives a Hono app each request its own params', async () => {
    const app = new Hono({ router: new MemoRouter() });
    app.get('/v1/models/:model', (c) => c.json({ model: c.req.param('model') }));
    for (const model of ['a', 'b', 'a', 'c%20d']) {
      const res = await app.request(`/v1/models/${model}`);
      expect(await res.json()).toEqual({ model: decodeURIComponent(model) });
    }
  });
});
