// AIO rings (io_setup). A ring is a shared mapping of the kernel's aio file ("/[aio]"), the
// kioctx behind it lives in the mm. Saved as CRIU saves it: the VMA as VMA_AREA_AIORING with
// its pages as private memory, and mm_entry.aios (where, how long, how many requests). The
// restore maps the saved pages as anonymous memory at the ring's place, makes a new kioctx of
// the same size, moves its completion tail to where it was (requests to /dev/null, which
// complete at once), copies the events in, and moves the new ring over the old place.
// Requests still in flight at dump time are not seen, as in CRIU.
import { MREMAP, O, processVmReadv } from '../../kernel/index.ts';
import type { InjectionArea, Tracee } from '../../compel/index.ts';
import type { Vma } from '../../proc/index.ts';
import type { Message } from '../types.ts';
import { NotSupportedError } from '../../errors.ts';

type AioRing = Message<'aio_ring_entry'>;

/** struct aio_ring: id, nr, head, tail, magic, compat_features, incompat_features, header_length. */
const RING_HEADER = 32;
const IO_EVENT = 32;
const AIO_RING_MAGIC = 0xa10a10a1;
const IOCB_CMD_PWRITE = 1;
const IOCB_SIZE = 64;

export const isAioRing = (v: Pick<Vma, 'path' | 'deleted'>): boolean => v.path === '/[aio]' && v.deleted;

interface RingHeader {
  nr: number;
  head: number;
  tail: number;
}

function parseHeader(b: Buffer): RingHeader & { magic: number; headerLength: number } {
  return {
    nr: b.readUInt32LE(4),
    head: b.readUInt32LE(8),
    tail: b.readUInt32LE(12),
    magic: b.readUInt32LE(16),
    headerLength: b.readUInt32LE(28),
  };
}

/** Events a ring of `len` bytes holds. */
const eventsIn = (len: number): number => Math.floor((len - RING_HEADER) / IO_EVENT);

/** The ring at `v` in task `pid`, checked as the kernel made it, and its aio_ring_entry. */
export function dumpAioRing(pid: number, v: Vma): AioRing {
  const len = Number(v.end - v.start);
  const where = `task ${pid}: AIO ring at 0x${v.start.toString(16)}`;
  const b = Buffer.alloc(RING_HEADER);
  if (processVmReadv(pid, b, [{ addr: v.start, len: RING_HEADER }]) !== RING_HEADER) throw new Error(`${where}: short read of its header`);
  const h = parseHeader(b);
  const nr = eventsIn(len);
  if (h.magic !== AIO_RING_MAGIC || h.headerLength !== RING_HEADER || h.nr !== nr || h.head >= nr || h.tail >= nr)
    throw new NotSupportedError(`${where}: not a ring as io_setup makes it (magic 0x${h.magic.toString(16)}, nr ${h.nr} of ${nr})`);
  // io_setup(n) makes room for 2 * max(n, 4 * CPUs) + 2 events, rounded up to pages: the
  // n that gives the same ring back (CRIU's estimate; a larger one gives the same ring).
  return { id: v.start, nr_req: Math.floor((nr - 2) / 2), ring_len: len };
}

/**
 * The rings of a task whose memory is back (each ring's saved pages at its place), made
 * again in the task: `tr` runs the calls, `area` holds their arguments.
 */
export function restoreAioRings(tr: Tracee, area: InjectionArea, rings: readonly AioRing[]): void {
  for (const r of rings) restoreRing(tr, area, r);
}

function restoreRing(tr: Tracee, area: InjectionArea, r: AioRing): void {
  const where = `AIO ring at 0x${r.id.toString(16)}`;
  const old = parseHeader(tr.readMem(r.id, RING_HEADER));
  area.reset();
  const ctxAt = area.put(Buffer.alloc(8)); // io_setup wants *ctxp == 0
  tr.syscall('io_setup', r.nr_req, ctxAt);
  const ctx = area.read(ctxAt, 8).readBigUInt64LE(0);
  const fresh = parseHeader(tr.readMem(ctx, RING_HEADER));
  if (fresh.nr !== old.nr || old.head >= old.nr || old.tail >= old.nr)
    throw new Error(
      `${where}: io_setup(${r.nr_req}) made a ring of ${fresh.nr} events, the saved one has ${old.nr} (head ${old.head}, tail ${old.tail})`,
    );
  if (old.head || old.tail) moveTail(tr, area, ctx, old);
  // The events, after the header the kernel keeps.
  tr.writeMem(ctx + BigInt(RING_HEADER), tr.readMem(r.id + BigInt(RING_HEADER), r.ring_len - RING_HEADER));
  const at = tr.syscall('mremap', ctx, r.ring_len, r.ring_len, MREMAP.MAYMOVE | MREMAP.FIXED, r.id);
  if (at !== r.id) throw new Error(`${where}: mremap put the new ring at 0x${at.toString(16)}`);
}

/**
 * The kernel's tail moves only as requests complete: writes of one byte to /dev/null complete
 * at once. A tail behind the head takes a full turn first. The head is the ring's own word,
 * set as io_getevents would, so that completions keep finding room.
 */
function moveTail(tr: Tracee, area: InjectionArea, ctx: bigint, old: RingHeader): void {
  const count = old.tail < old.head ? old.nr + old.tail : old.tail;
  const batch = Math.min(count, old.nr - 1, Math.floor((area.size - 1024) / 8));
  area.reset();
  const path = area.putString('/dev/null');
  const fd = Number(tr.syscall('openat', -100, path, O.WRONLY, 0));
  try {
    const byte = area.alloc(8);
    const iocb = Buffer.alloc(IOCB_SIZE);
    iocb.writeUInt16LE(IOCB_CMD_PWRITE, 16); // aio_lio_opcode
    iocb.writeUInt32LE(fd, 20); // aio_fildes
    iocb.writeBigUInt64LE(byte, 24); // aio_buf
    iocb.writeBigUInt64LE(1n, 32); // aio_nbytes
    const iocbAt = area.put(iocb);
    const ptrs = Buffer.alloc(batch * 8);
    for (let i = 0; i < batch; i++) ptrs.writeBigUInt64LE(iocbAt, i * 8);
    const ptrsAt = area.put(ptrs);
    const head = Buffer.alloc(4);
    for (let done = 0; done < count; ) {
      done += Number(tr.syscall('io_submit', ctx, Math.min(batch, count - done), ptrsAt));
      head.writeUInt32LE(Math.min(done, old.head), 0);
      tr.writeMem(ctx + 8n, head);
    }
  } finally {
    tr.syscallRaw('close', fd);
  }
}
