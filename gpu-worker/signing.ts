/**
 * @module Request signing between the edge and the worker: HMAC-SHA256 with a shared secret over the method, path,
 * timestamp and body. WebCrypto only (`crypto.subtle`), so the same code signs in workerd and verifies in Node 20.
 *
 * Signed string: `${METHOD}\n${path}\n${timestamp}\n${body}` where path includes the query string and timestamp is
 * Unix seconds. Headers: x-q3-timestamp, x-q3-signature (lowercase hex). A signature older or newer than
 * MAX_SKEW_S is refused, so a captured request cannot be replayed later.
 */

export const TIMESTAMP_HEADER = 'x-q3-timestamp';
export const SIGNATURE_HEADER = 'x-q3-signature';
export const MAX_SKEW_S = 60;

export interface SignedParts {
  method: string;
  path: string;        // pathname + search, e.g. "/v1/generate"
  body: string;        // exact bytes sent, as text ("" for GET)
}

export type Verdict = { ok: true } | { ok: false; reason: string };

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    keys.set(secret, key);
    const imported = key;
    // a failed import (where the platform refused it, say) is not kept: the next call imports again
    imported.catch(() => keys.get(secret) === imported && keys.delete(secret));
  }
  return key;
}

function signedBytes(parts: SignedParts, timestamp: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${parts.method.toUpperCase()}\n${parts.path}\n${timestamp}\n${parts.body}`);
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** Lower-case hex of the bytes (every request's signature; the edge's key hashes and request ids too). */
export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let hex = '';
  for (const b of view) hex += HEX[b];
  return hex;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[0-9a-f]{64}$/i.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Headers to add to a request; `nowS` (Unix seconds) is for tests. */
export async function signRequest(secret: string, parts: SignedParts, nowS = Math.floor(Date.now() / 1000)) {
  const timestamp = String(nowS);
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), signedBytes(parts, timestamp));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: toHex(mac) };
}

/** Checks the two headers; crypto.subtle.verify compares MACs in constant time. */
export async function verifyRequest(
  secret: string,
  parts: SignedParts,
  timestamp: string | null | undefined,
  signature: string | null | undefined,
  nowS = Math.floor(Date.now() / 1000),
): Promise<Verdict> {
  if (!timestamp || !signature) return { ok: false, reason: `missing ${TIMESTAMP_HEADER} or ${SIGNATURE_HEADER}` };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `malformed ${TIMESTAMP_HEADER}` };
  if (Math.abs(nowS - Number(timestamp)) > MAX_SKEW_S) return { ok: false, reason: 'stale or future timestamp' };
  const mac = fromHex(signature);
  if (!mac) return { ok: false, reason: `malformed ${SIGNATURE_HEADER}` };
  const good = await crypto.subtle.verify('HMAC', await hmacKey(secret), mac, signedBytes(parts, timestamp));
  return good ? { ok: true } : { ok: false, reason: 'signature mismatch' };
}
