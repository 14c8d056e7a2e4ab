// (helper) ChunkStream's cases (edge/sse.ts), run in Node by edge/sse.test.ts and in workerd by edge/sse.workers.test.ts
// (each runtime's own ReadableStream implementation under the body): the frames
// choiceBodies() writes are byte-for-byte those chunks() writes for the same choice objects; a write waits while the
// client has not taken the frames before it and goes on once it has; a client that keeps reading makes no write wait;
// a client that takes nothing for the stall time or cancels the body is gone, and nothing is written after.
import { describe, expect, it } from 'vitest';
import { deltaJson, type ChatDelta } from '../../edge/routes/chat-completions.ts';
import { ChunkStream } from '../../edge/sse.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk' as const, created: 7, model: 'qwen3-8b-awq' };
const decoder = new TextDecoder();
const body = (text: string) => `"delta":{"content":"${text}"},"logprobs":null,"finish_reason":null}`;

/** Writes through `write`, then closes the stream; what the client read, the client reading all along. */
async function written(stream: ChunkStream, write: () => Promise<void> | undefined): Promise<string> {
  const text = new Response(stream.body).text();
  await write();
  stream.close();
  return text;
}

export function chunkStreamCases(kind: string): void {
  describe(`ChunkStream, its body ${kind}`, () => {
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

    it('Should make a write wait while the client has not taken the frames before, and go on once it has', async () => {
      const stream = new ChunkStream(base, false, 10_000);
      const reader = stream.body.getReader();
      await sleep(5); // started, as a body is by the time a route writes its first chunk
      // nobody reads: the first frame that stays in the body makes its write wait
      const writes = ['a', 'b'].map((text) => stream.choiceBodies(0, [body(text)]));
      const waiting = writes.find((w) => w !== undefined);
      expect(waiting).toBeInstanceOf(Promise);
      let resumed = false;
      void waiting!.then(() => (resumed = true));
      await sleep(30);
      expect(resumed).toBe(false);
      // the client reads on, as the runtime's pump of a response body does (workerd asks for more on a read that
      // finds the body empty, Node as soon as there is room)
      let read = '';
      while (!read.includes('"content":"b"')) read += decoder.decode((await reader.read()).value);
      expect(read).toMatch(/"content":"a".*"content":"b"/s);
      let next = reader.read();
      await sleep(10);
      expect(resumed).toBe(true);
      // a client that keeps reading: no write waits
      for (const text of ['c', 'd', 'e', 'f']) {
        expect(stream.choiceBodies(0, [body(text)])).toBeUndefined();
        expect(decoder.decode((await next).value)).toContain(`"content":"${text}"`);
        next = reader.read();
        await sleep(5);
      }
      expect(stream.clientGone).toBe(false);
      stream.close();
      expect((await next).done).toBe(true);
    });

    it('Should treat a client that takes nothing for the stall time as gone, and one that cancels', async () => {
      const stalled = new ChunkStream(base, false, 60);
      const gone = new Promise((resolve) => stalled.signal.addEventListener('abort', resolve));
      for (const text of ['a', 'b', 'c']) void stalled.choiceBodies(0, [body(text)]);
      await gone;
      expect(stalled.clientGone).toBe(true);
      expect(String((stalled.signal.reason as Error).message)).toMatch(/read nothing for 60 ms/);

      // a cancelled body: gone at once, before anything more is written
      const cancelled = new ChunkStream(base, false, 10_000);
      await cancelled.body.cancel();
      expect(cancelled.clientGone).toBe(true);
      expect(cancelled.signal.aborted).toBe(true);
      expect(cancelled.choiceBodies(0, [body('x')])).toBeUndefined();
    });
  });
}
