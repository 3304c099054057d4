// Fuzzing the image readers with mutated and truncated real images: crit's decoder and
// ImageReader either succeed or throw an ImageError whose message is one line starting with the
// file name, never anything else, and never take long. A decoded image always encodes, and
// decodes again to the same document.
// FUZZ_RUNS (default 10000) and FUZZ_SEED (default 20251130) for longer or other runs.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { MAX_IMAGE, dumpImage, loadImage } from '../../src/crit/index.ts';
import { IMG_COMMON_MAGIC, ImageError, MAGIC, imageKindForFile, readImage } from '../../src/images/index.ts';
import type { ImageKind } from '../../src/images/index.ts';
import { fileNameOf, sampleImages, scratchDir, writeGenImage } from '../fixtures/arbitrary.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20251130);
/** Per input, for all readers together; the inputs are at most a few KiB. */
const MAX_MS = 2000;
const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'dump');

interface Seed {
  readonly name: string;
  readonly kind: ImageKind;
  readonly bytes: Buffer;
}

let dir = '';
let seeds: Seed[] = [];

before(() => {
  dir = scratchDir('fuzz-images-');
  const gen = path.join(dir, 'gen');
  fs.mkdirSync(gen);
  seeds = fs
    .readdirSync(FIXTURES)
    .filter((f) => !f.startsWith('pages-'))
    .map((f) => ({
      name: f,
      kind: imageKindForFile(f)!,
      bytes: fs.readFileSync(path.join(FIXTURES, f)),
    }));
  for (const img of sampleImages(SEED, 2)) {
    const file = writeGenImage(gen, img, `${seeds.length}-${fileNameOf(img.kind)}`);
    seeds.push({ name: fileNameOf(img.kind), kind: img.kind, bytes: fs.readFileSync(file) });
  }
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const stats = { inputs: 0, decoded: 0, refused: 0, slowest: 0 };

/** The one acceptable failure: an ImageError, one line, naming the file. */
function expectImageError(e: unknown, file: string, what: string): void {
  if (!(e instanceof ImageError)) throw new Error(`${what}: not an ImageError: ${e instanceof Error ? e.stack : String(e)}`);
  assert.ok(!e.message.includes('\n'), `${what}: message of more than one line: ${e.message}`);
  assert.ok(e.message.startsWith(`${path.basename(file)}: `), `${what}: message does not start with the file name: ${e.message}`);
}

/** Runs every reader over one input file; returns whether crit decoded it. */
function check(file: string, kind: ImageKind): boolean {
  const t0 = performance.now();
  let ok = false;
  for (const pretty of [false, true]) {
    let doc;
    try {
      doc = loadImage(file, { pretty });
    } catch (e) {
      expectImageError(e, file, 'crit decode');
      continue;
    }
    ok = true;
    // whatever decodes must encode, and decode again to the same document
    const again = path.join(path.dirname(file), `again-${path.basename(file)}`);
    fs.writeFileSync(again, dumpImage(doc));
    assert.ok(isDeepStrictEqual(loadImage(again, { pretty }), doc), `${path.basename(file)}: re-encoded image decodes differently`);
  }
  for (const loadExtra of [true, false]) {
    try {
      readImage(file, { kind, required: true, loadExtra });
    } catch (e) {
      expectImageError(e, file, 'ImageReader');
    }
  }
  const ms = performance.now() - t0;
  stats.slowest = Math.max(stats.slowest, ms);
  assert.ok(ms < MAX_MS, `${path.basename(file)}: ${ms.toFixed(0)} ms`);
  return ok;
}

type Mutation = (b: Buffer) => Buffer;

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 4, 8, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);
// a position anywhere in the input; fast-check's bias towards small numbers alone would keep
// hitting the header
const at = fc.oneof(fc.noBias(fc.nat()), fc.nat());
const pos = (b: Buffer, r: number) => r % (b.length + 1);

const truncate = at.map(
  (r): Mutation =>
    (b) =>
      b.subarray(0, pos(b, r)),
);
const flipBit = fc.tuple(at, fc.integer({ min: 0, max: 7 })).map(
  ([r, bit]): Mutation =>
    (b) => {
      const c = Buffer.from(b);
      const i = Math.min(pos(c, r), c.length - 1);
      if (i >= 0) c[i] ^= 1 << bit;
      return c;
    },
);
const setBytes = fc.tuple(at, fc.uint8Array({ minLength: 1, maxLength: 12 })).map(
  ([r, bytes]): Mutation =>
    (b) => {
      const c = Buffer.from(b);
      c.set(bytes.subarray(0, Math.max(0, c.length - pos(c, r))), pos(c, r));
      return c;
    },
);
// a size word or a field length: the likeliest to make a reader allocate or loop
const setU32 = fc.tuple(at, u32).map(
  ([r, v]): Mutation =>
    (b) => {
      const c = Buffer.from(b);
      const i = pos(c, r);
      if (i + 4 <= c.length) c.writeUInt32LE(v, i);
      return c;
    },
);
const insert = fc.tuple(at, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(
  ([r, bytes]): Mutation =>
    (b) =>
      Buffer.concat([b.subarray(0, pos(b, r)), bytes, b.subarray(pos(b, r))]),
);
const cut = fc.tuple(at, fc.integer({ min: 1, max: 64 })).map(
  ([r, n]): Mutation =>
    (b) =>
      Buffer.concat([b.subarray(0, pos(b, r)), b.subarray(pos(b, r) + n)]),
);
const splice = fc.tuple(at, at, fc.integer({ min: 1, max: 64 })).map(
  ([r, s, n]): Mutation =>
    (b) =>
      Buffer.concat([b.subarray(0, pos(b, r)), b.subarray(pos(b, s), pos(b, s) + n), b.subarray(pos(b, r))]),
);
const longVarint = at.map(
  (r): Mutation =>
    (b) =>
      Buffer.concat([b.subarray(0, pos(b, r)), Buffer.alloc(11, 0xff), b.subarray(pos(b, r))]),
);
const otherMagic = fc.constantFrom(...new Set(Object.values(MAGIC))).map(
  (m): Mutation =>
    (b) => {
      const c = Buffer.from(b);
      if (c.length >= 8) c.writeUInt32LE(m, c.readUInt32LE(0) === IMG_COMMON_MAGIC ? 4 : 0);
      return c;
    },
);

// value changes keep many images valid, so that the decoded-then-encoded path gets exercised too
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: flipBit, weight: 6 },
  { arbitrary: setBytes, weight: 3 },
  { arbitrary: setU32, weight: 2 },
  { arbitrary: truncate, weight: 1 },
  { arbitrary: insert, weight: 1 },
  { arbitrary: cut, weight: 1 },
  { arbitrary: splice, weight: 1 },
  { arbitrary: longVarint, weight: 1 },
  { arbitrary: otherMagic, weight: 1 },
);

describe('fuzz: image readers on mutated images', () => {
  it(`${RUNS} mutated and truncated images (seed ${SEED})`, { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), (si, muts) => {
        const seed = seeds[si % seeds.length];
        const bytes = muts.reduce((b, m) => m(b), seed.bytes);
        const file = path.join(dir, seed.name);
        fs.writeFileSync(file, bytes);
        stats.inputs++;
        if (check(file, seed.kind)) stats.decoded++;
        else stats.refused++;
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    console.log(
      `fuzz: ${stats.inputs} inputs from ${seeds.length} seed images, ${stats.decoded} decoded, ${stats.refused} refused, slowest ${stats.slowest.toFixed(1)} ms`,
    );
    // mutations that leave a valid image and ones that break it must both be common
    assert.ok(stats.decoded > RUNS / 20 && stats.refused > RUNS / 20, JSON.stringify(stats));
  });

  const special: [string, () => Buffer][] = [
    ['empty file', () => Buffer.alloc(0)],
    ['3 bytes', () => Buffer.from([0x19, 0x43, 0x56])],
    ['head magic only', () => Buffer.from('19435654', 'hex')],
    ['size word cut short', () => Buffer.from('194356543030275016', 'hex')],
    ['size 0xffffffff', () => Buffer.from('1943565430302750ffffffff08', 'hex')],
    ['entry past the end', () => Buffer.from('194356543030275010000000080110', 'hex')],
    ['11-byte varint', () => Buffer.concat([Buffer.from('19435654303027500d00000008', 'hex'), Buffer.alloc(11, 0xff), Buffer.from([1])])],
    ['missing required field', () => Buffer.from('1943565430302750020000000801', 'hex')],
    ['wrong wire type', () => Buffer.from('1943565430302750020000000d01', 'hex')],
    ['field number 0', () => Buffer.from('1943565430302750020000000001', 'hex')],
    ['group wire type', () => Buffer.from('1943565430302750020000000b01', 'hex')],
    ['unknown magic', () => Buffer.from('1943565412345678', 'hex')],
    ['raw pages', () => Buffer.alloc(4096, 0xaa)],
    // cgroup_dir_entry nests in itself: 200 levels deep
    [
      'deep nesting',
      () => {
        let body = Buffer.alloc(0);
        for (let i = 0; i < 200; i++) {
          const name = Buffer.from([0x0a, 1, 0x61]);
          // dir_name, then the child as field 2 (children)
          body = Buffer.concat([name, body.length ? Buffer.concat([Buffer.from([0x12]), varint(body.length), body]) : Buffer.alloc(0)]);
        }
        const dirField = Buffer.concat([Buffer.from([0x12]), varint(body.length), body]);
        const ctl = Buffer.concat([Buffer.from([0x12]), varint(dirField.length), dirField]);
        const size = Buffer.alloc(4);
        size.writeUInt32LE(ctl.length);
        return Buffer.concat([Buffer.from('1943565430333859', 'hex'), size, ctl]);
      },
    ],
  ];
  for (const [what, make] of special) {
    it(`refuses or reads: ${what}`, () => {
      const file = path.join(dir, 'pstree.img');
      fs.writeFileSync(file, make());
      check(file, imageKindForFile('pstree.img')!);
    });
  }

  it('a file over the JSON size limit is refused in one line, without reading it', () => {
    const file = path.join(dir, 'core-1.img');
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, Buffer.from('1943565447380555', 'hex'));
    fs.ftruncateSync(fd, MAX_IMAGE + 1);
    fs.closeSync(fd);
    const t0 = performance.now();
    assert.throws(
      () => loadImage(file),
      (e) => {
        expectImageError(e, file, 'crit decode');
        return /too big/.test((e as Error).message);
      },
    );
    assert.ok(performance.now() - t0 < 100);
    fs.rmSync(file);
  });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
