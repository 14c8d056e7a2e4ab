/**
 * @module Waiting on another request's work, bounded by this request's own timer. On Workers a promise that another
 * request's I/O settles may never settle for this one: when that request is cancelled, its I/O goes with it. So a
 * request shares such a promise only for a while, then does the work itself.
 */

/** What `shared` settled to, or 'late' once `ms` passed first (a rejection of `shared` in time rejects here too). */
export async function awaitAtMost<T>(shared: Promise<T>, ms: number): Promise<T | 'late'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  return Promise.race([shared, late]).finally(() => clearTimeout(timer));
}
