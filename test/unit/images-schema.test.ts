// Checks the schema data against the field tables of the image-format reference.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import { messages, registry } from '../../src/images/index.ts';

const REF = '/work/shared/reference/criu-image-format.md';
const haveRef = fs.existsSync(REF);

interface RefField {
  no: number;
  name: string;
  label: string;
  type: string;
  opts: string;
}

function parseReference(text: string): { msgs: Map<string, RefField[]>; enums: Map<string, Record<string, number>> } {
  const msgs = new Map<string, RefField[]>();
  const enums = new Map<string, Record<string, number>>();
  let cur: RefField[] | undefined;
  for (const line of text.split('\n')) {
    const h = /^\*\*`(\w+)`\*\* \([\w.-]+\)/.exec(line);
    if (h) {
      cur = [];
      msgs.set(h[1], cur);
      continue;
    }
    const row = /^\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*(req|opt|rep)\s+(\w+)\s*\|([^|]*)\|/.exec(line);
    if (row && cur) {
      cur.push({ no: Number(row[1]), name: row[2], label: row[3], type: row[4], opts: row[5].trim() });
      continue;
    }
    if (line.trim() !== '' && !line.startsWith('|')) cur = undefined;
    const en = /^`(\w+)` \([\w.-]+\): (.*)$/.exec(line);
    if (en) {
      enums.set(
        en[1],
        Object.fromEntries(
          en[2].split(',').map((kv) => {
            const [k, v] = kv.trim().split('=');
            return [k, Number(v)];
          }),
        ),
      );
    }
  }
  return { msgs, enums };
}

describe('schema vs reference tables', { skip: haveRef ? false : `${REF} not present` }, () => {
  const { msgs, enums } = haveRef ? parseReference(fs.readFileSync(REF, 'utf8')) : { msgs: new Map(), enums: new Map() };

  it('parses a sane number of tables', () => {
    assert.ok(msgs.size >= 70, `${msgs.size} tables`);
  });

  it('every referenced message matches field for field', () => {
    for (const [name, fields] of msgs) {
      assert.ok(registry.has(name), `missing message ${name}`);
      const def = registry.message(name);
      // Not in CRIU 4.2: the GCS entry (CRIU's PR #2725) and criu-ts's own fields, numbered from 100.
      const ours = def.fields.filter((f) => !(name === 'thread_info_aarch64' && f.name === 'gcs') && f.no < 100);
      assert.equal(ours.length, fields.length, `${name}: field count`);
      for (const rf of fields) {
        const f = def.fields.find((x) => x.no === rf.no);
        assert.ok(f, `${name}: no field ${rf.no}`);
        assert.equal(f.name, rf.name, `${name}.${rf.no} name`);
        assert.equal(f.label, rf.label, `${name}.${rf.name} label`);
        const type = f.type === 'message' || f.type === 'enum' ? f.ref : f.type;
        assert.equal(type, rf.type, `${name}.${rf.name} type`);
        const opts: string[] = [];
        for (const [k, v] of Object.entries(f.opts ?? {})) opts.push(`${k}=${v}`);
        if (f.default !== undefined) {
          const d =
            f.type === 'enum' ? Object.entries(registry.enum(f.ref!).values).find(([, v]) => v === f.default)?.[0] : String(f.default);
          opts.push(`default=${d}`);
        }
        assert.equal(opts.join(', '), rf.opts, `${name}.${rf.name} opts`);
      }
    }
  });

  it('every referenced enum matches', () => {
    for (const [name, values] of enums) assert.deepEqual({ ...registry.enum(name).values }, values, name);
  });
});

describe('schema sanity', () => {
  it('field numbers are unique and refs resolve', () => {
    // The registry compiles a message when it is first used: every one of them, checked here.
    registry.compileAll();
    assert.equal(registry.messageNames().length, Object.keys(messages).length);
    for (const name of registry.messageNames()) assert.equal(registry.message(name).name, name);
  });
});
