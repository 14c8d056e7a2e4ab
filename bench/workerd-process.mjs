// The workerd processes a benchmark starts through Miniflare, seen from /proc: which are ours, and how much CPU each
// has used (every thread's run time, so the isolate, the Durable Objects and Miniflare's KV / D1 / cache simulators
// that share the process all count).
import { readdirSync, readFileSync } from 'node:fs';

/** CPU time of a process so far, ns: the sum of its threads' run time (/proc/<pid>/task/<tid>/schedstat). */
export function processCpuNs(pid) {
  return schedstat(pid, 0);
}

/** Time a process's threads have waited, runnable, for a CPU that other processes held, ns (schedstat's second field). */
export function processRunQueueNs(pid) {
  return schedstat(pid, 1);
}

function schedstat(pid, field) {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try { total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[field]); } catch { /* thread ended */ }
  }
  return total;
}

/** Pids of the workerd processes this process started, oldest first. */
export function workerdChildren() {
  const children = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8').trim();
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/.exec(stat);
      const fields = rest.split(' ');
      if (comm === 'workerd' && Number(fields[1]) === process.pid) children.push({ pid: Number(entry), start: Number(fields[19]) });
    } catch { /* gone */ }
  }
  return children.sort((a, b) => a.start - b.start || a.pid - b.pid).map((c) => c.pid);
}

/** Pid of the newest workerd process started by this one. */
export function newestWorkerdChild() {
  const pids = workerdChildren();
  if (pids.length === 0) throw new Error('no workerd child process found');
  return pids.at(-1);
}
