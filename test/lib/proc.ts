/**
 * E2E harness: start targets the way criu-ts needs them, run the CLI, reap
 * everything, and fail a test that leaks a process.
 *
 * Rules it follows (see shared/reference/restore-from-outside.md):
 * - this process is a child subreaper (PID 1 here does not reap orphans);
 * - targets are started with a double fork (`bash -c 'setsid prog & echo $!'`),
 *   so the orphan is re-parented to us but is unknown to libuv: libuv reaps the
 *   children it spawned behind our back (and reports ptrace stops as exits),
 *   so only pids libuv never saw are ours to wait for;
 * - we wait on specific pids only, never waitpid(-1).
 *
 * Use `e2e(name, fn)` instead of `test()`: it gives the body a fresh temp dir,
 * and afterwards kills and reaps every process the test started or adopted,
 * plus any other child of ours (those are leaks: helpers criu-ts left behind,
 * restored processes nobody adopted), and fails the test if something was left
 * stopped or traced or was not ours.
 */
export * from './procfs.ts';
export * from './logs.ts';
export * from './reap.ts';
export * from './targets.ts';
export * from './run-criu.ts';
export * from './e2e.ts';
export { SLOW } from './slow.ts';
