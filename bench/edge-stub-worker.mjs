// A stand-in GPU worker for the edge's benchmarks: answers every POST /v1/generate at once with a few tokens and a
// stop (the frames gpu-worker/http.ts writes), and GET /ready as a worker with a 40,960-token context.
import { createServer } from 'node:http';

/** Listens on a free loopback port; `url` is its base URL, `close()` stops it. */
export async function startStubWorker() {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/ready') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ready":true,"max_context":40960}');
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ tokens: [54, 4693, 11, 6785, 13] })}\n\n`);
      res.end(`data: ${JSON.stringify({ tokens: [151645], finish_reason: 'stop', usage: { prompt_tokens: 30, completion_tokens: 6, cached_tokens: 0 } })}\n\n`);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
