// CRIU's pre-dump: the memory of the frozen tree and nothing else (pagemap-N.img, pages-N.img,
// inventory.img), after which the tree runs on with its memory tracked (resources/mm/track.ts),
// so that the next dump, given this one as its parent, saves only what was written since.
// Incremental dumps (--prev-images-dir) link their parent as CRIU does: a `parent` symlink.
import fs from 'node:fs';
import path from 'node:path';
import { preDumpPages, ParentTrack } from '../resources/mm/index.ts';
import { IMG, closing } from '../images/index.ts';
import type { ImageSet } from './imgset.ts';
import { CriuError } from '../errors.ts';
import { step, ms } from '../log.ts';
import type { Logger } from '../resources/types.ts';
import { anonBytes, type LiveTask } from './task-dump.ts';
import { now } from '../lazy.ts';

const PRE_DUMP_SPLICE = 1;

/**
 * --prev-images-dir DIR (relative to the images directory, as CRIU takes it): the `parent`
 * link, and the tracking that dump armed if it still holds.
 */
export function linkParent(dir: string, prev: string, log: Logger): ParentTrack | undefined {
  const target = path.resolve(dir, prev);
  if (!fs.existsSync(target) || !fs.statSync(target).isDirectory())
    throw new CriuError(`--prev-images-dir ${prev}: no images directory there (${target})`);
  const link = path.join(dir, 'parent');
  try {
    fs.unlinkSync(link);
  } catch {
    /* none yet */
  }
  fs.symlinkSync(prev, link);
  return ParentTrack.open(target, log);
}

/** The pages of every task, PE_PARENT where the parent dump has them and they were not written since. */
export function preDumpMemory(
  tasks: LiveTask[],
  imgs: ImageSet,
  vpid: (pid: number) => number,
  prev: ParentTrack | undefined,
  log: Logger,
): { pagesWritten: number; pagesScanned: number; pagesSkippedParent: number; memdumpMs: number } {
  const out = { pagesWritten: 0, pagesScanned: 0, pagesSkippedParent: 0, memdumpMs: 0 };
  const t0 = now();
  for (const t of tasks) {
    const v = vpid(t.pid);
    step(log, `task ${t.pid}: memory, ${t.vmas.length} VMAs, to pagemap-${v}.img`);
    const pm = imgs.pagemap(v, anonBytes(t.vmas));
    const s = closing(pm, () => preDumpPages({ pid: t.pid, vmas: t.vmas, ...prev?.parentOf(t.pid, v, t.vmas, log) }, pm));
    log.debug(`task ${t.pid}: ${s.pagesScanned} pages scanned, ${s.pagesWritten} written, ${s.pagesSkippedParent} in the parent dump`);
    out.pagesWritten += s.pagesWritten;
    out.pagesScanned += s.pagesScanned;
    out.pagesSkippedParent += s.pagesSkippedParent;
  }
  imgs.one(IMG.INVENTORY, {
    img_version: 2,
    dump_uptime: BigInt(Math.round(Number(fs.readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * 1e6)),
    pre_dump_mode: PRE_DUMP_SPLICE,
    lsmtype: 0,
  });
  out.memdumpMs = now() - t0;
  log.info(`pre-dumped the memory of ${tasks.length} task(s) in ${ms(t0)}`);
  return out;
}
