/** Huge pages for tests of hugetlb memory: a fresh machine has none reserved. */
import { readFileSync, writeFileSync } from 'node:fs';

/** Make sure `n` huge pages are free (a fresh machine has none reserved); returns how to undo it. */
export function reserveHugePages(n: number): () => void {
  const knob = '/proc/sys/vm/nr_hugepages';
  const before = Number(readFileSync(knob, 'latin1'));
  const free = Number(/^HugePages_Free:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'latin1'))?.[1] ?? 0);
  if (free >= n) return () => {};
  writeFileSync(knob, String(before + n - free));
  return () => writeFileSync(knob, String(before));
}
