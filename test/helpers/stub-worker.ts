/**
 * Test helper: a stub GPU worker on loopback speaking gpu-worker/protocol.ts, for the faults and outputs a real worker
 * cannot be made to produce on demand (garbage frames, a death mid-stream, silence, out-of-vocabulary token ids,
 * scripted tool calls). It verifies the edge's HMAC signature, records every request, answers GET /ready (200 unless
 * told otherwise), and can stop listening and listen again on the same port (a worker restart). Not a test file.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getTokenizer } from '../../edge/tokenizer/index.js';
import type { GenerateEvent, GenerateRequest } from '../../gpu-worker/protocol.ts';
import { verifyRequest } from '../../gpu-worker/signing.ts';

export const STUB_SECRET = 'stub-secret';

export type Behaviour = (req: GenerateRequest, res: ServerResponse, incoming: IncomingMessage) => void | Promise<void>;

export type Stub = {
  url: string;
  requests: GenerateRequest[];
  /** responses the edge closed before they ended */
  closedEarly: number;
  /** GET /ready calls answered */
  readyProbes: number;
  /** what GET /ready answers (200 ready, 503 loading / draining; 0: never answers) */
  readyStatus: number;
  /** the context GET /ready publishes (`max_context`, tokens); unset: null, as a worker still loading */
  maxContext?: number;
  behaviour: Behaviour;
  /** stops listening and drops every connection (a dead worker: connections are refused) */
  stop(): Promise<void>;
  /** listens again on the same port */
  restart(): Promise<void>;
  close(): Promise<void>;
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const started: Stub[] = [];

/** Closes every stub this test file started (call it from afterAll). */
export const closeStubs = () => Promise.all(started.splice(0).map((s) => s.close()));

export async function stubWorker(behaviour: Behaviour, secret = STUB_SECRET): Promise<Stub> {
  const stub: Stub = {
    url: '', requests: [], closedEarly: 0, readyProbes: 0, readyStatus: 200, behaviour,
    stop: async () => {}, restart: async () => {}, close: async () => {},
  };
  const server = createServer(async (incoming, res) => {
    if (incoming.method === 'GET' && incoming.url === '/ready') {
      stub.readyProbes++;
      if (stub.readyStatus === 0) return;
      return void res.writeHead(stub.readyStatus, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: stub.readyStatus === 200, max_context: stub.maxContext ?? null }));
    }
    let body = '';
    for await (const chunk of incoming) body += chunk;
    const verdict = await verifyRequest(secret, { method: 'POST', path: incoming.url!, body }, incoming.headers['x-q3-timestamp'] as string, incoming.headers['x-q3-signature'] as string);
    if (!verdict.ok) return void res.writeHead(401).end();
    const req = JSON.parse(body) as GenerateRequest;
    stub.requests.push(req);
    res.on('close', () => !res.writableFinished && stub.closedEarly++);
    await stub.behaviour(req, res, incoming);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  stub.url = `http://127.0.0.1:${port}`;
  stub.stop = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  stub.restart = () => new Promise((r) => server.listen(port, '127.0.0.1', () => r()));
  stub.close = () => (server.listening ? stub.stop() : Promise.resolve());
  started.push(stub);
  return stub;
}

export const sse = (res: ServerResponse, event: GenerateEvent | string) => res.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
export const openStream = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' });

/** Streams each piece as one frame of token ids (raw ids as given, text encoded), then the final frame. */
export function scripted(pieces: (string | number[])[], options: { delayMs?: number; finish?: 'stop' | 'length' | 'cancelled' } = {}): Behaviour {
  const tok = getTokenizer();
  return async (req, res) => {
    openStream(res);
    let count = 0;
    for (const piece of pieces) {
      const tokens = typeof piece === 'string' ? tok.encode(piece) : piece;
      count += tokens.length;
      if (res.destroyed) return;
      sse(res, { tokens });
      if (options.delayMs) await sleep(options.delayMs);
    }
    if (res.destroyed) return;
    sse(res, { tokens: [], finish_reason: options.finish ?? 'stop', usage: { prompt_tokens: req.prompt.length, completion_tokens: count + 1, cached_tokens: 3 } });
    res.end();
  };
}

/** A JSON error answer (`{"error": …}`) with the given status and headers. */
export const errorReply = (status: number, error: Record<string, unknown>, headers: Record<string, string> = {}): Behaviour => (_, res) =>
  void res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ error }));
