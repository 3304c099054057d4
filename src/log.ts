// Logging with CRIU's verbosity levels: 0 none, 1 errors, 2 +warnings (default), 3 +info, 4 +debug.
import fs from 'node:fs';
import type { Logger } from './resources/types.ts';

export class LevelLogger implements Logger {
  private fd: number;
  private readonly level: number;
  private readonly t0 = performance.now();
  constructor(level: number, file?: string) {
    this.level = level;
    this.fd = file ? fs.openSync(file, 'a') : 2;
  }
  private out(lvl: number, tag: string, msg: string): void {
    if (lvl > this.level) return;
    const ts = this.level >= 3 ? `(${((performance.now() - this.t0) / 1000).toFixed(6)}) ` : '';
    try { fs.writeSync(this.fd, `${ts}${tag}${msg}\n`); } catch { /* log target gone */ }
  }
  error(msg: string): void { this.out(1, 'Error: ', msg); }
  warn(msg: string): void { this.out(2, 'Warn: ', msg); }
  info(msg: string): void { this.out(3, '', msg); }
  debug(msg: string): void { this.out(4, '', msg); }
  close(): void { if (this.fd !== 2) { fs.closeSync(this.fd); this.fd = 2; } }
}

export const nullLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };
