// signing.ts: a signature made by the edge verifies on the worker; any change to method, path, timestamp, body or
// secret, a stale timestamp, or malformed headers is refused; a key import that failed is tried again.
import { describe, expect, it, vi } from 'vitest';
import { MAX_SKEW_S, SIGNATURE_HEADER, TIMESTAMP_HEADER, signRequest, verifyRequest } from '../../gpu-worker/signing.ts';

const parts = { method: 'POST', path: '/v1/generate', body: '{"request_id":"a","prompt":[1],"max_tokens":1}' };
const now = 1_800_000_000;

async function check(secret: string, p = parts, ts?: string, sig?: string, at = now) {
  const h = await signRequest('s3cret', parts, now);
  return verifyRequest(secret, p, ts ?? h[TIMESTAMP_HEADER], sig ?? h[SIGNATURE_HEADER], at);
}

describe('signing', () => {
  it('Should accept a fresh signature over the same request', async () => {
    expect(await check('s3cret')).toEqual({ ok: true });
    expect(await check('s3cret', parts, undefined, undefined, now + MAX_SKEW_S)).toEqual({ ok: true });
  });

  it('Should refuse a changed body, path, method or secret', async () => {
    expect((await check('s3cret', { ...parts, body: parts.body.replace('1]', '2]') })).ok).toBe(false);
    expect((await check('s3cret', { ...parts, path: '/v1/generate?x=1' })).ok).toBe(false);
    expect((await check('s3cret', { ...parts, method: 'PUT' })).ok).toBe(false);
    expect((await check('other')).ok).toBe(false);
  });

  it('Should refuse stale, future, missing or malformed headers', async () => {
    expect(await check('s3cret', parts, undefined, undefined, now + MAX_SKEW_S + 1)).toMatchObject({ ok: false, reason: /stale/ });
    expect((await check('s3cret', parts, undefined, undefined, now - MAX_SKEW_S - 1)).ok).toBe(false);
    expect((await check('s3cret', parts, String(now + 1))).ok).toBe(false);          // timestamp is signed
    expect((await verifyRequest('s3cret', parts, null, 'ab', now)).ok).toBe(false);
    expect((await check('s3cret', parts, undefined, 'zz'.repeat(32))).ok).toBe(false);
    expect((await check('s3cret', parts, 'soon')).ok).toBe(false);
  });

  it('Should import the key again after an import that failed, not keep the failure', async () => {
    // the edge's start-up warm-up imports the key where the platform could refuse it; that must not break every request
    const importKey = vi.spyOn(crypto.subtle, 'importKey').mockRejectedValueOnce(new Error('refused here'));
    try {
      await expect(signRequest('fresh-secret', parts, now)).rejects.toThrow('refused here');
      const h = await signRequest('fresh-secret', parts, now);
      expect(await verifyRequest('fresh-secret', parts, h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER], now)).toEqual({ ok: true });
      expect(importKey).toHaveBeenCalledTimes(2);
    } finally {
      importKey.mockRestore();
    }
  });
});
