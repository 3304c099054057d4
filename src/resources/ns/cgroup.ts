// cgroup namespace of the root. Its contents are where its root cgroup is in each hierarchy:
// cgroup.img keeps that as each member's cgns_prefix (resources/cgroups.ts), and the restore
// puts the root stub there, has it unshare the namespace and then moves it on to its own
// cgroups, as CRIU does. Not a clone flag: a namespace cloned from the helper would be rooted
// at the helper's cgroups.
import fs from 'node:fs';
import { CLONE } from '../../kernel/index.ts';
import type { NsKind } from './types.ts';

const ownCgroupNs = (): string => fs.readlinkSync('/proc/self/ns/cgroup');

export const cgroupNs: NsKind = {
  name: 'cgroup',
  cflag: CLONE.NEWCGROUP,
  dumpRefusal: () => undefined,
  restoreRefusal: () => undefined,
  cloneFlag: () => 0,
  // Without cgns_prefix in cgroup.img (--manage-cgroups ignore, or a namespace rooted at each
  // hierarchy's root) the cgroups module has not unshared it: the namespace is made where the
  // root stands.
  restore: ({ stub, pid, log }) => {
    if (fs.readlinkSync(`/proc/${pid}/ns/cgroup`) !== ownCgroupNs()) return;
    stub.syscall('unshare', CLONE.NEWCGROUP);
    log.info(`task ${pid}: a cgroup namespace of its own, rooted at its cgroups`);
  },
};
