// SHA-256 on the other core: page data is hashed by a worker thread while the main thread
// goes on reading the target's memory and writing the image, so that the checksum does not
// slow a large dump down. Data is copied into a ring of shared slots; the main thread only
// waits when every slot is still being hashed.
import { Worker } from 'node:worker_threads';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const { ring, state, result, slotSize } = workerData;
const flags = new Int32Array(state);
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let h = hashes.get(m.file);
    if (!h) { h = crypto.createHash('sha256'); hashes.set(m.file, h); }
    h.update(Buffer.from(ring, m.slot * slotSize, m.len));
    Atomics.store(flags, m.slot, 0);
    Atomics.notify(flags, m.slot);
  } else if (m.op === 'digest') {
    const h = hashes.get(m.file) || crypto.createHash('sha256');
    hashes.delete(m.file);
    Buffer.from(result, 8).write(h.digest('hex'), 'latin1');
    const done = new Int32Array(result, 0, 1);
    Atomics.store(done, 0, 1);
    Atomics.notify(done, 0);
  }
});
`;

export class ParallelHash {
  private readonly worker: Worker;
  private readonly ring: SharedArrayBuffer;
  private readonly flags: Int32Array;
  private readonly result: SharedArrayBuffer;
  private readonly slots: number;
  private readonly slotSize: number;
  private next = 0;
  private nextFile = 1;

  constructor(slots = 3, slotSize = 2 << 20) {
    this.slots = slots;
    this.slotSize = slotSize;
    this.ring = new SharedArrayBuffer(slots * slotSize);
    const state = new SharedArrayBuffer(4 * slots);
    this.flags = new Int32Array(state);
    this.result = new SharedArrayBuffer(8 + 64);
    this.worker = new Worker(WORKER, {
      eval: true, workerData: { ring: this.ring, state, result: this.result, slotSize },
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
  }

  /** A hash stream for one file. */
  open(): { update: (d: Uint8Array) => void; digest: () => string } {
    const file = this.nextFile++;
    return { update: (d) => this.update(file, d), digest: () => this.digest(file) };
  }

  private update(file: number, data: Uint8Array): void {
    for (let off = 0; off < data.length; off += this.slotSize) {
      const len = Math.min(this.slotSize, data.length - off);
      const slot = this.next;
      this.next = (this.next + 1) % this.slots;
      while (Atomics.load(this.flags, slot) === 1) Atomics.wait(this.flags, slot, 1, 1000);
      new Uint8Array(this.ring, slot * this.slotSize, len).set(data.subarray(off, off + len));
      Atomics.store(this.flags, slot, 1);
      this.worker.postMessage({ op: 'update', file, slot, len });
    }
  }

  private digest(file: number): string {
    const done = new Int32Array(this.result, 0, 1);
    Atomics.store(done, 0, 0);
    this.worker.postMessage({ op: 'digest', file });
    while (Atomics.load(done, 0) === 0) Atomics.wait(done, 0, 0, 1000);
    return Buffer.from(this.result, 8, 64).toString('latin1');
  }

  close(): void { void this.worker.terminate(); }
}
