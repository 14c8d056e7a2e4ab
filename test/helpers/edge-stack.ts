/**
 * Test helper: the edge in workerd exactly as `wrangler dev` runs it (wrangler's unstable_startWorker on
 * wrangler.toml: the accounts layer with local KV, Durable Objects, D1 and Cache), pointed at the given worker URLs,
 * plus what tests do through its admin API: create keys, read a key's usage records and in-flight count. Not a test
 * file.
 */
import { unstable_startWorker } from 'wrangler';

export const ADMIN_TOKEN = 'adm-test-stack-token';
export const MODEL = 'qwen3-8b-awq';

export type Json = Record<string, any>;

export interface EdgeStack {
  url: string;
  /** a fetch against the edge with a Bearer key */
  post(key: string, path: string, body: unknown, init?: RequestInit): Promise<Response>;
  createKey(tenant: string, limits?: Json): Promise<{ key: string; id: string }>;
  usageRecords(keyId: string): Promise<Json[]>;
  key(keyId: string): Promise<Json>;
  workers(): Promise<Json[]>;
  dispose(): Promise<void>;
}

/** Starts the edge; `vars` become [vars] bindings (WORKER_URLS, REQUEST_TIMEOUT_MS, …). */
export async function startEdge(workerUrls: string[], secret: string, vars: Record<string, string> = {}): Promise<EdgeStack> {
  const bindings: Record<string, { type: 'plain_text' | 'secret_text'; value: string }> = {
    WORKER_URLS: { type: 'plain_text', value: workerUrls.join(',') },
    WORKER_SECRET: { type: 'secret_text', value: secret },
    ADMIN_TOKEN: { type: 'secret_text', value: ADMIN_TOKEN },
  };
  for (const [name, value] of Object.entries(vars)) bindings[name] = { type: 'plain_text', value };
  const edge = await unstable_startWorker({
    config: 'wrangler.toml',
    bindings,
    dev: { server: { hostname: '127.0.0.1', port: 0 }, inspector: false, persist: false, watch: false, remote: false, logLevel: (process.env.EDGE_LOG_LEVEL as 'warn') ?? 'warn' },
  });
  await edge.ready;
  const url = new URL(await edge.url).origin;
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(url + path, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
  return {
    url,
    post: (key, path, body, init = {}) =>
      fetch(url + path, {
        method: 'POST', ...init,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    async createKey(tenant, limits) {
      const res = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ tenant, name: tenant, limits }) });
      if (res.status !== 201) throw new Error(`creating a key failed: ${res.status} ${await res.text()}`);
      const { key, id } = (await res.json()) as Json;
      return { key, id };
    },
    async usageRecords(keyId) {
      const records: Json[] = [];
      let after = '';
      for (;;) {
        const page = (await (await admin(`/admin/usage?key_id=${keyId}&limit=1000${after ? `&after=${after}` : ''}`)).json()) as Json;
        records.push(...page.data);
        if (!page.next_cursor) return records;
        after = page.next_cursor;
      }
    },
    key: async (keyId) => (await (await admin(`/admin/keys/${keyId}`)).json()) as Json,
    workers: async () => ((await (await admin('/admin/workers')).json()) as Json).data,
    dispose: () => edge.dispose(),
  };
}
