import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtoError, ProtoRegistry, decodeMessage, encodeMessage, registry, stringBytes, unknownFields } from '../../src/images/index.ts';
import type { FieldDef, MessageDef, ProtoObject } from '../../src/images/index.ts';

// An independent varint encoder, so expectations do not come from the code under test.
function varint(v: bigint): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return out;
}
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (...parts: (number | number[])[]) => Buffer.from(parts.flat());

const F = (
  no: number,
  name: string,
  type: FieldDef['type'],
  label: FieldDef['label'] = 'opt',
  extra: Partial<FieldDef> = {},
): FieldDef => ({ no, name, type, label, ...extra });

const TEST_MSGS: MessageDef[] = [
  {
    name: 'all',
    fields: [
      F(1, 'u32', 'uint32'),
      F(2, 'i32', 'int32'),
      F(3, 's32', 'sint32'),
      F(4, 'u64', 'uint64'),
      F(5, 'i64', 'int64'),
      F(6, 's64', 'sint64'),
      F(7, 'b', 'bool'),
      F(8, 'str', 'string'),
      F(9, 'by', 'bytes'),
      F(10, 'f32', 'fixed32'),
      F(11, 'f64', 'fixed64'),
      F(12, 'sf32', 'sfixed32'),
      F(13, 'sf64', 'sfixed64'),
      F(14, 'fl', 'float'),
      F(15, 'db', 'double'),
      F(16, 'color', 'enum', 'opt', { ref: 'color' }),
      F(17, 'inner', 'message', 'opt', { ref: 'inner' }),
      F(18, 'ru32', 'uint32', 'rep'),
      F(19, 'rs64', 'sint64', 'rep'),
      F(20, 'rf32', 'fixed32', 'rep'),
      F(21, 'rinner', 'message', 'rep', { ref: 'inner' }),
      F(22, 'rstr', 'string', 'rep'),
      F(23, 'rb', 'bool', 'rep'),
      F(24, 'rdb', 'double', 'rep'),
    ],
  },
  { name: 'inner', fields: [F(1, 'a', 'uint32', 'req'), F(2, 'b', 'string')] },
  { name: 'deep', fields: [F(1, 'next', 'message', 'opt', { ref: 'deep' })] },
  { name: 'dflt', fields: [F(1, 'x', 'bool', 'req', { default: true }), F(2, 'y', 'sint32', 'opt', { default: -1 })] },
  // "v1" and "v2" of one message: v1 lacks fields 2, 4, 6, 7 and 100
  { name: 'v1', fields: [F(1, 'a', 'uint32', 'req'), F(3, 'c', 'string'), F(5, 'e', 'uint64', 'rep')] },
  {
    name: 'v2',
    fields: [
      F(1, 'a', 'uint32', 'req'),
      F(2, 'b', 'fixed64'),
      F(3, 'c', 'string'),
      F(4, 'd', 'message', 'opt', { ref: 'inner' }),
      F(5, 'e', 'uint64', 'rep'),
      F(6, 'f', 'fixed32', 'rep'),
      F(7, 'g', 'sint32'),
      F(100, 'z', 'uint64'),
    ],
  },
];
const reg = new ProtoRegistry(TEST_MSGS, [{ name: 'color', values: { RED: 0, GREEN: 1, BLUE: 7 } }]);

function field1(type: FieldDef['type']): ProtoRegistry {
  return new ProtoRegistry([{ name: 'm', fields: [F(1, 'v', type)] }]);
}

describe('varint and zigzag', () => {
  const cases: [FieldDef['type'], unknown, bigint][] = [
    ['uint32', 0, 0n],
    ['uint32', 1, 1n],
    ['uint32', 127, 127n],
    ['uint32', 128, 128n],
    ['uint32', 300, 300n],
    ['uint32', 16383, 16383n],
    ['uint32', 16384, 16384n],
    ['uint32', 0xffffffff, 0xffffffffn],
    ['int32', -1, -1n],
    ['int32', -0x80000000, -0x80000000n],
    ['int32', 0x7fffffff, 0x7fffffffn],
    ['sint32', 0, 0n],
    ['sint32', -1, 1n],
    ['sint32', 1, 2n],
    ['sint32', -2, 3n],
    ['sint32', 0x7fffffff, 0xfffffffen],
    ['sint32', -0x80000000, 0xffffffffn],
    ['uint64', 0n, 0n],
    ['uint64', 0xffffffffff600000n, 0xffffffffff600000n],
    ['uint64', (1n << 64n) - 1n, (1n << 64n) - 1n],
    ['uint64', 1n << 32n, 1n << 32n],
    ['uint64', (1n << 35n) - 1n, (1n << 35n) - 1n],
    ['uint64', 1n << 63n, 1n << 63n],
    ['int64', -1n, -1n],
    ['int64', -(1n << 63n), -(1n << 63n)],
    ['int64', (1n << 63n) - 1n, (1n << 63n) - 1n],
    ['sint64', -1n, 1n],
    ['sint64', -(1n << 63n), (1n << 64n) - 1n],
    ['sint64', (1n << 63n) - 1n, (1n << 64n) - 2n],
    ['sint64', 0xffffffffn, 0x1fffffffen],
  ];
  for (const [type, value, wire] of cases) {
    it(`${type} ${value}`, () => {
      const r = field1(type);
      const enc = r.encode('m', { v: value });
      assert.equal(hexOf(enc), hexOf(bytes(0x08, varint(wire))));
      const dec = r.decode('m', enc);
      assert.deepEqual(dec, { v: value });
    });
  }

  it('accepts safe-integer numbers for 64-bit fields and decodes bigint', () => {
    const r = field1('uint64');
    assert.deepEqual(r.decode('m', r.encode('m', { v: 2 ** 40 + 5 })), { v: 2n ** 40n + 5n });
    assert.deepEqual(field1('int64').decode('m', field1('int64').encode('m', { v: -5 })), { v: -5n });
  });

  it('decodes the low 32 bits of an over-wide uint32 varint', () => {
    const r = field1('uint32');
    assert.deepEqual(r.decode('m', bytes(0x08, varint((1n << 40n) + 5n))), { v: 5 });
  });

  it('rejects out-of-range values on encode', () => {
    assert.throws(() => field1('uint32').encode('m', { v: -1 }), ProtoError);
    assert.throws(() => field1('uint32').encode('m', { v: 2 ** 32 }), ProtoError);
    assert.throws(() => field1('int32').encode('m', { v: 2 ** 31 }), ProtoError);
    assert.throws(() => field1('uint32').encode('m', { v: 1.5 }), ProtoError);
    assert.throws(() => field1('uint64').encode('m', { v: 1n << 64n }), ProtoError);
    assert.throws(() => field1('uint64').encode('m', { v: -1n }), ProtoError);
    assert.throws(() => field1('int64').encode('m', { v: 1n << 63n }), ProtoError);
    assert.throws(() => field1('uint64').encode('m', { v: 2 ** 60 }), /not a valid uint64/);
    assert.throws(() => field1('bool').encode('m', { v: 1 }), /m\.v: 1 is not a valid bool/);
    assert.throws(() => field1('string').encode('m', { v: 5 }), ProtoError);
  });

  it('varint over 10 bytes and truncated varints are ProtoErrors', () => {
    const r = field1('uint64');
    assert.throws(() => r.decode('m', bytes(0x08, Array(10).fill(0xff), 0x01)), /varint over 10 bytes at byte 1/);
    assert.throws(() => r.decode('m', bytes(0x08, 0xff, 0xff)), /truncated varint at byte 1/);
    assert.throws(() => r.decode('m', bytes(0x08)), /truncated varint/);
    // a 10-byte varint whose last byte has extra bits: the extra bits are dropped
    assert.deepEqual(r.decode('m', bytes(0x08, Array(9).fill(0xff), 0x7f)), { v: (1n << 64n) - 1n });
  });
});

describe('all scalar types', () => {
  it('round-trips every type', () => {
    const v: ProtoObject = {
      u32: 4000000000,
      i32: -12345,
      s32: -7,
      u64: 0xffffffffff600000n,
      i64: -(1n << 40n),
      s64: -(1n << 62n),
      b: true,
      str: 'héllo ✓ 𝄞',
      by: Buffer.from([0, 1, 2, 255]),
      f32: 0xdeadbeef,
      f64: 0x0123456789abcdefn,
      sf32: -2,
      sf64: -(1n << 63n),
      fl: 1.5,
      db: -Math.PI,
      color: 7,
      inner: { a: 1, b: 'x' },
      ru32: [1, 300, 0xffffffff],
      rs64: [-1n, 0n, 1n],
      rf32: [1, 2],
      rinner: [{ a: 2 }, { a: 3, b: '' }],
      rstr: ['a', ''],
      rb: [true, false],
      rdb: [0.25],
    };
    const enc = reg.encode('all', v);
    const dec = reg.decode('all', enc);
    assert.deepEqual(dec, v);
    assert.equal(hexOf(reg.encode('all', dec)), hexOf(enc));
  });

  it('writes fields in ascending number order, repeated unpacked', () => {
    const enc = reg.encode('all', { ru32: [1, 2], u32: 5, inner: { a: 1 } });
    assert.equal(hexOf(enc), hexOf(bytes(0x08, 5, 0x8a, 0x01, 2, 0x08, 1, 0x90, 0x01, 1, 0x90, 0x01, 2)));
  });

  it('omits absent optionals (undefined or null) and empty repeated fields', () => {
    assert.equal(reg.encode('all', { u32: undefined, i32: null, ru32: [] }).length, 0);
    assert.deepEqual(reg.decode('all', Buffer.alloc(0)), {
      ru32: [],
      rs64: [],
      rf32: [],
      rinner: [],
      rstr: [],
      rb: [],
      rdb: [],
    });
  });

  it('encodes enums by name and rejects unknown names', () => {
    assert.deepEqual(reg.decode('all', reg.encode('all', { color: 'BLUE' })).color, 7);
    assert.throws(() => reg.encode('all', { color: 'PINK' }), /all\.color: "PINK" is not a valid color value/);
    assert.throws(() => reg.encode('all', { color: 'toString' }), ProtoError);
    // unknown numeric enum values are kept as numbers
    assert.equal(reg.decode('all', bytes(0x80, 0x01, 0x63)).color, 99);
  });

  it('uses multi-byte length prefixes for big nested messages', () => {
    const big = { rinner: Array.from({ length: 3 }, (_, i) => ({ a: i, b: 'x'.repeat(200 + i * 20000) })) };
    const enc = reg.encode('all', big);
    assert.deepEqual(reg.decode('all', enc).rinner, big.rinner);
    const nested = { inner: { a: 1, b: 'y'.repeat(70000) } };
    assert.deepEqual(reg.decode('all', reg.encode('all', nested)).inner, nested.inner);
  });

  it('round-trips non-UTF-8 strings byte-exactly', () => {
    const raw = bytes(0x2f, 0x74, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf0, 0x9d, 0x84, 0x9e, 0xe2, 0x82);
    const enc = bytes(0x42, raw.length, [...raw]);
    const dec = reg.decode('all', enc);
    assert.equal(typeof dec.str, 'string');
    assert.equal(hexOf(stringBytes(dec.str as string)), hexOf(raw));
    assert.equal(hexOf(reg.encode('all', dec)), hexOf(enc));
    assert.equal(hexOf(reg.encode('all', { str: raw })), hexOf(enc));
  });
});

describe('required fields and defaults', () => {
  it('rejects a missing required field on encode and decode', () => {
    assert.throws(
      () => reg.encode('inner', {}),
      (e: unknown) => e instanceof ProtoError && e.message === 'missing required field inner.a',
    );
    assert.throws(() => reg.decode('inner', bytes(0x12, 0)), /^ProtoError: missing required field inner\.a$/);
    assert.throws(() => reg.decode('all', bytes(0x8a, 0x01, 0)), /missing required field inner\.a/);
    assert.throws(
      () => decodeMessage('mm_entry', encodeMessage('pstree_entry', { pid: 1, ppid: 0, pgid: 1, sid: 1 })),
      /missing required field mm_entry\./,
    );
  });

  it('fills a required field from its schema default but leaves optional defaults absent', () => {
    assert.equal(hexOf(reg.encode('dflt', {})), '0801');
    assert.deepEqual(reg.decode('dflt', bytes(0x08, 0)), { x: false });
    const ud = encodeMessage('user_desc_t', {
      entry_number: 12,
      base_addr: 0,
      limit: 0,
      seg_32bit: false,
      contents_h: false,
      contents_l: false,
      limit_in_pages: false,
      usable: false,
    });
    const d = decodeMessage('user_desc_t', ud);
    assert.equal(d.read_exec_only, true);
    assert.equal(d.seg_not_present, true);
  });
});

describe('malformed input', () => {
  it('reports wrong wire types, bad lengths and groups', () => {
    assert.throws(() => reg.decode('all', bytes(0x0d, 1, 2, 3, 4)), /wrong wire type 5 for field all\.u32 \(expected 0\)/);
    assert.throws(() => reg.decode('all', bytes(0x42, 5, 0x61)), /length 5 of field all\.str past end/);
    assert.throws(() => reg.decode('all', bytes(0x42, varint(1n << 40n))), /past end/);
    assert.throws(() => reg.decode('all', bytes(0xfb, 0x01)), /group/);
    assert.throws(() => reg.decode('all', bytes(0xfe, 0x01)), /invalid wire type 6/);
    assert.throws(() => reg.decode('all', bytes(0x00, 0x01)), /field number 0/);
    assert.throws(() => reg.decode('all', bytes(0x55, 1, 2)), /truncated field all\.f32/);
    assert.throws(() => reg.decode('v1', bytes(0x11, 1, 2)), /truncated fixed64 field 2 at byte 1/);
    assert.throws(() => reg.decode('all', bytes(0x59, 1, 2)), /truncated field all\.f64 at byte 1/);
  });

  it('limits nesting depth', () => {
    let b = Buffer.alloc(0);
    for (let i = 0; i < 150; i++) b = Buffer.concat([bytes(0x0a, varint(BigInt(b.length))), b]);
    assert.throws(() => reg.decode('deep', b), /nested deeper than 100/);
  });

  it('never hangs or throws anything but ProtoError on random bytes', () => {
    const names = ['all', 'v2', 'deep', 'core_entry', 'pagemap_entry', 'mm_entry', 'file_entry', 'cgroup_entry'];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...names), (data, name) => {
        const r = name.includes('_') ? registry : reg;
        try {
          r.decode(name, data);
        } catch (e) {
          if (!(e instanceof ProtoError)) throw e;
        }
      }),
      { numRuns: 20000 },
    );
  });

  it('survives mutated valid messages', () => {
    const valid = reg.encode('all', { u32: 5, str: 'abc', inner: { a: 1, b: 'q' }, rs64: [-5n, 9n], f64: 7n });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(valid.length),
        (muts, cut) => {
          const b = Buffer.from(valid.subarray(0, cut));
          for (const [i, v] of muts) if (i < b.length) b[i] = v;
          try {
            reg.decode('all', b);
          } catch (e) {
            if (!(e instanceof ProtoError)) throw e;
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('packed input', () => {
  it('accepts packed repeated scalars and writes them unpacked', () => {
    const packedU32 = [...varint(1n), ...varint(300n), ...varint(0xffffffffn)];
    const packedS64 = [...varint(1n), ...varint(2n), ...varint((1n << 64n) - 1n)];
    const packedF32 = [1, 0, 0, 0, 2, 0, 0, 0];
    const packedDb = [...Buffer.from(new Float64Array([0.5]).buffer)];
    const packedB = [1, 0, 1];
    const enc = bytes(
      0x92,
      0x01,
      packedU32.length,
      packedU32,
      0x9a,
      0x01,
      packedS64.length,
      packedS64,
      0xa2,
      0x01,
      packedF32.length,
      packedF32,
      0xba,
      0x01,
      packedB.length,
      packedB,
      0xc2,
      0x01,
      packedDb.length,
      packedDb,
      0x90,
      0x01,
      7,
    );
    const dec = reg.decode('all', enc);
    assert.deepEqual(dec.ru32, [1, 300, 0xffffffff, 7]);
    assert.deepEqual(dec.rs64, [-1n, 1n, -(1n << 63n)]);
    assert.deepEqual(dec.rf32, [1, 2]);
    assert.deepEqual(dec.rb, [true, false, true]);
    assert.deepEqual(dec.rdb, [0.5]);
    assert.equal(hexOf(reg.encode('all', { ru32: [1, 2] })), '9001019001' + '02');
  });

  it('rejects a truncated packed element', () => {
    assert.throws(() => reg.decode('all', bytes(0xa2, 0x01, 3, 1, 0, 0)), ProtoError);
  });

  it('decodes packed pstree threads like unpacked', () => {
    const unpacked = encodeMessage('pstree_entry', { pid: 5, ppid: 1, pgid: 5, sid: 5, threads: [5, 32725] });
    assert.equal(hexOf(unpacked), '0805100118052005280528d5ff01');
    const packed = bytes(0x08, 5, 0x10, 1, 0x18, 5, 0x20, 5, 0x2a, 4, 5, 0xd5, 0xff, 0x01);
    assert.deepEqual(decodeMessage('pstree_entry', packed), decodeMessage('pstree_entry', unpacked));
  });
});

describe('unknown fields', () => {
  const v2obj = {
    a: 1,
    b: 0x1122334455667788n,
    c: 'keep',
    d: { a: 9, b: 'in' },
    e: [1n, 1n << 40n],
    f: [5, 6],
    g: -3,
    z: 1n << 63n,
  };

  it('are kept and re-emitted byte-exactly', () => {
    const enc = reg.encode('v2', v2obj);
    const dec = reg.decode('v1', enc);
    assert.deepEqual(dec, { a: 1, c: 'keep', e: [1n, 1n << 40n] });
    assert.deepEqual(
      unknownFields(dec).map((u) => [u.no, u.wire]),
      [
        [2, 1],
        [4, 2],
        [6, 5],
        [6, 5],
        [7, 0],
        [100, 0],
      ],
    );
    assert.equal(hexOf(reg.encode('v1', dec)), hexOf(enc));
    assert.deepEqual(reg.decode('v2', reg.encode('v1', dec)), v2obj);
    assert.equal(JSON.stringify(Object.keys(dec)), '["a","c","e"]');
  });

  it('survive changes to known fields', () => {
    const dec = reg.decode('v1', reg.encode('v2', v2obj));
    dec.a = 77;
    const back = reg.decode('v2', reg.encode('v1', dec));
    assert.equal(back.a, 77);
    assert.equal(back.z, 1n << 63n);
  });

  it('round-trip in nested messages (crit 3.17-style reader of a newer core)', () => {
    const core = {
      mtype: 1,
      thread_core: {
        futex_rla: 0n,
        futex_rla_len: 24,
        cg_set: 1,
        rseq_entry: { rseq_abi_pointer: 0x7f00n, rseq_abi_size: 32, signature: 0x53053053 },
      },
    };
    const enc = encodeMessage('core_entry', core);
    const old = new ProtoRegistry([
      { name: 'core_entry', fields: [F(1, 'mtype', 'uint32', 'req'), F(5, 'thread_core', 'message', 'opt', { ref: 'tc' })] },
      { name: 'tc', fields: [F(1, 'futex_rla', 'uint64', 'req'), F(2, 'futex_rla_len', 'uint32', 'req')] },
    ]);
    const dec = old.decode('core_entry', enc);
    assert.equal(unknownFields(dec.thread_core as object).length, 2);
    assert.equal(hexOf(old.encode('core_entry', dec)), hexOf(enc));
  });

  it('property: decode(encode(x)) re-encodes identically through an older schema', () => {
    const arb = fc.record({
      a: fc.nat(),
      b: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
      c: fc.option(fc.string(), { nil: undefined }),
      d: fc.option(fc.record({ a: fc.nat(), b: fc.option(fc.string(), { nil: undefined }) }), { nil: undefined }),
      e: fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { maxLength: 3 }),
      f: fc.array(fc.nat(), { maxLength: 3 }),
      g: fc.option(fc.integer({ min: -0x80000000, max: 0x7fffffff }), { nil: undefined }),
      z: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
    });
    fc.assert(
      fc.property(arb, (o) => {
        const enc = reg.encode('v2', o);
        assert.equal(hexOf(reg.encode('v1', reg.decode('v1', enc))), hexOf(enc));
        assert.equal(hexOf(reg.encode('v2', reg.decode('v2', enc))), hexOf(enc));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('registry', () => {
  it('validates schemas', () => {
    assert.throws(
      () => new ProtoRegistry([{ name: 'x', fields: [F(1, 'a', 'message', 'opt', { ref: 'nope' })] }]),
      /unknown message type nope/,
    );
    assert.throws(() => new ProtoRegistry([{ name: 'x', fields: [F(1, 'a', 'uint32'), F(1, 'b', 'uint32')] }]), /duplicate field number 1/);
    assert.throws(
      () =>
        new ProtoRegistry([
          { name: 'x', fields: [] },
          { name: 'x', fields: [] },
        ]),
      /duplicate message x/,
    );
    assert.throws(() => reg.decode('nope', Buffer.alloc(0)), /unknown message nope/);
    assert.throws(() => reg.decode('all', Buffer.alloc(2), 1, 5), /bad range/);
  });

  it('decodes a sub-range of a buffer and plain Uint8Arrays', () => {
    const enc = reg.encode('inner', { a: 3 });
    const framed = Buffer.concat([Buffer.from([9, 9]), enc, Buffer.from([9])]);
    assert.deepEqual(reg.decode('inner', framed, 2, 2 + enc.length), { a: 3 });
    assert.deepEqual(reg.decode('inner', new Uint8Array(enc)), { a: 3 });
  });

  it('holds the GCS thread info extension', () => {
    const ti = registry.message('thread_info_aarch64');
    const gcs = ti.fields.find((f) => f.no === 6);
    assert.deepEqual([gcs?.name, gcs?.label, gcs?.type, gcs?.ref], ['gcs', 'opt', 'message', 'user_aarch64_gcs_entry']);
    const entry = registry.message('user_aarch64_gcs_entry').fields.map((f) => [f.no, f.name, f.label, f.type, f.opts?.hex]);
    // Fields 1 and 2 as in CRIU's PR #2725; 100 is criu-ts's own (the locked bits), which CRIU skips.
    assert.deepEqual(entry, [
      [1, 'gcspr_el0', 'req', 'uint64', true],
      [2, 'features_enabled', 'req', 'uint64', true],
      [100, 'features_locked', 'opt', 'uint64', true],
    ]);
  });
});
