// A task's memory: its VMAs and mm fields (mm_entry), its private pages, and the shared
// memory objects (MAP_SHARED anonymous memory, memfds) that tasks map.
//   layout.ts   CRIU's VMA status bits and how a /proc VMA maps onto them
//   dump.ts     mm_entry and the private pages of a frozen task
//   restore.ts  the address space of a stub rebuilt: VMAs, special mappings, mm fields
//   inherit.ts  ... keeping what a child still shares with its restored parent
//   fill.ts     page data into a restored task (part of it read in by the task itself)
//   shmem.ts    shared memory objects, saved once and made once in criu-ts on restore
//   shstk.ts    shadow-stack VMAs (arm64 GCS), recreated with map_shadow_stack
//   aio.ts      AIO rings (io_setup), made again at their address with their events
export { dumpMm, preDumpPages, mmClaims, type MmDumpStats } from './dump.ts';
export { armTracking, ParentTrack, TRACK_FILE, type TrackTask } from './track.ts';
export { isAioRing, restoreAioRings } from './aio.ts';
export { VMA, PE, dontExpandOwned, splitGuards, isSocketVma } from './layout.ts';
export {
  prepareAddressSpace,
  installGuards,
  restoreVmas,
  restoreMmFields,
  sameMmFields,
  findHole,
  vmaRanges,
  mapsRanges,
  withoutRanges,
  coalesce,
  type MmRestoreInput,
  type Range,
} from './restore.ts';
export { restoreAddressSpace, inheritedVmas, type AddressSpaceInput } from './inherit.ts';
export { ShmemObjects, dumpShmemContent, shmemSizes, shmemContent, pullFd, type ShmemSource } from './shmem.ts';
