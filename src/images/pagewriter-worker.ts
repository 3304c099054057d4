// The worker side of PageWriterThread (pagestream.ts): writes each filled slot to its
// pages file, adds it to the file's checksum and frees the slot, in the order posted.
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { startChecksum, type Checksum, type ChecksumKind } from './checksum.ts';

export interface WorkerData { ring: SharedArrayBuffer; state: SharedArrayBuffer; result: SharedArrayBuffer; slotSize: number; slots: number; digest?: ChecksumKind }
export type Message =
  | { op: 'open'; file: number; fd: number }
  | { op: 'data'; file: number; slot: number; len: number }
  | { op: 'close'; file: number };

const { ring, state, result, slotSize, slots, digest } = workerData as WorkerData;
const flags = new Int32Array(state);
const files = new Map<number, { fd: number; sum?: Checksum; size: number; err: string }>();

parentPort!.on('message', (m: Message) => {
  if (m.op === 'open') {
    files.set(m.file, { fd: m.fd, sum: digest ? startChecksum(digest) : undefined, size: 0, err: '' });
  } else if (m.op === 'data') {
    const f = files.get(m.file)!;
    const view = new Uint8Array(ring, m.slot * slotSize, m.len);
    if (!f.err) {
      try {
        for (let off = 0; off < m.len;) off += fs.writeSync(f.fd, view, off, m.len - off);
        f.sum?.update(view);
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
    const n = Buffer.from(result, 8).write(JSON.stringify({ size: f.size, digest: f.sum?.digest() ?? '', err: f.err }), 'utf8');
    const done = new Int32Array(result, 0, 2);
    Atomics.store(done, 1, n);
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
  }
});
