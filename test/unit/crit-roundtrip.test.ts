// encode(decode(x)) == x, byte for byte, for random images of every kind, through plain and
// --pretty JSON text; and the fixture dump through the command line.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dumpImage, loadImage, parseJson, toJson } from '../../src/crit/index.ts';
import { writeImage } from '../../src/images/index.ts';
import { genKinds, imageArb, scratchDir, writeGenImage } from '../fixtures/arbitrary.ts';

const RUNS = Number(process.env.CRIT_RUNS ?? 15);

let dir = '';
before(() => {
  dir = scratchDir('crit-rt-');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function roundTrip(file: string): void {
  const bytes = fs.readFileSync(file);
  for (const pretty of [false, true]) {
    const doc = loadImage(file, { pretty });
    const text = toJson(doc as never, pretty);
    const again = dumpImage(parseJson(text));
    assert.deepEqual(again, bytes, `${path.basename(file)}${pretty ? ' --pretty' : ''}\n${text.slice(0, 4000)}`);
  }
}

describe('crit round trip', () => {
  for (const kind of genKinds()) {
    it(`${kind.id}: random images decode and encode to the same bytes`, () => {
      let n = 0;
      fc.assert(
        fc.property(imageArb(kind), (img) => {
          roundTrip(writeGenImage(dir, img, `rt-${n++}-${kind.id}`));
        }),
        { numRuns: RUNS, seed: 1 + kind.id.length * 7919 },
      );
    });
  }

  it('strings that are not UTF-8 (paths) survive as escapes', () => {
    const file = path.join(dir, 'files.img');
    const name = Buffer.from([0x2f, 0x74, 0xff, 0xfe, 0x80, 0x61, 0xc3]);
    const fown = { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 };
    writeImage(file, 'file_entry', [{ type: 'REG', id: 1, reg: { id: 1, flags: 0, pos: 0n, fown, name } }]);
    roundTrip(file);
  });

  it('the fixture dump', () => {
    const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'dump');
    for (const f of fs.readdirSync(fixtures)) if (!f.startsWith('pages-')) roundTrip(path.join(fixtures, f));
  });
});
