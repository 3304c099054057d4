/**
 * Socket filters as CRIU stores them in sk_opts_entry.so_filter: one u64 per classic BPF
 * instruction, code << 48 | jt << 40 | jf << 32 | k, whatever the byte order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFilter, decodeFilter } from '../../src/resources/net/skopts.ts';

/** struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } in this machine's (little-endian) order. */
function insn(code: number, jt: number, jf: number, k: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(code, 0);
  b.writeUInt8(jt, 2);
  b.writeUInt8(jf, 3);
  b.writeUInt32LE(k, 4);
  return b;
}

test('a filter encodes to CRIU words and decodes back to the same instructions', () => {
  const prog = Buffer.concat([insn(0x30, 0, 0, 8), insn(0x15, 0, 1, 0x78), insn(0x06, 0, 0, 0), insn(0x06, 0, 0, 0xffffffff)]);
  const words = encodeFilter(prog);
  assert.deepEqual(words, [0x0030_0000_0000_0008n, 0x0015_0001_0000_0078n, 0x0006_0000_0000_0000n, 0x0006_0000_ffff_ffffn]);
  assert.deepEqual(decodeFilter(words), prog);
});

test('no filter is no words', () => {
  assert.deepEqual(encodeFilter(Buffer.alloc(0)), []);
  assert.equal(decodeFilter([]).length, 0);
});
