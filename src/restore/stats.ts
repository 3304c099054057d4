// stats-restore, as CRIU writes it in the work dir after a restore.
import path from 'node:path';
import { writeImage, PE_PRESENT } from '../images/index.ts';
import { PE_COW_PARENT } from '../images/pages.ts';
import type { TaskPlan } from './plan.ts';

export interface RestoreCounts {
  pagesRestored: number;
  pagesSkippedCow: number;
}

/** Pages written from the page data, and pages left shared copy-on-write with the parent. */
export function pageCounts(tasks: TaskPlan[]): RestoreCounts {
  const c: RestoreCounts = { pagesRestored: 0, pagesSkippedCow: 0 };
  for (const t of tasks)
    for (const r of (t.zombie ? undefined : t.pagemap)?.runs ?? []) {
      if (r.flags & PE_COW_PARENT) c.pagesSkippedCow += r.nrPages;
      else if (r.flags & PE_PRESENT) c.pagesRestored += r.nrPages;
    }
  return c;
}

export function writeRestoreStats(workDir: string, s: RestoreCounts & { forkMs: number; totalMs: number }): void {
  const us = (ms: number) => Math.round(ms * 1000);
  writeImage(path.join(workDir, 'stats-restore'), 'stats_entry', [
    {
      restore: {
        pages_compared: 0n,
        pages_skipped_cow: BigInt(s.pagesSkippedCow),
        forking_time: us(s.forkMs),
        restore_time: us(s.totalMs),
        pages_restored: BigInt(s.pagesRestored),
      },
    },
  ]);
}
