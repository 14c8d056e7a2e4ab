// The streaming hot path's own pieces, in Node: ChunkStream with a ReadableStream of its own as the body (the cases of
// helpers/chunk-stream-cases.ts; edge/sse.workers.test.ts runs them in workerd), and the worker frames read off their bytes (token frames in the worker's exact form, split anywhere between reads,
// give the same events as the general parser; anything else, a character split between reads included, still
// parses or is refused as before).
import { afterAll, describe, expect, it } from 'vitest';
import { UpstreamPool } from '../../edge/upstream.ts';
import { chunkStreamCases } from '../helpers/chunk-stream-cases.ts';
import { closeStubs, openStream, sleep, STUB_SECRET, stubWorker, type Behaviour } from '../helpers/stub-worker.ts';

afterAll(closeStubs);

chunkStreamCases('a ReadableStream of its own');

describe('worker frames read off their bytes', () => {
  const request = { request_id: 'bytes', prompt: [1, 2, 3], max_tokens: 8, sampling: { temperature: 0 }, stop_token_ids: [] };
  /** The events a stub worker's body gives, written in these pieces, each read on its own. */
  const events = async (pieces: (string | Uint8Array)[]) => {
    const behaviour: Behaviour = async (_, res) => {
      openStream(res);
      for (const piece of pieces) {
        res.write(piece);
        await sleep(15);
      }
      res.end();
    };
    const seen: unknown[] = [];
    try {
      const stream = await new UpstreamPool({ urls: [(await stubWorker(behaviour)).url], secret: STUB_SECRET, timeoutMs: 5000 }).generate(request);
      for (let event; (event = await stream.next()); ) seen.push(event);
    } catch (err) {
      seen.push((err as Error).message);
    }
    return seen;
  };
  const usage = { prompt_tokens: 3, completion_tokens: 3, cached_tokens: 0 };
  const body = 'data: {"tokens":[151935]}\n\ndata: {"tokens":[0,12,345]}\n\n' + `data: ${JSON.stringify({ tokens: [], finish_reason: 'stop', usage })}\n\n`;

  it('Should read token frames split anywhere between reads as the frames they are', async () => {
    for (const cut of [3, 18, 22, 27, 29, 40, 55]) {
      const seen = await events([body.slice(0, cut), body.slice(cut)]);
      expect(seen.flatMap((e) => (e as { tokens: number[] }).tokens), `cut at ${cut}`).toEqual([151935, 0, 12, 345]);
      expect(seen.at(-1), `cut at ${cut}`).toMatchObject({ finish_reason: 'stop', usage });
    }
  });

  it('Should leave frames of any other form to the general parser: spaces, CRLF, a character split between reads, and refuse the malformed', async () => {
    expect(await events(['data: {"tokens": [5, 6]}\n\n', 'data: {"tokens":[7]}\r\n\r\n', body.slice(body.indexOf('data: {"tokens":[]')) ])).toEqual([
      { tokens: [5, 6] }, { tokens: [7] }, { tokens: [], finish_reason: 'stop', usage },
    ]);
    const error = new TextEncoder().encode(`data: {"tokens":[9]}\n\nevent: error\ndata: ${JSON.stringify({ error: { message: 'défaut', type: 'server_error' } })}\n\n`);
    const split = error.indexOf(0xc3) + 1; // between the two bytes of 'é'
    expect(await events([error.slice(0, split), error.slice(split)])).toEqual([{ tokens: [9] }, 'défaut']);
    for (const frame of ['{"tokens":[01]}', '{"tokens":[-1]}', '{"tokens":[151936]}', '{"tokens":[1234567]}', '{"tokens":[1,]}']) {
      const [error] = await events([`data: ${frame}\n\n`]);
      expect(error, frame).toMatch(/not JSON|outside the model's vocabulary|outside the protocol/);
    }
  });
});
