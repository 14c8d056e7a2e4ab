import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';

describe('edge health', () => {
  it('Should answer /health inside workerd', async () => {
    const res = await exports.default.fetch('http://edge/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});
