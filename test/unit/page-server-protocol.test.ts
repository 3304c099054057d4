/**
 * The page server's wire format (src/migrate/protocol.ts) against the C ABI: a struct laid out
 * as CRIU's page_server_iov, filled and dumped by a C program, must be the bytes encodeIov
 * makes; destinations decode as CRIU's decode_pm does, older CRIUs' type codes included.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PS, PS_IOV_SIZE, decodeDst, decodeIov, encodeDst, encodeIov } from '../../src/migrate/protocol.ts';
import { tcp } from '../../src/kernel/index.ts';

test('page_server_iov: 32 bytes, padding after cmd, flags in the high 16 bits (the C layout)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'psiov-'));
  try {
    writeFileSync(
      join(dir, 'iov.c'),
      `#include <stdint.h>
#include <stdio.h>
#include <string.h>
struct page_server_iov { uint32_t cmd; uint64_t nr_pages; uint64_t vaddr; uint64_t dst_id; };
int main(void) {
  struct page_server_iov pi;
  memset(&pi, 0, sizeof(pi));
  pi.cmd = (5u << 16) | 6; pi.nr_pages = 0x123456789ull; pi.vaddr = 0x7f0000001000ull; pi.dst_id = (4242ull << 8) | 2;
  const unsigned char *p = (const void *)&pi;
  for (size_t i = 0; i < sizeof(pi); i++) printf("%02x", p[i]);
  return 0;
}
`,
    );
    execFileSync('gcc', ['-O1', '-o', join(dir, 'iov'), join(dir, 'iov.c')]);
    const c = execFileSync(join(dir, 'iov'), { encoding: 'utf8' });
    const mine = encodeIov(PS.ADD_F, 5, 0x123456789n, 0x7f0000001000n, encodeDst(4242, true));
    assert.equal(mine.length, PS_IOV_SIZE);
    assert.equal(mine.toString('hex'), c);
    assert.deepEqual(decodeIov(mine), {
      cmd: PS.ADD_F,
      flags: 5,
      nrPages: 0x123456789n,
      vaddr: 0x7f0000001000n,
      dstId: (4242n << 8n) | 2n,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('destinations: task and shared-memory pagemaps, older CRIUs type codes, unknown types', () => {
  assert.deepEqual(decodeDst(encodeDst(77, false)), { id: 77n, shmem: false });
  assert.deepEqual(decodeDst(encodeDst(0xffffffffn, true)), { id: 0xffffffffn, shmem: true });
  assert.deepEqual(decodeDst((9n << 8n) | 11n), { id: 9n, shmem: false }, 'CRIU 2.x');
  assert.deepEqual(decodeDst((9n << 8n) | 34n), { id: 9n, shmem: true }, 'CRIU 2.x shmem');
  assert.equal(decodeDst((9n << 8n) | 3n), undefined);
});

test('numeric addresses to sockaddr: IPv4, IPv6 with ::, and garbage refused', () => {
  assert.equal(tcp.inetSockaddr('127.0.0.1', 0x1234).toString('hex'), `020012347f000001${'00'.repeat(8)}`);
  const v6 = tcp.inetSockaddr('fe80::1:2', 80);
  assert.equal(v6.length, 28);
  assert.equal(v6.subarray(8, 24).toString('hex'), 'fe800000000000000000000000010002');
  assert.equal(tcp.inetSockaddr('::', 1).subarray(8, 24).toString('hex'), '0'.repeat(32));
  for (const bad of ['1.2.3.256', 'localhost', '1::2::3', '1:2:3:4:5:6:7:8:9', 'g::1']) assert.throws(() => tcp.inetSockaddr(bad, 1), bad);
});
