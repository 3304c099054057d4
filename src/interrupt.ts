// SIGHUP, SIGINT, SIGQUIT and SIGTERM during a dump or a restore end it cleanly: the work
// stops at its next safe point (checkInterrupt), the tree is put back as it was (or, for a
// restore, what was created is killed), the partial images are removed, and criu-ts then
// dies of the signal. Node's own listeners would run only when the event loop turns, which a
// dump, one synchronous run, never lets it do: the signals are caught by a native handler
// that only leaves a trace (kernel catchSignalOnce), looked at every few milliseconds.
import fs from 'node:fs';
import { catchSignalOnce, signalCaught, defaultSignal, kill, getpid, SIG } from './kernel/index.ts';
import { CriuError } from './errors.ts';
import { now as sinceStart } from './lazy.ts';

const SIGNALS = [SIG.HUP, SIG.INT, SIG.QUIT, SIG.TERM];
const NAMES: Record<number, string> = { [SIG.HUP]: 'SIGHUP', [SIG.INT]: 'SIGINT', [SIG.QUIT]: 'SIGQUIT', [SIG.TERM]: 'SIGTERM' };
/** How often checkInterrupt looks (each look is a few sigaction calls). */
const EVERY_MS = 5;

let armed = false;
let received = 0;
let next = 0;

export class InterruptedError extends CriuError {
  readonly signal: number;
  constructor(signal: number) {
    super(`interrupted by ${NAMES[signal]}`);
    this.name = 'InterruptedError';
    this.signal = signal;
  }
}

/** Catch the four signals from now on. */
export function armInterrupts(): void {
  for (const s of SIGNALS) catchSignalOnce(s);
  armed = true;
}

/**
 * At a safe point: throw InterruptedError if one of the signals came. Once one has, the
 * signals are caught again, so that the abort itself is not cut short by a second one.
 */
export function checkInterrupt(now = false): void {
  if (!armed || received) return;
  const t = sinceStart();
  if (t < next && !now) return;
  next = t + EVERY_MS;
  for (const s of SIGNALS) {
    if (!signalCaught(s)) continue;
    received = s;
    armInterrupts();
    throw new InterruptedError(s);
  }
}

/**
 * Test hook: CRIU_TS_HANG=<step> holds the work at that step, as a slow dump would, until
 * one of the signals aborts it (the step names are CRIU_TS_FAULT's), or until the file
 * CRIU_TS_HANG_UNTIL names exists.
 */
export function hangPoint(step: string): void {
  if (process.env.CRIU_TS_HANG !== step) return;
  process.stderr.write(`hanging at step "${step}" (CRIU_TS_HANG)\n`);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const until = process.env.CRIU_TS_HANG_UNTIL;
  for (;;) {
    Atomics.wait(cell, 0, 0, EVERY_MS);
    checkInterrupt(true);
    if (until && fs.existsSync(until)) return;
  }
}

/**
 * The work is done or past its last safe point: the signals get their default actions back,
 * and one that came since the last look is raised again, to end criu-ts as it would have.
 */
export function disarmInterrupts(): void {
  if (!armed) return;
  armed = false;
  const came = SIGNALS.filter((s) => signalCaught(s));
  for (const s of SIGNALS) defaultSignal(s);
  if (!received && came.length) kill(getpid(), came[0]);
}

/**
 * At the end of the command: after an abort, die of the signal that caused it, as a program
 * without a handler would; else disarm.
 */
export function dieOfInterrupt(): void {
  if (!received) {
    disarmInterrupts();
    return;
  }
  defaultSignal(received);
  kill(getpid(), received);
}
