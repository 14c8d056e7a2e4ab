// POST /fleet/heartbeat: a GPU worker announces itself (gpu-worker/heartbeat.ts). The request is signed with the
// workers' secret exactly like the edge's own requests to them (gpu-worker/signing.ts), validated against
// gpu-worker/protocol.ts, and recorded in the fleet registry (edge/fleet.ts); the answer says how often to beat and
// how long to keep serving after leaving. Only holders of WORKER_SECRET can join: a member receives prompts.
import { Hono } from 'hono';
import type { EdgeEnv } from '../edge-env.ts';
import { apiError, invalidRequest } from '../errors.ts';
import { bodyLimit } from '../middleware/body-limit.ts';
import { fleetStub } from '../platform.ts';
import { HEARTBEAT_PATH, paramName } from '../../gpu-worker/protocol-basics.ts';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyRequest } from '../../gpu-worker/signing.ts';

const MAX_HEARTBEAT_BYTES = 16 * 1024;

export function fleetRoutes(): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.use(HEARTBEAT_PATH, bodyLimit(() => MAX_HEARTBEAT_BYTES));
  app.post(HEARTBEAT_PATH, async function heartbeat(c) {
    const fleet = c.env?.FLEET;
    const secret = c.var.config.workerSecret;
    if (!fleet) throw apiError(404, 'Fleet membership is off: the edge has no FLEET Durable Object binding.', { code: 'membership_off' });
    if (!secret) throw apiError(403, 'Fleet membership needs WORKER_SECRET: heartbeats are signed with it.', { code: 'membership_unsigned' });
    const body = await c.req.text();
    const verdict = await verifyRequest(
      secret, { method: 'POST', path: new URL(c.req.url).pathname, body }, c.req.header(TIMESTAMP_HEADER), c.req.header(SIGNATURE_HEADER),
    );
    if (!verdict.ok) throw apiError(401, `Heartbeat refused: ${verdict.reason}.`, { type: 'authentication_error', code: 'invalid_signature' });
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw invalidRequest('The heartbeat is not JSON.');
    }
    // zod is loaded when the first heartbeat comes, not at isolate start (workers beat every few seconds; clients wait on start-up)
    const { HeartbeatSchema } = await import('../../gpu-worker/protocol.ts');
    const parsed = HeartbeatSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw invalidRequest(`${paramName(issue.path) ?? 'body'}: ${issue.message}`, paramName(issue.path));
    }
    const beat = { ...parsed.data, url: parsed.data.url.replace(/\/+$/, '') };
    const { accepted, ack } = await fleetStub(fleet).heartbeat(beat, c.var.config.membership);
    return c.json({ ...ack, accepted });
  });
  return app;
}
