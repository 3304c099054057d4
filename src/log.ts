// Logging with CRIU's verbosity levels: 0 none, 1 errors, 2 +warnings (default), 3 +info
// (the steps of a dump or restore, task by task), 4 +debug (every VMA, fd, image and timing).
// A log file is truncated when opened, as CRIU's is. Lines from level 3 on carry the time since
// start, in seconds, as CRIU's do.
import fs from 'node:fs';
import { createImage } from './images/open.ts';
import type { Logger } from './resources/types.ts';
import { now } from './lazy.ts';

export class LevelLogger implements Logger {
  private fd: number;
  readonly level: number;
  private readonly t0 = now();
  /** The step under way: a failure is reported as having happened there. */
  private current?: string;
  /** The first error logged, whatever the level (an RPC reply's cr_errmsg). */
  firstError?: string;
  constructor(level: number, file?: string) {
    this.level = level;
    this.fd = file ? createImage(file) : 2;
  }
  private out(lvl: number, tag: string, msg: string): void {
    if (lvl > this.level) return;
    const ts = this.level >= 3 ? `(${((now() - this.t0) / 1000).toFixed(6).padStart(9, '0')}) ` : '';
    try {
      fs.writeSync(this.fd, `${ts}${tag}${msg}\n`);
    } catch {
      /* log target gone */
    }
  }
  error(msg: string): void {
    this.firstError ??= msg;
    this.out(1, 'Error: ', msg);
  }
  warn(msg: string): void {
    this.out(2, 'Warn: ', msg);
  }
  info(msg: string): void {
    this.out(3, '', msg);
  }
  debug(msg: string): void {
    this.out(4, '', msg);
  }
  /** A line every log has, whatever its level (what benches and scripts read: the network lock time). */
  always(msg: string): void {
    this.out(1, '', msg);
  }
  /** Start a step (level 3): a task and what is done to it, with the images it reads or writes. */
  step(what: string): void {
    this.current = what;
    this.info(what);
  }
  /** The error that ends the run, with the step it happened in; a stack only when asked for. */
  failed(msg: string, stack?: string): void {
    this.error(this.current ? `${msg} (while: ${this.current})` : msg);
    // The frames only: the message is in the line above.
    if (stack) this.out(1, '', stack.slice(Math.max(0, stack.indexOf('\n    at ') + 1)));
  }
  close(): void {
    if (this.fd !== 2) {
      fs.closeSync(this.fd);
      this.fd = 2;
    }
  }
}

/** A step of an orchestrator: logged at level 3, and named by the error line if it fails. */
export function step(log: Logger, what: string): void {
  if (log instanceof LevelLogger) log.step(what);
  else log.info(what);
}

/** Whether `debug` lines are written at all (skip building them otherwise). */
export const debugOn = (log: Logger): boolean => !(log instanceof LevelLogger) || log.level >= 4;

/** A log holding one error, for a run that failed before its log was opened (a refused option). */
export function writeLogLine(file: string, level: number, msg: string): void {
  try {
    const l = new LevelLogger(level, file);
    l.error(msg);
    l.close();
  } catch {
    /* no place for a log: stderr has the message */
  }
}

export const nullLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };

type Entry = Record<string, unknown>;
const hex = (n: bigint) => n.toString(16);

/** One VMA for a -v4 log: range, protection, sharing and what backs it. */
export function vmaLine(start: bigint, end: bigint, prot: number, shared: boolean, what: string): string {
  const p = `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}${shared ? 's' : 'p'}`;
  return `  vma ${hex(start)}-${hex(end)} ${p} ${((end - start) / 1024n).toString()} kB ${what}`.trimEnd();
}

/** One fd for a -v4 log, from its fdinfo entry and its file object (files.img). */
export function fdLine(fde: Entry, file: Entry | undefined): string {
  const kind = file ? Object.keys(file).find((k) => k !== 'type' && k !== 'id') : undefined;
  const body = kind ? (file![kind] as Entry | undefined) : undefined;
  // A path or a pipe, else the kind's own scalar fields (an eventfd's counter, a timerfd's clock and times).
  const state = () =>
    Object.entries(body ?? {})
      .filter(([k, v]) => !['id', 'flags', 'fown', 'pos'].includes(k) && (typeof v !== 'object' || Array.isArray(v)))
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.length}]` : String(v)}`)
      .join(' ');
  const name = body?.name ?? (body?.pipe_id !== undefined ? `pipe:[${String(body.pipe_id)}]` : state());
  return `  fd ${String(fde.fd)}: ${kind ?? `type ${String(fde.type)}`} ${String(name)} (file id ${String(fde.id)}${fde.flags ? ', cloexec' : ''})`;
}

/** Milliseconds for a log line. */
export const ms = (t0: number): string => `${(now() - t0).toFixed(1)} ms`;
