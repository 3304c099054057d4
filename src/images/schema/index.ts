// All CRIU image messages and enums, keyed by CRIU's proto names. Field tables follow
// criu-image-format.md; messages it only outlines (netdev, mnt, cgroup, ipc, fsnotify, other
// arches...) and RPC (rpc.ts) follow the field numbers of CRIU 4.2's images/*.proto. thread_info_aarch64.gcs and
// user_aarch64_gcs_entry are from the GCS pull request (#2725), not yet in CRIU proper.
import { archAarch64Enums, archAarch64Messages } from './arch-aarch64.ts';
import { archOtherEnums, archOtherMessages } from './arch-other.ts';
import { archX86Enums, archX86Messages } from './arch-x86.ts';
import { coreEnums, coreMessages } from './core.ts';
import { fdkindsEnums, fdkindsMessages } from './fdkinds.ts';
import { filesEnums, filesMessages } from './files.ts';
import { inventoryEnums, inventoryMessages } from './inventory.ts';
import { mmEnums, mmMessages } from './mm.ts';
import { netEnums, netMessages } from './net.ts';
import { nsEnums, nsMessages } from './ns.ts';
import { socketsEnums, socketsMessages } from './sockets.ts';
import { rpcEnums, rpcMessages } from './rpc.ts';

export const messages = {
  ...inventoryMessages,
  ...coreMessages,
  ...archX86Messages,
  ...archAarch64Messages,
  ...archOtherMessages,
  ...mmMessages,
  ...filesMessages,
  ...fdkindsMessages,
  ...socketsMessages,
  ...nsMessages,
  ...netMessages,
  ...rpcMessages,
};

export const enums = {
  ...inventoryEnums,
  ...coreEnums,
  ...archX86Enums,
  ...archAarch64Enums,
  ...archOtherEnums,
  ...mmEnums,
  ...filesEnums,
  ...fdkindsEnums,
  ...socketsEnums,
  ...nsEnums,
  ...netEnums,
  ...rpcEnums,
};
