-- One row per request that reached the model (or was answered from the response cache). `id` is the edge's own
-- per-request id and makes the write idempotent (INSERT ... ON CONFLICT DO NOTHING); `request_id` is the
-- x-request-id the client saw, which a client may choose and so cannot be the key. Times are Unix ms; day is the
-- UTC date the request started.
-- edge/usage.ts runs the same statements (CREATE ... IF NOT EXISTS) only when a query finds no table (a database this
-- migration never ran on); test/edge/usage-schema.test.ts keeps the two equal.
CREATE TABLE IF NOT EXISTS usage (
  id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  model TEXT NOT NULL,
  mode TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  status TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  from_cache INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_key_day ON usage (key_id, day);
CREATE INDEX IF NOT EXISTS usage_tenant_day ON usage (tenant, day);
CREATE INDEX IF NOT EXISTS usage_started_at ON usage (started_at);
