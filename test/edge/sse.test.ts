// The streaming hot path's own pieces, in Node: the frames ChunkStream writes (the per-token way, choiceBodies(),
// byte-for-byte what chunks() writes for the same choice objects), its backpressure (a write waits while the client
// has not taken the frame before, and goes on once it has; a client that takes nothing for the stall time is gone),
// and the worker frames read off their bytes (token frames in the worker's exact form, split anywhere between reads,
// give the same events as the general parser; anything else, a character split between reads included, still
// parses or is refused as before).
import { afterAll, describe, expect, it } from 'vitest';
import { deltaJson, type ChatDelta } from '../../edge/routes/chat-completions.ts';
import { ChunkStream } from '../../edge/sse.ts';
import { UpstreamPool } from '../../edge/upstream.ts';
import { closeStubs, openStream, sleep, STUB_SECRET, stubWorker, type Behaviour } from '../helpers/stub-worker.ts';

afterAll(closeStubs);

const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk' as const, created: 7, model: 'qwen3-8b-awq' };
const decoder = new TextDecoder();

/** Writes through `write`, then closes the stream; what the client read, the client reading all along. */
async function written(stream: ChunkStream, write: () => Promise<void> | undefined): Promise<string> {
  const text = new Response(stream.body).text();
  await write();
  stream.close();
  return text;
}

describe('ChunkStream frames', () => {
  const deltas: ChatDelta[] = [
    { content: 'Hello "world"\n' },
    { reasoning_content: 'é \u2028 \\', reasoning: 'é \u2028 \\' },
    { content: '' },
    { role: 'assistant', content: '' },
    { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f' } }] },
    { reasoning_content: 'a', reasoning: 'b' },
    { content: 'x', reasoning_content: 'y' },
  ];

  it('Should write each delta as JSON.stringify writes it', () => {
    for (const delta of deltas) expect(deltaJson(delta)).toBe(JSON.stringify(delta));
  });

  it.each([false, true])('Should write the same bytes through choiceBodies() as chunks() writes for the same choices (include_usage %s)', async (includeUsage) => {
    const choices = deltas.map((delta) => ({ index: 3, delta, logprobs: delta.content === 'x' ? { content: [], refusal: null } : null, finish_reason: null }));
    const generic = new ChunkStream(base, includeUsage, 10_000);
    const fast = new ChunkStream(base, includeUsage, 10_000);
    const bodies = choices.map(({ delta, logprobs }) => `"delta":${deltaJson(delta)},"logprobs":${JSON.stringify(logprobs)},"finish_reason":null}`);
    const text = await written(fast, () => fast.choiceBodies(3, bodies));
    expect(text).toBe(await written(generic, () => generic.chunks(choices)));
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames).toHaveLength(deltas.length);
    for (const [i, frame] of frames.entries()) {
      expect(JSON.parse(frame.slice('data: '.length))).toEqual({ ...base, choices: [choices[i]], ...(includeUsage ? { usage: null } : {}) });
    }
  });

  it('Should make a write wait while the client has not taken the frame before, and go on once it has', async () => {
    const stream = new ChunkStream(base, false, 10_000);
    const reader = stream.body.getReader();
    const first = stream.choiceBodies(0, ['"delta":{"content":"a"},"logprobs":null,"finish_reason":null}']);
    expect(first).toBeInstanceOf(Promise); // nobody has read yet: the frame waits in the body
    let resumed = false;
    void first!.then(() => (resumed = true));
    await sleep(20);
    expect(resumed).toBe(false);
    expect(decoder.decode((await reader.read()).value)).toContain('"content":"a"');
    await sleep(0);
    expect(resumed).toBe(true);
    // a client that keeps reading: nothing to wait for
    const pending = reader.read();
    expect(stream.choiceBodies(0, ['"delta":{"content":"b"},"logprobs":null,"finish_reason":null}'])).toBeUndefined();
    expect(decoder.decode((await pending).value)).toContain('"content":"b"');
    // and again after that: the stream keeps asking for frames as they are taken
    for (const text of ['c', 'd', 'e']) {
      const written = stream.choiceBodies(0, [`"delta":{"content":"${text}"},"logprobs":null,"finish_reason":null}`]);
      expect(decoder.decode((await reader.read()).value)).toContain(`"content":"${text}"`);
      await written;
    }
    expect(stream.clientGone).toBe(false);
    stream.close();
  });

  it('Should treat a client that takes nothing for the stall time as gone, and one that cancels', async () => {
    const stalled = new ChunkStream(base, false, 60);
    const gone = new Promise((resolve) => stalled.signal.addEventListener('abort', resolve));
    void stalled.choiceBodies(0, ['"delta":{"content":"a"},"logprobs":null,"finish_reason":null}']);
    await gone;
    expect(stalled.clientGone).toBe(true);
    expect(String((stalled.signal.reason as Error).message)).toMatch(/read nothing for 60 ms/);

    const cancelled = new ChunkStream(base, false, 10_000);
    await cancelled.body.cancel();
    expect(cancelled.clientGone).toBe(true);
    expect(cancelled.choiceBodies(0, ['"delta":{},"logprobs":null,"finish_reason":null}'])).toBeUndefined();
  });
});

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
