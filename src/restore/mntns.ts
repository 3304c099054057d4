// Whether the dump holds a mount namespace of the tree's own (the root's mnt_ns_id is not the
// one criu-ts had), and what restoring it takes; refused here, before any process exists.
import fs from 'node:fs';
import { IMG, imageFileName, readImageFile } from '../images/index.ts';
import { CriuError } from '../errors.ts';
import { mntRestoreRefusal, type MntRestoreOptions } from '../resources/ns/mnt-restore.ts';
import type { MntEntry, MountOptions } from '../resources/ns/mnt-tree.ts';
import type { Logger } from '../resources/types.ts';
import type { DumpImages } from './images.ts';

export interface MntnsPlan {
  id: number;
  entries: MntEntry[];
  opts: MntRestoreOptions;
}

export function planMntns(
  imgs: DumpImages,
  rootIds: { mnt_ns_id?: number },
  mounts: MountOptions | undefined,
  log: Logger,
): MntnsPlan | undefined {
  const id = rootIds.mnt_ns_id;
  const own = imgs.one(IMG.INVENTORY).root_ids?.mnt_ns_id;
  if (id === undefined || own === undefined || id === own) return undefined;
  if (!fs.existsSync(imgs.file(imageFileName(IMG.MNTS, id))))
    throw new CriuError(`the tree has a mount namespace of its own, and ${imageFileName(IMG.MNTS, id)} is missing`);
  const entries = imgs.all(IMG.MNTS, id).map((e) => e.entry);
  const opts: MntRestoreOptions = {
    root: mounts?.root ?? '/',
    external: mounts?.external ?? new Map(),
    tmpfs: (dev) => {
      const f = imgs.file(imageFileName(IMG.TMPFS_DEV, dev));
      return fs.existsSync(f) ? readImageFile(f) : undefined;
    },
    log,
  };
  const why = mntRestoreRefusal(entries, opts);
  if (why) throw new CriuError(`mount namespace (mountpoints-${id}.img): ${why}`);
  return { id, entries, opts };
}
