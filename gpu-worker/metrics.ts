/**
 * @module Prometheus text exposition for GET /metrics. Names follow vLLM's (docs/api.md#metrics) so existing
 * dashboards work: vllm:num_requests_running / _waiting, vllm:kv_cache_usage_perc, vllm:prefix_cache_queries / _hits
 * (in tokens), vllm:generation_tokens, vllm:time_to_first_token_seconds, vllm:inter_token_latency_seconds; plus the
 * worker's own q3_worker_kv_blocks_{used,total,cached} gauges, which tests read to prove blocks come back, and what
 * an autoscaler needs besides the load (docs/fleet.md#autoscaling-metrics): q3_worker_max_batch (capacity),
 * q3_worker_draining (leaving: not capacity any more), q3_worker_admitted_requests_total (arrival rate).
 */

const TTFT_BUCKETS_S = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const ITL_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10];

export class Histogram {
  private readonly counts: number[];
  sum = 0;        // seconds
  count = 0;

  constructor(readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    const i = this.buckets.findIndex((le) => seconds <= le);
    if (i >= 0) this.counts[i]++;
  }

  /** Lines of the exposition, cumulative per bucket as Prometheus expects. */
  lines(name: string, labels: string): string[] {
    const out: string[] = [];
    let cumulative = 0;
    this.buckets.forEach((le, i) => {
      cumulative += this.counts[i];
      out.push(`${name}_bucket{${labels},le="${le}"} ${cumulative}`);
    });
    out.push(`${name}_bucket{${labels},le="+Inf"} ${this.count}`);
    out.push(`${name}_sum{${labels}} ${this.sum}`);
    out.push(`${name}_count{${labels}} ${this.count}`);
    return out;
  }
}

/** Counters the scheduler updates as it runs. */
export class WorkerMetrics {
  readonly ttft = new Histogram(TTFT_BUCKETS_S);
  readonly itl = new Histogram(ITL_BUCKETS_S);
  promptTokens = 0;
  generationTokens = 0;
  finished: Record<string, number> = { stop: 0, length: 0, cancelled: 0, error: 0 };
  rejected = 0;    // 503s from a full queue or a draining worker
  admitted = 0;    // requests queued (each ends in exactly one `finished` reason)
  preemptions = 0; // sequences sent back to the queue: for lack of KV blocks, or a slot for a tenant below its share
}

/** Point-in-time values read when /metrics is scraped. */
export interface Gauges {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  kvBlocksCached: number;
  prefixQueriedTokens: number;
  prefixHitTokens: number;
}

/** The scheduler's gauges plus the worker's capacity and whether it is leaving. */
export interface WorkerGauges extends Gauges {
  maxBatch: number;
  draining: boolean;
}

function family(name: string, type: 'gauge' | 'counter' | 'histogram', help: string, body: string[]): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...body];
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function renderMetrics(model: string, m: WorkerMetrics, g: WorkerGauges): string {
  const l = `model_name="${escapeLabel(model)}"`;
  const usage = g.kvBlocksTotal ? g.kvBlocksUsed / g.kvBlocksTotal : 0;
  return [
    ...family('vllm:num_requests_running', 'gauge', 'Sequences in the batch (prefilling or decoding).', [
      `vllm:num_requests_running{${l}} ${g.running}`,
    ]),
    ...family('vllm:num_requests_waiting', 'gauge', 'Requests queued for admission.', [
      `vllm:num_requests_waiting{${l}} ${g.waiting}`,
    ]),
    ...family('q3_worker_max_batch', 'gauge', 'Sequences one engine step can run (MAX_BATCH); 0 while loading.', [
      `q3_worker_max_batch{${l}} ${g.maxBatch}`,
    ]),
    ...family('q3_worker_draining', 'gauge', '1 once the worker has left the fleet (SIGTERM) and is finishing its streams.', [
      `q3_worker_draining{${l}} ${g.draining ? 1 : 0}`,
    ]),
    ...family('vllm:kv_cache_usage_perc', 'gauge', 'Fraction of KV blocks in use (1 = full).', [
      `vllm:kv_cache_usage_perc{${l}} ${usage}`,
    ]),
    ...family('q3_worker_kv_blocks_used', 'gauge', 'KV blocks held by sequences or the prefix cache.', [
      `q3_worker_kv_blocks_used{${l}} ${g.kvBlocksUsed}`,
    ]),
    ...family('q3_worker_kv_blocks_total', 'gauge', 'KV blocks in the pool.', [
      `q3_worker_kv_blocks_total{${l}} ${g.kvBlocksTotal}`,
    ]),
    ...family('q3_worker_kv_blocks_cached', 'gauge', 'KV blocks remembered by the prefix cache.', [
      `q3_worker_kv_blocks_cached{${l}} ${g.kvBlocksCached}`,
    ]),
    ...family('vllm:prefix_cache_queries', 'counter', 'Prompt tokens looked up in the prefix cache.', [
      `vllm:prefix_cache_queries_total{${l}} ${g.prefixQueriedTokens}`,
    ]),
    ...family('vllm:prefix_cache_hits', 'counter', 'Prompt tokens served from the prefix cache.', [
      `vllm:prefix_cache_hits_total{${l}} ${g.prefixHitTokens}`,
    ]),
    ...family('vllm:prompt_tokens', 'counter', 'Prompt tokens of admitted requests.', [
      `vllm:prompt_tokens_total{${l}} ${m.promptTokens}`,
    ]),
    ...family('vllm:generation_tokens', 'counter', 'Tokens generated (sampled or forced).', [
      `vllm:generation_tokens_total{${l}} ${m.generationTokens}`,
    ]),
    ...family('vllm:request_success', 'counter', 'Finished requests by finish reason.',
      Object.entries(m.finished).map(([r, n]) => `vllm:request_success_total{${l},finished_reason="${r}"} ${n}`)),
    ...family('q3_worker_admitted_requests', 'counter', 'Requests queued for generation.', [
      `q3_worker_admitted_requests_total{${l}} ${m.admitted}`,
    ]),
    ...family('q3_worker_rejected_requests', 'counter', 'Requests answered 503 (queue full or draining).', [
      `q3_worker_rejected_requests_total{${l}} ${m.rejected}`,
    ]),
    ...family('q3_worker_preemptions', 'counter', 'Sequences preempted (KV blocks released, re-prefilled later): the pool ran dry, or a tenant below its share of the batch took the slot.', [
      `q3_worker_preemptions_total{${l}} ${m.preemptions}`,
    ]),
    ...family('vllm:time_to_first_token_seconds', 'histogram', 'Arrival to first token.',
      m.ttft.lines('vllm:time_to_first_token_seconds', l)),
    ...family('vllm:inter_token_latency_seconds', 'histogram', 'Time between consecutive tokens of a stream.',
      m.itl.lines('vllm:inter_token_latency_seconds', l)),
    '',
  ].join('\n');
}

/** Parses exposition text into name{labels} → value (tests and the load script read it). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const key = line.slice(0, at);
    out.set(key.replace(/\{.*\}$/, ''), (out.get(key.replace(/\{.*\}$/, '')) ?? 0) + Number(line.slice(at + 1)));
    out.set(key, Number(line.slice(at + 1)));
  }
  return out;
}
