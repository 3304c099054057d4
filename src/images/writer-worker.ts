// The worker side of PagesWriterThread (writer-thread.ts), in the order posted: writes each
// filled slot to its pages file and frees the slot.
// The file is opened with O_DIRECT where the file system allows: page data then goes
// from the slot to the disk without filling the page cache with a second copy of the
// target's memory. A write O_DIRECT refuses (EINVAL: alignment) continues through a
// buffered descriptor of the same file.
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

export interface WorkerData {
  ring: SharedArrayBuffer;
  base: number;
  state: SharedArrayBuffer;
  result: SharedArrayBuffer;
  slotSize: number;
  slots: number;
}
export type Message =
  | { op: 'open'; file: number; fd: number; direct: boolean }
  | { op: 'data'; file: number; slot: number; len: number }
  | { op: 'close'; file: number };

const { ring, base, state, result, slotSize, slots } = workerData as WorkerData;
const flags = new Int32Array(state);
interface File {
  fd: number;
  direct: boolean;
  reopened?: number;
  size: number;
  err: string;
}
const files = new Map<number, File>();

function reply(value: unknown): void {
  const n = Buffer.from(result, 8).write(JSON.stringify(value), 'utf8');
  const done = new Int32Array(result, 0, 2);
  Atomics.store(done, 1, n);
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
}

function writeAll(f: File, view: Uint8Array): void {
  for (let off = 0; off < view.length; ) {
    try {
      off += fs.writeSync(f.reopened ?? f.fd, view, off, view.length - off, f.size + off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL' || !f.direct) throw e;
      f.direct = false;
      f.reopened = fs.openSync(`/proc/self/fd/${f.fd}`, 'r+');
    }
  }
}

parentPort!.on('message', (m: Message) => {
  if (m.op === 'open') {
    files.set(m.file, { fd: m.fd, direct: m.direct, size: 0, err: '' });
  } else if (m.op === 'data') {
    const f = files.get(m.file)!;
    const view = new Uint8Array(ring, base + m.slot * slotSize, m.len);
    if (!f.err) {
      try {
        writeAll(f, view);
        f.size += m.len;
      } catch (e) {
        f.err = `write error at offset ${f.size}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        Atomics.store(flags, slots, 1);
      }
    }
    Atomics.store(flags, m.slot, 0);
    Atomics.notify(flags, m.slot);
  } else {
    const f = files.get(m.file)!;
    files.delete(m.file);
    if (f.reopened !== undefined) fs.closeSync(f.reopened);
    reply({ size: f.size, err: f.err });
  }
});
