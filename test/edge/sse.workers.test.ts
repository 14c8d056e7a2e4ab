// ChunkStream (edge/sse.ts) in workerd, whose ReadableStream is the runtime's implementation, not Node's: the cases of
// helpers/chunk-stream-cases.ts (edge/sse.test.ts runs them in Node), the backpressure of a body whose pull stays
// pending until a write has to wait included.
import { chunkStreamCases } from '../helpers/chunk-stream-cases.ts';

chunkStreamCases('in workerd');
