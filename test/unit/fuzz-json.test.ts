// Fuzzing crit's encoder with damaged JSON documents (values replaced by random JSON, keys
// dropped): it either writes an image that decodes again, or refuses with an encode error,
// never anything else. FUZZ_JSON_RUNS (default 3000) for longer runs.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DictError, EncodeError, dumpImage, loadImage } from '../../src/crit/index.ts';
import type { JsonObject, JsonValue } from '../../src/crit/index.ts';
import { ProtoError } from '../../src/images/index.ts';
import { fileNameOf, sampleImages, scratchDir, writeGenImage } from '../fixtures/arbitrary.ts';

const RUNS = Number(process.env.FUZZ_JSON_RUNS ?? 3000);
const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'dump');

let dir = '';
let docs: JsonObject[] = [];
before(() => {
  dir = scratchDir('fuzz-json-');
  const files = fs
    .readdirSync(FIXTURES)
    .filter((f) => !f.startsWith('pages-'))
    .map((f) => path.join(FIXTURES, f));
  for (const img of sampleImages(77, 1)) files.push(writeGenImage(dir, img, `${files.length}-${fileNameOf(img.kind)}`));
  docs = files.flatMap((f) => [loadImage(f), loadImage(f, { pretty: true })]);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Every (container, key) in a document, the top level included. */
function slots(v: JsonValue, out: [JsonObject | JsonValue[], string | number][] = []): typeof out {
  if (Array.isArray(v))
    v.forEach((x, i) => {
      out.push([v, i]);
      slots(x, out);
    });
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) out.push([v, k]), slots(v[k], out);
  return out;
}

const edit = fc.tuple(
  fc.nat(),
  fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }), fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n })),
);

describe('fuzz: crit encode on damaged documents', () => {
  it(`${RUNS} documents`, { timeout: 300_000 }, () => {
    let written = 0;
    fc.assert(
      fc.property(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 3 }), (di, edits) => {
        const doc = structuredClone(docs[di % docs.length]);
        for (const [at, value] of edits) {
          const all = slots(doc);
          if (all.length === 0) break;
          const [obj, key] = all[at % all.length];
          if (value === undefined) {
            if (Array.isArray(obj)) obj.splice(key as number, 1);
            else delete obj[key as string];
          } else (obj as Record<string | number, JsonValue>)[key] = value as JsonValue;
        }
        let img: Buffer;
        try {
          img = dumpImage(doc);
        } catch (e) {
          assert.ok(e instanceof EncodeError || e instanceof DictError || e instanceof ProtoError, String((e as Error).stack));
          assert.ok(!(e as Error).message.includes('\n'), (e as Error).message);
          return;
        }
        const file = path.join(dir, 'out.img');
        fs.writeFileSync(file, img);
        loadImage(file);
        written++;
      }),
      { numRuns: RUNS, seed: 31337 },
    );
    assert.ok(written > 0);
  });
});
