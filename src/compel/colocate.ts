// The tracer and its tracees on one CPU. Every injected syscall is a round trip: resume the
// stopped thread, wait for its next stop. Left to the scheduler, the two often sit on
// different CPUs, and each leg is then a wake-up across CPUs (an inter-processor interrupt,
// through the hypervisor on a VM). On one CPU the resumed thread simply runs once the tracer
// blocks in wait4. Measured here: 36 us per injected syscall on one CPU against 50 us left to
// the scheduler (bench/ptrace-stop.ts), and a 100-process tree dumps and restores 10-25%
// faster. So while criu-ts holds a tree, its tracing thread and every tracee are pinned to
// one CPU, and each tracee gets its own affinity back when it is let go.
import { schedGetaffinity, schedSetaffinity, getcpu } from '../kernel/index.ts';
import { setWorkerSpawn } from '../lazy.ts';

interface Pin {
  one: Buffer;
  tracerHome: Buffer;
}
let pin: Pin | undefined;

/** Pin the calling (tracing) thread to the CPU it runs on; no-op when already done. */
export function colocate(): void {
  if (pin) return;
  const tracerHome = schedGetaffinity(0);
  const one = Buffer.alloc(tracerHome.length);
  const cpu = getcpu();
  one[cpu >> 3] |= 1 << (cpu & 7);
  if (schedSetaffinity(0, one) === 0) {
    pin = { one, tracerHome };
    setWorkerSpawn(unpinned);
  }
}

/** The tracing thread's affinity before it was pinned (what a task cloned under our control gets); undefined when not pinned. */
export function tracerAffinity(): Buffer | undefined {
  return pin?.tracerHome;
}

/** Give the tracing thread its own affinity back. */
export function endColocation(): void {
  if (!pin) return;
  schedSetaffinity(0, pin.tracerHome);
  pin = undefined;
}

/**
 * Run `fn` with the tracing thread unpinned: threads and processes created in it (workers
 * that write or verify images) inherit the affinity, and must not share one CPU with us.
 */
export function unpinned<T>(fn: () => T): T {
  if (!pin) return fn();
  const p = pin;
  schedSetaffinity(0, p.tracerHome);
  try {
    return fn();
  } finally {
    schedSetaffinity(0, p.one);
  }
}

/**
 * Pin a tracee to the tracer's CPU; returns the affinity to give back when it is let go
 * (undefined: not pinned). A task cloned under our control (`born`) goes back to criu-ts's own
 * affinity, which is what it would have inherited. A cpuset that leaves our CPU out refuses the
 * pin, and that tracee simply stays where it is.
 */
export function pinTracee(tid: number, born: boolean): Buffer | undefined {
  if (!pin) return undefined;
  let home: Buffer;
  try {
    home = born ? pin.tracerHome : schedGetaffinity(tid);
  } catch {
    return undefined;
  }
  return schedSetaffinity(tid, pin.one) === 0 ? home : undefined;
}

export function unpinTracee(tid: number, home: Buffer | undefined): void {
  if (home) schedSetaffinity(tid, home);
}

/** Pin a tracee that was let run on its own (unpinTracee) back to the tracer's CPU. */
export function repinTracee(tid: number): void {
  if (pin) schedSetaffinity(tid, pin.one);
}
