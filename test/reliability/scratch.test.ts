import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEdge, MODEL, type EdgeStack } from '../helpers/edge-stack.ts';
import { scripted, sleep, STUB_SECRET, stubWorker, type Stub } from '../helpers/stub-worker.ts';

let edge: EdgeStack;
let stub: Stub;
beforeAll(async () => {
  stub = await stubWorker(async (req, res, inc) => {
    await sleep(1500);
    return scripted(['hello', ' world'], { delayMs: 50 })(req, res, inc);
  });
  edge = await startEdge([stub.url], STUB_SECRET);
});
afterAll(async () => { await edge?.dispose(); await stub?.close(); });

it('abort before first token', async () => {
  const { key, id } = await edge.createKey('scratch');
  const results: string[] = [];
  await Promise.all(Array.from({ length: 8 }, async (_, i) => {
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 300 + i * 10);
    try {
      const res = await edge.post(key, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: `hi ${i}` }], stream: i % 2 === 0, reasoning_effort: 'none' }, { signal: ctrl.signal, headers: { 'x-request-id': `scratch-${i}-${i % 2 === 0 ? 'stream' : 'json'}` } });
      results.push(`status ${res.status}`);
      await res.text();
    } catch (e) { results.push(`aborted ${(e as Error).name}`); }
  }));
  console.log(results);
  for (let t = 0; t < 20; t++) {
    await sleep(500);
    const recs = await edge.usageRecords(id);
    const k = await edge.key(id);
    console.log(`t=${t} records=${recs.length} in_flight=${k.in_flight} closedEarly=${stub.closedEarly}`, recs.map((r) => `${r.status}/${r.http_status}`).join(','));
    if (recs.length === 8 && k.in_flight === 0) break;
  }
});
