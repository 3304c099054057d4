// stats-dump, as CRIU writes it in the work dir after a dump. ZDTM adds pages_written and
// shpages_written and compares the sum with the size of pages-*.img.
import path from 'node:path';
import { writeImage } from '../images/index.ts';
import type { DumpResult } from './dump.ts';

export function writeDumpStats(workDir: string, r: DumpResult): void {
  const us = (ms: number) => Math.round(ms * 1000);
  writeImage(path.join(workDir, 'stats-dump'), 'stats_entry', [
    {
      dump: {
        freezing_time: us(r.freezingMs),
        frozen_time: us(r.frozenMs - r.freezingMs),
        memdump_time: us(r.memdumpMs),
        memwrite_time: 0,
        pages_scanned: BigInt(r.pagesScanned),
        pages_skipped_parent: BigInt(r.pagesSkippedParent ?? 0),
        pages_written: BigInt(r.pagesWritten),
        irmap_resolve: 0,
        pages_lazy: 0n,
        page_pipes: 0n,
        page_pipe_bufs: 0n,
        shpages_scanned: BigInt(r.shpagesWritten),
        shpages_skipped_parent: 0n,
        shpages_written: BigInt(r.shpagesWritten),
      },
    },
  ]);
}
