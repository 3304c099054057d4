// What a dump leaves in its target and its log about injected calls.
import { readFileSync } from 'node:fs';
import { parseMaps } from '../../src/proc/index.ts';
import { isInjectionArea } from '../../src/compel/index.ts';

/** Injection areas (marked) mapped in `pid`. */
export function injectionAreas(pid: number): string[] {
  const maps = parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  return maps.filter((v) => isInjectionArea(pid, v.start, v.end - v.start)).map((v) => v.start.toString(16));
}

/** "unsafe window: X ms inside N injected calls" of a dump log. */
export function unsafeWindow(log: string): { ms: number; calls: number } | undefined {
  const m = /unsafe window: ([\d.]+) ms inside (\d+) injected calls/.exec(readFileSync(log, 'utf8'));
  return m ? { ms: Number(m[1]), calls: Number(m[2]) } : undefined;
}
