// The Kubernetes manifests (deploy/k8s) against the worker's real configuration, so neither can drift from the other:
// every environment variable the Deployment sets is one gpu-worker/index.ts reads, the probes' paths are routes of
// the worker's HTTP app (readiness /ready, liveness /health), ports agree across container, env, Service, probes and
// scrape annotation, the grace period covers the leave the edge asks for plus SHUTDOWN_GRACE_MS plus the heartbeat's
// own timeout, the model is mounted read-only where MODEL_DIR points, the secret comes from a Secret, a GPU is
// requested, and the KEDA query uses only metrics the worker exports, for this namespace and Deployment. Broken copies
// of the manifests show that each kind of drift is caught.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unstable_readConfig } from 'wrangler';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { heartbeatAck } from '../../edge/fleet-records.ts';
import { SEND_TIMEOUT_MS } from '../../gpu-worker/heartbeat.ts';
import { createApp, type WorkerState } from '../../gpu-worker/http.ts';
import { renderMetrics, WorkerMetrics } from '../../gpu-worker/metrics.ts';
import { root } from '../gpu-worker/worker-process.ts';

type Json = Record<string, any>;
const DIR = join(root, 'deploy/k8s');

/** The kustomization and every object of the files it lists. */
function loadManifests(): { kustomization: Json; objects: Json[] } {
  const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0].toJS() as Json;
  const objects = (kustomization.resources as string[]).flatMap((file) =>
    parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => doc.toJS() as Json));
  return { kustomization, objects };
}

/** Environment variables gpu-worker/index.ts reads (env.X, or through its int()/num() helpers). */
function workerEnvNames(): Set<string> {
  const source = readFileSync(join(root, 'gpu-worker/index.ts'), 'utf8');
  return new Set([...source.matchAll(/\benv\.([A-Z_]+)|\b(?:int|num)\('([A-Z_]+)'/g)].map((m) => m[1] ?? m[2]));
}

/** Metric names the worker's GET /metrics exposes (from its own renderer). */
function workerMetricNames(): Set<string> {
  const g = { running: 1, waiting: 1, kvBlocksUsed: 1, kvBlocksTotal: 2, kvBlocksCached: 0, prefixQueriedTokens: 0, prefixHitTokens: 0, maxBatch: 64, draining: false };
  const text = renderMetrics('m', new WorkerMetrics(), g);
  return new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
}

/** The worker's HTTP app before its model is loaded: which paths exist at all. */
async function workerRoutes(paths: string[]): Promise<Map<string, number>> {
  const state: WorkerState = { modelName: 'm', metrics: new WorkerMetrics(), secret: 's', load: { stage: 'starting', fraction: 0 } };
  const app = createApp(state);
  return new Map(await Promise.all(paths.map(async (p) => [p, (await app.request(p)).status] as const)));
}

/** The edge's production settings, which decide how long a leaving worker keeps serving. */
function edgeLeaveMs(): number {
  const vars = unstable_readConfig({ config: join(root, 'wrangler.toml'), env: 'production' }, { hideWarnings: true }).vars as Record<string, string>;
  return heartbeatAck({ ttlMs: Number(vars.MEMBER_TTL_MS), refreshMs: Number(vars.MEMBERSHIP_REFRESH_MS) }).leave_ms;
}

const ms = (value: string | undefined, fallback: number) => (value === undefined ? fallback : Number(value));

/** Every way the manifests disagree with the worker, one message each. */
async function problems(kustomization: Json, objects: Json[]): Promise<string[]> {
  const out: string[] = [];
  const deployment = objects.find((o) => o.kind === 'Deployment');
  const service = objects.find((o) => o.kind === 'Service');
  const scaled = objects.find((o) => o.kind === 'ScaledObject');
  const claim = objects.find((o) => o.kind === 'PersistentVolumeClaim');
  if (!deployment || !service || !scaled || !claim) return ['missing Deployment, Service, ScaledObject or PersistentVolumeClaim'];
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const env = new Map<string, Json>((container.env ?? []).map((e: Json) => [e.name, e]));
  const value = (name: string) => env.get(name)?.value as string | undefined;

  // environment: only names the worker reads (POD_NAME only feeds $(POD_NAME) in another value)
  const known = workerEnvNames();
  for (const name of env.keys()) {
    const referenced = [...env.values()].some((e) => typeof e.value === 'string' && e.value.includes(`$(${name})`));
    if (!known.has(name) && !referenced) out.push(`env ${name} is not read by gpu-worker/index.ts`);
  }
  for (const name of ['EDGE_URL', 'PUBLIC_URL', 'WORKER_SECRET', 'MODEL_DIR']) if (!env.has(name)) out.push(`env ${name} is not set`);
  if (value('HOST') !== '0.0.0.0') out.push('HOST must be 0.0.0.0: the worker listens on loopback otherwise');
  if (value('DEVICE') !== 'cuda') out.push('DEVICE must be cuda on a GPU pod');

  // secret from a Secret, never a literal
  const secret = env.get('WORKER_SECRET');
  if (secret && (secret.value !== undefined || !secret.valueFrom?.secretKeyRef?.name || !secret.valueFrom.secretKeyRef.key)) {
    out.push('WORKER_SECRET must come from a Secret (valueFrom.secretKeyRef)');
  }

  // ports: env PORT, container port, probes, Service, scrape annotation
  const port = Number(value('PORT') ?? 8790);
  const http = (container.ports ?? []).find((p: Json) => p.name === 'http');
  if (http?.containerPort !== port) out.push(`container port "http" (${http?.containerPort}) is not the worker's PORT ${port}`);
  // a deployed edge reaches workers by host name over HTTPS on port 443 only (README "Deployment")
  const publicUrl = new URL(value('PUBLIC_URL')?.replace(/\$\([A-Z_]+\)/g, 'pod') ?? 'http://unset');
  if (publicUrl.protocol !== 'https:' || publicUrl.port !== '' || /^[\d.]+$/.test(publicUrl.hostname)) out.push('PUBLIC_URL is not an https host name on port 443');
  if (service.spec.ports[0].targetPort !== 'http' && service.spec.ports[0].targetPort !== port) out.push('Service targetPort is not the worker port');
  if (Number(pod.metadata.annotations?.['prometheus.io/port']) !== port) out.push('prometheus.io/port is not the worker port');
  for (const selectorKey of Object.keys(service.spec.selector)) {
    if (pod.metadata.labels[selectorKey] !== service.spec.selector[selectorKey]) out.push('Service selector does not match the pods');
  }

  // probes: readiness /ready, liveness /health, both real routes on the named port
  const ready = container.readinessProbe?.httpGet;
  const live = container.livenessProbe?.httpGet;
  if (ready?.path !== '/ready') out.push(`readiness probe path ${ready?.path} is not /ready`);
  if (live?.path !== '/health') out.push(`liveness probe path ${live?.path} is not /health`);
  const routes = await workerRoutes([ready?.path, live?.path, pod.metadata.annotations?.['prometheus.io/path']].filter(Boolean));
  for (const [path, status] of routes) if (status === 404) out.push(`the worker has no route ${path}`);
  for (const probe of [ready, live]) if (probe && probe.port !== 'http' && probe.port !== port) out.push(`probe ${probe.path} uses another port`);

  // grace: leave (heartbeat answered within SEND_TIMEOUT_MS, then the edge's leave time) + drain must fit
  const graceMs = ms(value('SHUTDOWN_GRACE_MS'), 30_000);
  const neededMs = SEND_TIMEOUT_MS + edgeLeaveMs() + graceMs;
  const terminationMs = (pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  if (terminationMs <= neededMs) out.push(`terminationGracePeriodSeconds ${terminationMs / 1000} s does not exceed leave + SHUTDOWN_GRACE_MS (${neededMs / 1000} s)`);

  // model: read-only, where MODEL_DIR points, from a read-only claim
  const mount = (container.volumeMounts ?? []).find((m: Json) => m.mountPath === value('MODEL_DIR'));
  const volume = (pod.spec.volumes ?? []).find((v: Json) => v.name === mount?.name);
  if (!mount || mount.readOnly !== true) out.push('the model is not mounted read-only at MODEL_DIR');
  if (volume?.persistentVolumeClaim?.claimName !== claim.metadata.name || volume.persistentVolumeClaim.readOnly !== true) out.push('the model volume is not the read-only claim');
  if (!claim.spec.accessModes.includes('ReadOnlyMany')) out.push('the model claim is not ReadOnlyMany');

  // GPU
  if (!(Number(container.resources?.limits?.['nvidia.com/gpu']) >= 1)) out.push('no nvidia.com/gpu limit');

  // autoscaler: the Deployment, this namespace, the worker's own metric names
  if (scaled.spec.scaleTargetRef.name !== deployment.metadata.name) out.push('the ScaledObject scales another Deployment');
  const exported = workerMetricNames();
  for (const trigger of scaled.spec.triggers) {
    const query: string = trigger.metadata.query;
    for (const name of query.match(/\b(?:vllm:|q3_)[a-z_:]+/g) ?? []) if (!exported.has(name)) out.push(`the query uses ${name}, which the worker does not export`);
    for (const ns of query.matchAll(/namespace="([^"]+)"/g)) if (ns[1] !== kustomization.namespace) out.push(`the query reads namespace ${ns[1]}, not ${kustomization.namespace}`);
    for (const re of query.matchAll(/pod=~"([^"]+)"/g)) if (!new RegExp(`^${re[1]}$`).test(`${deployment.metadata.name}-6d4cf9b7c-x2x9k`)) out.push('the query does not match the Deployment\'s pods');
    if (!(Number(trigger.metadata.threshold) > 0 && Number(trigger.metadata.threshold) <= Number(value('MAX_BATCH') ?? 64))) out.push('threshold is not a share of MAX_BATCH');
  }
  return out;
}

describe('deploy/k8s against the worker', () => {
  it('Should agree with the worker on env names, ports, probe paths, grace, model mount, secret, GPU and metrics', async () => {
    const { kustomization, objects } = loadManifests();
    expect(await problems(kustomization, objects)).toEqual([]);
  });

  it('Should list only variables the image documents, and the image the same port', () => {
    const dockerfile = readFileSync(join(root, 'gpu-worker/Dockerfile'), 'utf8');
    const envBlock = dockerfile.slice(dockerfile.indexOf('ENV MODEL_DIR'), dockerfile.indexOf('EXPOSE'));
    const imageEnv = [...envBlock.matchAll(/([A-Z_]+)=/g)].map((m) => m[1]).filter((n) => n !== 'NODE_ENV');
    const known = workerEnvNames();
    expect(imageEnv.filter((n) => !known.has(n))).toEqual([]);
    expect([...known].filter((n) => !imageEnv.includes(n) && !dockerfile.includes(`# ${n}`))).toEqual([]); // every variable documented there
    expect(dockerfile).toMatch(/EXPOSE 8790/);
  });

  it('Should catch each kind of drift in a broken copy', async () => {
    const cases: [string, (objects: Json[]) => void, RegExp][] = [
      ['renamed env', (o) => container(o).env.push({ name: 'SHUTDOWN_GRACE', value: '1' }), /SHUTDOWN_GRACE is not read/],
      ['grace too short', (o) => (deployment(o).spec.template.spec.terminationGracePeriodSeconds = 30), /terminationGracePeriodSeconds 30 s/],
      ['longer drain than the pod may take', (o) => (container(o).env.find((e: Json) => e.name === 'SHUTDOWN_GRACE_MS').value = '120000'), /does not exceed/],
      ['wrong readiness path', (o) => (container(o).readinessProbe.httpGet.path = '/readyz'), /readiness probe path \/readyz/],
      ['a probe path the worker lacks', (o) => (container(o).livenessProbe.httpGet.path = '/livez'), /no route \/livez/],
      ['port mismatch', (o) => (container(o).ports[0].containerPort = 8080), /container port "http" \(8080\)/],
      ['a pod IP for the edge', (o) => (container(o).env.find((e: Json) => e.name === 'PUBLIC_URL').value = 'http://10.1.2.3:8790'), /PUBLIC_URL is not an https host name/],
      ['literal secret', (o) => (container(o).env.find((e: Json) => e.name === 'WORKER_SECRET').valueFrom = undefined), /must come from a Secret/],
      ['writable model', (o) => (container(o).volumeMounts[0].readOnly = false), /not mounted read-only/],
      ['no GPU', (o) => delete container(o).resources.limits['nvidia.com/gpu'], /no nvidia.com\/gpu/],
      ['a Service to another port', (o) => (service(o).spec.ports[0].targetPort = 8080), /Service targetPort/],
      ['the model elsewhere than MODEL_DIR', (o) => (container(o).volumeMounts[0].mountPath = '/models/other'), /not mounted read-only at MODEL_DIR/],
      ['another namespace in the query', (o) => (scaled(o).spec.triggers[0].metadata.query = scaled(o).spec.triggers[0].metadata.query.replaceAll('namespace="qwen3"', 'namespace="default"')), /reads namespace default/],
      ['a metric the worker lacks', (o) => (scaled(o).spec.triggers[0].metadata.query = 'sum(vllm:num_requests_queued)'), /vllm:num_requests_queued/],
    ];
    for (const [what, breakIt, expected] of cases) {
      const { kustomization, objects } = loadManifests();
      breakIt(objects);
      expect((await problems(kustomization, objects)).join('\n'), what).toMatch(expected);
    }
  });
});

const deployment = (objects: Json[]) => objects.find((o) => o.kind === 'Deployment')!;
const container = (objects: Json[]) => deployment(objects).spec.template.spec.containers[0];
const service = (objects: Json[]) => objects.find((o) => o.kind === 'Service')!;
const scaled = (objects: Json[]) => objects.find((o) => o.kind === 'ScaledObject')!;
