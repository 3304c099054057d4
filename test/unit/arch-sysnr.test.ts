/**
 * The backend's syscall numbers against the C library's <sys/syscall.h> on this machine:
 * a wrong number would make criu-ts inject the wrong call.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { arch } from '../../src/kernel/index.ts';

test(`every ${arch.name} syscall number matches <sys/syscall.h>`, () => {
  const names = Object.keys(arch.sys);
  const src = [
    '#include <stdio.h>',
    '#include <sys/syscall.h>',
    'int main(void) {',
    ...names.map((n) => `#ifdef SYS_${n}\n  printf("${n} %ld\\n", (long)SYS_${n});\n#else\n  printf("${n} none\\n");\n#endif`),
    '  return 0;',
    '}',
  ].join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'sysnr-'));
  try {
    writeFileSync(join(dir, 'nr.c'), src);
    execFileSync('gcc', ['-o', join(dir, 'nr'), join(dir, 'nr.c')]);
    const out = execFileSync(join(dir, 'nr'), { encoding: 'utf8' });
    const libc = new Map(
      out
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
    assert.equal(libc.size, names.length);
    for (const n of names) {
      const want = libc.get(n);
      // Headers older than the kernel may lack the newest calls; those are checked by use.
      if (want === 'none') continue;
      assert.equal(String(arch.sys[n as keyof typeof arch.sys]), want, `syscall ${n}`);
    }
    // The calls every dump and restore makes must be known to the headers.
    for (const n of ['mmap', 'munmap', 'clone3', 'openat', 'process_vm_readv', 'rt_sigaction']) assert.notEqual(libc.get(n), 'none', n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
