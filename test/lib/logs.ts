// Reading the logs that targets and criu-ts write: lines, tails, progress counters.
import { readFileSync } from 'node:fs';
import { waitFor } from './procfs.ts';

/** Complete lines of a file (a trailing partial line is left out); [] if missing. */
export function readLines(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop();
  return lines;
}

export function tail(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-n - 1)
      .join('\n');
  } catch (e) {
    return `(${(e as Error).message})`;
  }
}

/**
 * Wait until a complete line at index >= `from` matches `re` (a RegExp or a
 * predicate). Returns the line and its index.
 */
export async function waitForLine(
  file: string,
  re: RegExp | ((line: string) => boolean),
  timeoutMs = 10_000,
  from = 0,
): Promise<{ line: string; index: number }> {
  let seen = 0;
  const match = typeof re === 'function' ? re : (l: string) => re.test(l);
  try {
    return await waitFor(
      () => {
        const lines = readLines(file);
        seen = lines.length;
        for (let k = from; k < lines.length; k++) if (match(lines[k])) return { line: lines[k], index: k };
        return undefined;
      },
      timeoutMs,
      `a line matching ${re} in ${file}`,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message} (${seen} lines; last ones:\n${tail(file, 8)})`);
  }
}

/** "i=3 sum=ok x" -> { i: '3', sum: 'ok' } */
export function parseKV(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of line.trim().split(/\s+/)) {
    const k = w.indexOf('=');
    if (k > 0) out[w.slice(0, k)] = w.slice(k + 1);
  }
  return out;
}

/** The values of `key` on lines that start with `key=` (progress lines), in order. */
export function counterValues(lines: string[], key = 'i'): number[] {
  const out: number[] = [];
  const re = new RegExp(`^${key}=(\\d+)(\\s|$)`);
  for (const l of lines) {
    const m = re.exec(l);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** The last value of the progress counter in a log, or -1. */
export function lastCounter(file: string, key = 'i'): number {
  const v = counterValues(readLines(file), key);
  return v.length ? v[v.length - 1] : -1;
}

/** Throws unless values go first, first+1, first+2, ... (no gap, no repeat, no restart). */
export function assertConsecutive(values: number[], what: string, first?: number): void {
  if (values.length === 0) throw new Error(`${what}: no values`);
  if (first !== undefined && values[0] !== first) throw new Error(`${what}: starts at ${values[0]}, expected ${first}`);
  for (let k = 1; k < values.length; k++) {
    if (values[k] !== values[k - 1] + 1) {
      const around = values.slice(Math.max(0, k - 3), k + 3).join(', ');
      throw new Error(`${what}: ${values[k - 1]} is followed by ${values[k]} (… ${around} …)`);
    }
  }
}

/** The last "i=N ..." line of a counting workload's log, or ''. */
export const lastCounterLine = (log: string): string =>
  readLines(log)
    .filter((l) => l.startsWith('i='))
    .at(-1) ?? '';

/** The value of `k=VALUE` in a line of such a log. */
export const kvField = (line: string, k: string): string | undefined => new RegExp(`\\b${k}=(\\S*)`).exec(line)?.[1];
