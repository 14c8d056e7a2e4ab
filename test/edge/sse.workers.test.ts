// ChunkStream (edge/sse.ts) in workerd, whose body is the runtime's native IdentityTransformStream, not Node's
// TransformStream: the cases of helpers/chunk-stream-cases.ts (edge/sse.test.ts runs them in Node), among them a body
// cancelled while nothing is written, which workerd reports to the writer only at a write (the keep-alive's).
import { expect, it } from 'vitest';
import { ChunkStream } from '../../edge/sse.ts';
import { chunkStreamCases } from '../helpers/chunk-stream-cases.ts';

it('Should give the response the native body here (IdentityTransformStream), not a stream of JavaScript', () => {
  const Identity = (globalThis as { IdentityTransformStream?: unknown }).IdentityTransformStream;
  expect(typeof Identity).toBe('function');
  const stream = new ChunkStream({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm' }, false, 10_000);
  // a native body reads into a buffer of the reader's own (BYOB), which a ReadableStream of JavaScript's own refuses
  expect(() => stream.body.getReader({ mode: 'byob' })).not.toThrow();
  stream.close();
});

chunkStreamCases('in workerd');
