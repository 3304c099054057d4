// CRIU's page server protocol (criu/page-xfer.c), over TCP: each command is a C struct
// page_server_iov { u32 cmd; u64 nr_pages; u64 vaddr; u64 dst_id; } in host byte order, 32 bytes
// with the 4 padding bytes after cmd. An ADD's page bytes follow its header; OPEN2 is answered
// with one has_parent byte, PARENT with an int32, CLOSE with the int32 status 0.
export const PS_IOV_SIZE = 32;

export const PS = {
  ADD: 1,
  HOLE: 2,
  OPEN: 3,
  OPEN2: 4,
  PARENT: 5,
  ADD_F: 6,
  GET: 7,
  CLOSE: 0x1023,
  FORCE_CLOSE: 0x1024,
} as const;

/** The pagemap flags ride in the cmd's high 16 bits (ADD_F). */
const CMD_BITS = 16;
const TYPE_BITS = 8n;
const TYPE_PID = 1,
  TYPE_SHMEM = 2;
/** Type codes older CRIUs sent (their CR_FD_* numbers), accepted as CRIU accepts them. */
const LEGACY_PID = [10, 11, 16, 17];
const LEGACY_SHMEM = [27, 28, 29, 32, 33, 34];

export interface PsIov {
  cmd: number;
  flags: number;
  nrPages: bigint;
  vaddr: bigint;
  dstId: bigint;
}

export function encodeIov(cmd: number, flags: number, nrPages: bigint, vaddr: bigint, dstId: bigint): Buffer {
  const b = Buffer.alloc(PS_IOV_SIZE);
  b.writeUInt32LE(((flags << CMD_BITS) | cmd) >>> 0, 0);
  b.writeBigUInt64LE(nrPages, 8);
  b.writeBigUInt64LE(vaddr, 16);
  b.writeBigUInt64LE(dstId, 24);
  return b;
}

export function decodeIov(b: Buffer): PsIov {
  const raw = b.readUInt32LE(0);
  return {
    cmd: raw & 0xffff,
    flags: raw >>> CMD_BITS,
    nrPages: b.readBigUInt64LE(8),
    vaddr: b.readBigUInt64LE(16),
    dstId: b.readBigUInt64LE(24),
  };
}

/** encode_pm: which pagemap image the pages are for (a task's, or a shared memory object's). */
export function encodeDst(id: number | bigint, shmem: boolean): bigint {
  return (BigInt(id) << TYPE_BITS) | BigInt(shmem ? TYPE_SHMEM : TYPE_PID);
}

export function decodeDst(dst: bigint): { id: bigint; shmem: boolean } | undefined {
  const type = Number(dst & 0xffn);
  const id = dst >> TYPE_BITS;
  if (type === TYPE_PID || LEGACY_PID.includes(type)) return { id, shmem: false };
  if (type === TYPE_SHMEM || LEGACY_SHMEM.includes(type)) return { id, shmem: true };
  return undefined;
}

/** Pages ids of a page server's pages-N.img start here (CRIU's up_page_ids_base), clear of a dump's own. */
export const SERVER_PAGES_ID_BASE = 0x10001;
