// Builtins that cost start-up time and that most commands never touch, loaded on first use:
// importing node:crypto alone takes 11-15 ms here, out of a tiny dump's ~250 ms.
import type { Worker, WorkerOptions } from 'node:worker_threads';

export const nodeCrypto = (): typeof import('node:crypto') => process.getBuiltinModule('node:crypto');
export const workerThreads = (): typeof import('node:worker_threads') => process.getBuiltinModule('node:worker_threads');

/**
 * performance.now()'s clock (milliseconds since the process started) without the global
 * `performance`, whose first use loads node:perf_hooks and its nine modules (about 1 ms).
 */
export const now = (): number => process.uptime() * 1000;

let spawnAround = <T>(fn: () => T): T => fn();

/**
 * A worker thread running module `name`, which sits next to the caller (`callerUrl` is its
 * import.meta.url). In the bundled CLI (bin/criu-ts) the caller is the bundle, and each worker is
 * a bundle of its own beside it. Threads inherit the CPU affinity of the thread that creates
 * them, and the tracer is pinned to one CPU while it holds a tree (compel/colocate.ts), which
 * registers here how to create threads outside that pin.
 */
export function newWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  const url = new URL(`./${name}${callerUrl.endsWith('.ts') ? '.ts' : '.mjs'}`, callerUrl);
  return spawnAround(() => new (workerThreads().Worker)(url, options));
}

export function setWorkerSpawn(around: <T>(fn: () => T) => T): void {
  spawnAround = around;
}
