import fs from 'node:fs';

/** pread until `b` is full; a short file is an error (`what` names it). */
export function preadFully(fd: number, b: Buffer, pos: number, what = 'file'): void {
  let off = 0;
  while (off < b.length) {
    const n = fs.readSync(fd, b, off, b.length - off, pos + off);
    if (n === 0) throw new Error(`${what} ends early at offset ${pos + off}`);
    off += n;
  }
}
