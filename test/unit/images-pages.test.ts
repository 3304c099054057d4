import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ImageError,
  ImageWriter,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  PagemapReader,
  PagemapWriter,
  readImage,
  readMessages,
} from '../../src/images/index.ts';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'images-pages-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const page = (fill: number, n = 1) => Buffer.alloc(4096 * n, fill);
const VSYSCALL = 0xffffffffff600000n;

describe('PagemapWriter / PagemapReader', () => {
  it('round-trips runs and page data', () => {
    const w = new PagemapWriter(dir, 10, 1);
    w.addPages(0x400000n, page(1, 2), PE_PRESENT);
    w.addRun(0x600000n, 3, PE_LAZY); // lazy run: no data
    w.addRun(0x7f0000000000n, 2, PE_PRESENT | PE_LAZY);
    w.writePages(page(2));
    w.writePages(page(3));
    w.addRun(0x7f0000100000n, 1, PE_PARENT);
    w.addPages(VSYSCALL, page(4));
    w.close();
    assert.equal(w.pagesBytes, 5 * 4096);

    assert.equal(fs.statSync(path.join(dir, 'pages-1.img')).size, 5 * 4096);
    const entries = readMessages(path.join(dir, 'pagemap-10.img'), 'pagemap_entry');
    assert.deepEqual(entries[0], { vaddr: 0x400000n, compat_nr_pages: 0, flags: PE_PRESENT, nr_pages: 2n });
    assert.deepEqual(readMessages(path.join(dir, 'pagemap-10.img'), 'pagemap_head'), [{ pages_id: 1 }]);

    const r = new PagemapReader(dir, 10);
    assert.equal(r.pagesId, 1);
    assert.equal(r.length, 5);
    assert.equal(r.pagesBytes, 5 * 4096);
    assert.deepEqual(r.runs, [
      { vaddr: 0x400000n, nrPages: 2, flags: PE_PRESENT, pagesOffset: 0 },
      { vaddr: 0x600000n, nrPages: 3, flags: PE_LAZY, pagesOffset: -1 },
      { vaddr: 0x7f0000000000n, nrPages: 2, flags: PE_PRESENT | PE_LAZY, pagesOffset: 2 * 4096 },
      { vaddr: 0x7f0000100000n, nrPages: 1, flags: PE_PARENT, pagesOffset: -1 },
      { vaddr: VSYSCALL, nrPages: 1, flags: PE_PRESENT, pagesOffset: 4 * 4096 },
    ]);
    assert.equal(r.pageIndex(4), Number(VSYSCALL / 4096n));
    assert.deepEqual(r.readPages(0), page(1, 2));
    assert.deepEqual(r.readPages(2, 1), page(3));
    assert.deepEqual(r.readPages(4), page(4));
    const into = Buffer.alloc(8192);
    assert.equal(r.readPages(2, 0, 2, into).length, 8192);
    assert.throws(() => r.readPages(1), /has no data here/);
    assert.throws(() => r.readPages(0, 1, 2), /outside run/);
    assert.deepEqual(
      [...r].map((x) => x.vaddr),
      r.runs.map((x) => x.vaddr),
    );
    r.close();
  });

  it('merges contiguous runs with equal flags unless told not to', () => {
    for (const merge of [true, false]) {
      const w = new PagemapWriter(dir, merge ? 11 : 12, 2, { merge });
      w.addPages(0x1000n, page(1));
      w.addPages(0x2000n, page(2));
      w.addPages(0x3000n, page(3), PE_PRESENT | PE_LAZY);
      w.addPages(0x5000n, page(4), PE_PRESENT | PE_LAZY);
      w.close();
      const r = new PagemapReader(dir, merge ? 11 : 12);
      assert.deepEqual(
        r.runs.map((x) => [Number(x.vaddr), x.nrPages]),
        merge
          ? [
              [0x1000, 2],
              [0x3000, 1],
              [0x5000, 1],
            ]
          : [
              [0x1000, 1],
              [0x2000, 1],
              [0x3000, 1],
              [0x5000, 1],
            ],
      );
      assert.deepEqual(r.readPages(merge ? 0 : 1, merge ? 1 : 0, 1), page(2));
    }
  });

  it('names shared-memory pagemaps and supports other page sizes', () => {
    const w = new PagemapWriter(dir, 123456789012n, 3, { shmem: true, pageSize: 65536 });
    w.addPages(0n, Buffer.alloc(65536 * 2, 7));
    w.close();
    assert.ok(fs.existsSync(path.join(dir, 'pagemap-shmem-123456789012.img')));
    const r = new PagemapReader(dir, 123456789012n, { shmem: true, pageSize: 65536 });
    assert.deepEqual(r.runs, [{ vaddr: 0n, nrPages: 2, flags: PE_PRESENT, pagesOffset: 0 }]);
    assert.equal(r.readPages(0, 1).length, 65536);
  });

  it('rejects bad runs and mismatched page data', () => {
    const w = new PagemapWriter(dir, 13, 4);
    assert.throws(() => w.addRun(0x1001n, 1, PE_PRESENT), /not page aligned/);
    assert.throws(() => w.addRun(0x1000n, 0, PE_PRESENT), /bad page count 0/);
    assert.throws(() => w.addRun(0x1000n, 1, 8), /bad pagemap flags 8/);
    assert.throws(() => w.addPages(0x1000n, Buffer.alloc(100)), /not whole pages/);
    w.addRun(0x10000n, 2, PE_PRESENT);
    assert.throws(() => w.addRun(0x11000n, 1, PE_PRESENT), /overlaps or precedes the previous run ending at 0x12000/);
    assert.throws(() => w.writePages(page(0, 3)), /12288 bytes of page data but runs announce only 8192/);
    w.writePages(page(0));
    assert.throws(
      () => w.close(),
      (e: unknown) =>
        e instanceof ImageError && e.message === 'pagemap-13.img: runs announce 8192 bytes of page data but 4096 were written',
    );
  });

  it('applies the compat rules to old-style entries', () => {
    const f = path.join(dir, 'pagemap-14.img');
    const w = new ImageWriter(f);
    w.write('pagemap_head', { pages_id: 5 });
    w.write('pagemap_entry', { vaddr: 0x1000n, compat_nr_pages: 2 }); // no flags: present, compat count
    w.write('pagemap_entry', { vaddr: 0x3000n, compat_nr_pages: 1, in_parent: true }); // in parent
    w.write('pagemap_entry', { vaddr: 0x4000n, compat_nr_pages: 1, in_parent: true, flags: PE_LAZY });
    w.write('pagemap_entry', { vaddr: 0x5000n, compat_nr_pages: 9, flags: PE_PRESENT, nr_pages: 3n }); // nr_pages wins
    w.write('pagemap_entry', { vaddr: 0x8000n, compat_nr_pages: 1, in_parent: false }); // in_parent false: present
    w.close();
    const r = new PagemapReader(dir, 14);
    assert.equal(r.pagesId, 5);
    assert.deepEqual(r.runs, [
      { vaddr: 0x1000n, nrPages: 2, flags: PE_PRESENT, pagesOffset: 0 },
      { vaddr: 0x3000n, nrPages: 1, flags: PE_PARENT, pagesOffset: -1 },
      { vaddr: 0x4000n, nrPages: 1, flags: PE_PARENT | PE_LAZY, pagesOffset: -1 },
      { vaddr: 0x5000n, nrPages: 3, flags: PE_PRESENT, pagesOffset: 8192 },
      { vaddr: 0x8000n, nrPages: 1, flags: PE_PRESENT, pagesOffset: 5 * 4096 },
    ]);
  });

  it('decodes unusual entries through the generic codec and reports broken ones', () => {
    const f = path.join(dir, 'pagemap-15.img');
    const head = Buffer.from('1943565425400856', 'hex');
    const entry = (hex: string) => {
      const b = Buffer.from(hex, 'hex');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      return Buffer.concat([len, b]);
    };
    // pagemap_head, then: an entry with an unknown field 9 (varint 1), and one missing compat_nr_pages
    fs.writeFileSync(f, Buffer.concat([head, entry('0801'), entry('0880201000200428014801')]));
    assert.deepEqual(new PagemapReader(dir, 15).runs, [{ vaddr: 0x1000n, nrPages: 1, flags: PE_PRESENT, pagesOffset: 0 }]);
    fs.writeFileSync(f, Buffer.concat([head, entry('0801'), entry('08802010002004')]));
    assert.equal(new PagemapReader(dir, 15).length, 1);
    fs.writeFileSync(f, Buffer.concat([head, entry('0801'), entry('088020')]));
    assert.throws(
      () => new PagemapReader(dir, 15),
      (e: unknown) =>
        e instanceof ImageError &&
        e.message === 'pagemap-15.img: missing required field pagemap_entry.compat_nr_pages in entry at offset 14',
    );
  });

  it('treats a missing pagemap as empty', () => {
    const r = new PagemapReader(dir, 99999);
    assert.equal(r.length, 0);
    assert.equal(r.pagesId, 0);
  });

  it('handles many runs quickly', () => {
    const n = 200_000;
    const w = new PagemapWriter(dir, 16, 6, { merge: false });
    for (let i = 0; i < n; i++) w.addRun(0x7f0000000000n + BigInt(i) * 8192n, 1, PE_LAZY);
    w.close();
    const t = performance.now();
    const r = new PagemapReader(dir, 16);
    const ms = performance.now() - t;
    assert.equal(r.length, n);
    assert.equal(r.vaddr(n - 1), 0x7f0000000000n + BigInt(n - 1) * 8192n);
    assert.ok(ms < 5000, `${ms} ms`);
    assert.equal(readImage(path.join(dir, 'pagemap-16.img')).length, n + 1);
  });
});
