// Mount namespace: the tree of mounts (mountpoints-N.img) and every tmpfs's files
// (tmpfs-dev-N.tar.gz.img), dumped from outside (mnt-dump.ts) and built again by the root's
// stub, born in a new mount namespace (mnt-restore.ts). Files the tasks hold are reopened
// through the restored namespace (/proc/ROOT/root).
import { CLONE } from '../../kernel/index.ts';
import { IMG } from '../../images/index.ts';
import { dumpMntns } from './mnt-dump.ts';
import { mntRestoreRefusal, restoreMntns, type MntRestoreOptions } from './mnt-restore.ts';
import { FSTYPE, type MntEntry } from './mnt-tree.ts';
import type { NsImagesIn, NsKind } from './types.ts';
import type { MountOptions } from './mnt-tree.ts';
import type { Logger } from '../types.ts';

export { checkMntns } from './mnt-dump.ts';
export type { MountOptions } from './mnt-tree.ts';

function restoreInput(
  id: number,
  imgs: NsImagesIn,
  mounts: MountOptions | undefined,
  log: Logger,
): { entries: MntEntry[]; opts: MntRestoreOptions } {
  return {
    entries: imgs.all(IMG.MNTS, id).map((e) => e.entry),
    opts: {
      root: mounts?.root ?? '/',
      external: mounts?.external ?? new Map(),
      tmpfs: (dev) => imgs.raw(IMG.TMPFS_DEV, dev),
      log,
    },
  };
}

export const mntNs: NsKind = {
  name: 'mnt',
  cflag: CLONE.NEWNS,
  // The mounts are checked with the --external marks (checkMntns), before anything is injected.
  dumpRefusal: () => undefined,
  dump: (ctx) => {
    const d = dumpMntns(ctx.pid, { external: ctx.mounts?.external ?? new Map() }, ctx.helper);
    // CRIU reads fsname only with FSTYPE__AUTO and refuses it elsewhere: an unsupported fs's
    // name is for criu-ts's messages, not the image.
    for (const e of d.entries) ctx.imgs.add(IMG.MNTS, ctx.id, e.fstype === FSTYPE.AUTO ? e : { ...e, fsname: undefined });
    for (const [dev, data] of d.tmpfs) ctx.imgs.raw(IMG.TMPFS_DEV, data, dev);
  },
  restoreRefusal: ({ id, imgs, mounts, log }) => {
    const { entries, opts } = restoreInput(id, imgs, mounts, log);
    return mntRestoreRefusal(entries, opts);
  },
  restore: (ctx) => {
    const { entries, opts } = restoreInput(ctx.id, ctx.imgs, ctx.mounts, ctx.log);
    restoreMntns(ctx.stub, ctx.area, entries, opts);
  },
};
