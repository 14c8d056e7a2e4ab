// The edge answers /health inside workerd (wrangler.toml's entry and bindings), without an API key.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';

const edge = (exports as unknown as { default: { fetch: typeof fetch } }).default;

describe('edge health', () => {
  it('Should answer /health inside workerd', async () => {
    const res = await edge.fetch('http://edge/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});
