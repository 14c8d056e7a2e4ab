// GET /v1/models and GET /v1/models/:id: the one served model, in OpenAI's list shape (plus vLLM's max_model_len, as the workers report it).
import { Hono } from 'hono';
import type { EdgeConfig, EdgeEnv } from '../edge-env.ts';
import { largestContext } from '../platform.ts';
import { modelNotFound } from '../errors.ts';

/** Stable `created` for the listing (Unix seconds of the Qwen3 release, 2025-04-29). */
const CREATED_S = 1_745_884_800;

/** max_model_len: the largest context among the workers (null while none has said) */
function modelCard(config: EdgeConfig, maxModelLen: number | undefined) {
  return { id: config.modelId, object: 'model', created: CREATED_S, owned_by: 'qwen3-serve', max_model_len: maxModelLen ?? null };
}

export function modelsRoute(): Hono<EdgeEnv> {
  const app = new Hono<EdgeEnv>();
  app.get('/v1/models', async function listModels(c) {
    return c.json({ object: 'list', data: [modelCard(c.var.config, await largestContext(c))] });
  });
  app.get('/v1/models/:id{.+}', async function retrieveModel(c) {
    const id = c.req.param('id');
    if (id !== c.var.config.modelId) throw modelNotFound(id);
    return c.json(modelCard(c.var.config, await largestContext(c)));
  });
  return app;
}
