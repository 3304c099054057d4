import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  IMAGE_KINDS,
  IMG_COMMON_MAGIC,
  ImageDir,
  ImageError,
  ImageReader,
  ImageWriter,
  MAGIC,
  imageFileName,
  imageKindForFile,
  parseImageName,
  readImage,
  readMessages,
  readOne,
  registry,
  writeImage,
  preloadImage,
  dropPreloaded,
} from '../../src/images/index.ts';
import type { ImageKind, MessageName, ProtoObject, ProtoValue } from '../../src/images/index.ts';

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'images-test-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const p = (name: string) => path.join(dir, name);
const u32 = (...v: number[]) => Buffer.from(new Uint32Array(v).buffer);

/** A message with every required field set to a zero value (recursively), from the schema. */
function zero(name: string): ProtoObject {
  const o: ProtoObject = {};
  for (const f of registry.message(name).fields) {
    if (f.label !== 'req' || f.default !== undefined) continue;
    let v: ProtoValue;
    switch (f.type) {
      case 'uint64':
      case 'int64':
      case 'sint64':
      case 'fixed64':
      case 'sfixed64':
        v = 0n;
        break;
      case 'bool':
        v = false;
        break;
      case 'string':
        v = '';
        break;
      case 'bytes':
        v = Buffer.alloc(0);
        break;
      case 'message':
        v = zero(f.ref!);
        break;
      case 'enum':
        v = Object.values(registry.enum(f.ref!).values)[0];
        break;
      default:
        v = 0;
    }
    o[f.name] = v;
  }
  return o;
}

/** What decode returns for zero(name): repeated fields appear as []. */
function decodedZero(name: string): ProtoObject {
  return registry.decode(name, registry.encode(name, zero(name)));
}

function errorLine(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ImageError, `expected ImageError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e.message;
  }
  assert.fail('no error');
}

describe('file names and magics', () => {
  it('maps names to kinds', () => {
    const cases: [string, string, (number | string)[]][] = [
      ['inventory.img', 'INVENTORY', []],
      ['pstree.img', 'PSTREE', []],
      ['core-5.img', 'CORE', [5]],
      ['pagemap-17.img', 'PAGEMAP', [17]],
      ['pagemap-shmem-123456.img', 'SHMEM_PAGEMAP', [123456]],
      ['pages-1.img', 'PAGES', [1]],
      ['fdinfo-2.img', 'FDINFO', [2]],
      ['files.img', 'FILES', []],
      ['tcp-stream-1f2e.img', 'TCP_STREAM', [0x1f2e]],
      ['ghost-file-a.img', 'GHOST_FILE', [10]],
      ['stats-dump', 'STATS', ['dump']],
      ['stats-restore', 'STATS', ['restore']],
      ['irmap-cache', 'IRMAP_CACHE', []],
      ['pages-shmem-9.img', 'SHM_PAGES_OLD', [9]],
      ['reg-files.img', 'REG_FILES', []],
      ['vmas-3.img', 'VMAS', [3]],
      ['signal-p-7.img', 'PSIGNAL', [7]],
      ['tmpfs-dev-66.tar.gz.img', 'TMPFS_DEV', [66]],
      ['netns-ct-4.img', 'NETNF_CT', [4]],
      ['netns-4.img', 'NETNS', [4]],
      ['binfmt-misc.img', 'BINFMT_MISC', []],
      ['binfmt-misc-2.img', 'BINFMT_MISC_OLD', [2]],
      ['memfd.img', 'MEMFD_INODE', []],
      ['seccomp.img', 'SECCOMP', []],
      ['timens-0.img', 'TIMENS', [0]],
    ];
    for (const [name, id, args] of cases) {
      assert.equal(imageKindForFile(name)?.id, id, name);
      assert.deepEqual(parseImageName(name)?.args, args, name);
    }
    for (const bad of ['core.img', 'core-x.img', 'core-5.img.bak', 'tcp-stream-XY.img', 'random', 'pstree.img2']) {
      assert.equal(imageKindForFile(bad), undefined, bad);
    }
  });

  it('formats names', () => {
    assert.equal(imageFileName('CORE', 42), 'core-42.img');
    assert.equal(imageFileName('TCP_STREAM', 0xabcn), 'tcp-stream-abc.img');
    assert.equal(imageFileName('STATS', 'dump'), 'stats-dump');
    assert.equal(imageFileName('SHMEM_PAGEMAP', 2n ** 40n), 'pagemap-shmem-1099511627776.img');
    assert.throws(() => imageFileName('CORE'), /missing argument/);
    assert.throws(() => imageFileName('FILES', 1), /arguments/);
    for (const k of IMAGE_KINDS) {
      const args = [...k.pattern.matchAll(/%(l?u|l?d|x|s)/g)].map((m) => (m[1] === 's' ? 'dump' : 7));
      const name = imageFileName(k.id, ...args);
      const back = parseImageName(name)!;
      // PAGES_OLD shares PAGES' name; it is told apart by content
      assert.equal(back.kind.id, k.id === 'PAGES_OLD' ? 'PAGES' : k.id, name);
    }
  });

  it('has the reference magics', () => {
    assert.equal(IMG_COMMON_MAGIC, 0x54564319);
    assert.equal(MAGIC.INVENTORY, 0x58313116);
    assert.equal(MAGIC.CORE, 0x55053847);
    assert.equal(MAGIC.PAGEMAP, 0x56084025);
    assert.equal(MAGIC.STATS, 0x57093306);
    assert.equal(MAGIC.PIDFD, 0x54435556);
    for (const k of IMAGE_KINDS) {
      for (const e of k.entries) assert.ok(registry.has(e), `${k.id}: ${e}`);
      assert.equal(k.head === 'raw', k.magic === 0, k.id);
    }
  });
});

describe('framing', () => {
  it('reads preloaded bytes once instead of the file, then the file again', () => {
    const f = p('pstree.img');
    writeImage(f, 'pstree_entry', [{ pid: 53, ppid: 0, pgid: 53, sid: 1, threads: [53] }]);
    const other = path.join(fs.mkdtempSync(path.join(dir, 'other-')), 'pstree.img');
    writeImage(other, 'pstree_entry', [{ pid: 54, ppid: 0, pgid: 54, sid: 1, threads: [54] }]);
    preloadImage(f, fs.readFileSync(other));
    assert.equal(readOne(f, 'pstree_entry')!.pid, 54, 'the preloaded bytes');
    assert.equal(readOne(f, 'pstree_entry')!.pid, 53, 'taken once: the file itself next time');
    preloadImage(f, fs.readFileSync(other));
    dropPreloaded(dir);
    assert.equal(readOne(f, 'pstree_entry')!.pid, 53, 'dropped');
  });

  it('writes the observed pstree bytes', () => {
    const f = p('pstree.img');
    writeImage(f, 'pstree_entry', [{ pid: 53, ppid: 0, pgid: 53, sid: 1, threads: [53, 32725] }]);
    const b = fs.readFileSync(f);
    assert.equal(b.subarray(0, 8).toString('hex'), '1943565430302750');
    assert.equal(b.readUInt32LE(8), b.length - 12);
    assert.ok(
      b
        .subarray(12)
        .toString('hex')
        .endsWith('2835' + '28d5ff01'),
    );
    assert.deepEqual(readMessages(f, 'pstree_entry'), [{ pid: 53, ppid: 0, pgid: 53, sid: 1, threads: [53, 32725] }]);
  });

  it('writes an empty seccomp entry as the observed 12 bytes', () => {
    const f = p('seccomp.img');
    writeImage(f, 'seccomp_entry', [{}]);
    assert.equal(fs.readFileSync(f).toString('hex'), '194356544930416400000000');
    assert.deepEqual(
      readImage(f).map((e) => e.msg),
      [{ seccomp_filters: [] }],
    );
  });

  it('writes inventory with a single-word header and stats with the service magic', () => {
    const inv = p('inventory.img');
    writeImage(inv, 'inventory_entry', [{ img_version: 2, fdinfo_per_id: true, ns_per_id: true, lsmtype: 'NO_LSM', plugins_entry: {} }]);
    const b = fs.readFileSync(inv);
    assert.equal(b.subarray(0, 4).toString('hex'), '16313158');
    assert.equal(b.subarray(8, 10).toString('hex'), '0802');
    assert.deepEqual(readOne(inv, 'inventory_entry'), {
      img_version: 2,
      fdinfo_per_id: true,
      ns_per_id: true,
      lsmtype: 0,
      plugins_entry: { plugins: [] },
    });
    const st = p('stats-dump');
    writeImage(st, 'stats_entry', [
      {
        dump: {
          freezing_time: 1,
          frozen_time: 2,
          memdump_time: 3,
          memwrite_time: 4,
          pages_scanned: 5n,
          pages_skipped_parent: 0n,
          pages_written: 5n,
          pages_lazy: 0n,
        },
      },
    ]);
    assert.equal(fs.readFileSync(st).subarray(0, 8).toString('hex'), '4059105506330957');
    assert.equal(readOne(st, 'stats_entry')?.dump?.pages_written, 5n);
  });

  it('round-trips every kind with a zero entry of each of its messages', () => {
    for (const k of IMAGE_KINDS) {
      if (k.head === 'raw' || k.extra || k.id === 'PAGES_OLD') continue;
      const name = imageFileName(k.id, ...[...k.pattern.matchAll(/%(l?u|l?d|x|s)/g)].map((m) => (m[1] === 's' ? 'dump' : 3)));
      const f = p(name);
      const w = new ImageWriter(f, { kind: k });
      for (const e of k.entries) w.write(e, zero(e) as never);
      w.close();
      const got = readImage(f, { kind: k });
      assert.deepEqual(
        got.map((e) => [e.type, e.msg]),
        k.entries.map((e) => [e, decodedZero(e)]),
        k.id,
      );
      // the kind is recognised from the name too
      assert.equal(new ImageReader(f).kind.id, k.id);
    }
  });

  it('reads v1 images (no head magic) and detects kinds of unknown names by magic', () => {
    const f = p('oddname');
    const payload = registry.encode('fs_entry', { cwd_id: 1, root_id: 2 });
    fs.writeFileSync(f, Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.FS, payload.length), payload]));
    const r = new ImageReader(f);
    assert.equal(r.kind.id, 'FS');
    assert.deepEqual(
      [...r].map((e) => e.msg),
      [{ cwd_id: 1, root_id: 2 }],
    );
    const v1 = p('fs-9.img');
    fs.writeFileSync(v1, Buffer.concat([u32(MAGIC.FS, payload.length), payload]));
    const r1 = new ImageReader(v1);
    assert.equal(r1.version, 1);
    assert.equal(readOne(v1, 'fs_entry')?.root_id, 2);
  });

  it('treats missing and zero-length files as empty', () => {
    assert.deepEqual(readImage(p('core-404.img')), []);
    assert.equal(new ImageReader(p('core-404.img')).empty, true);
    fs.writeFileSync(p('core-405.img'), '');
    assert.deepEqual(readImage(p('core-405.img')), []);
    assert.equal(readOne(p('core-405.img'), 'core_entry'), undefined);
    assert.match(
      errorLine(() => readImage(p('core-404.img'), { required: true })),
      /^core-404\.img: cannot open: missing \(ENOENT\)$/,
    );
  });

  it('ImageDir and ImageWriter.create name files by kind', () => {
    const d = new ImageDir(dir);
    const w = d.writer('IDS', 77);
    w.write('task_kobj_ids_entry', { vm_id: 1, files_id: 2, fs_id: 3, sighand_id: 4 });
    w.close();
    assert.equal(d.file('IDS', 77), p('ids-77.img'));
    assert.equal([...d.reader('IDS', 77)][0].msg.files_id, 2);
    const c = ImageWriter.create(dir, 'UTSNS', 2);
    c.write('utsns_entry', { nodename: 'h', domainname: '(none)' });
    c.close();
    assert.equal(readOne(p('utsns-2.img'), 'utsns_entry')?.domainname, '(none)');
  });
});

describe('extra payloads', () => {
  it('pipes-data and fifo-data', () => {
    for (const name of ['pipes-data.img', 'fifo-data.img']) {
      const w = new ImageWriter(p(name));
      w.write('pipe_data_entry', { pipe_id: 141484, bytes: 10, size: 65536 });
      w.writeRaw(Buffer.from('hello-pipe'));
      w.write('pipe_data_entry', { pipe_id: 7, bytes: 0 });
      w.write('pipe_data_entry', { pipe_id: 8, bytes: 3 });
      w.writeRaw(Buffer.from('xyz'));
      w.close();
      const es = readImage(p(name));
      assert.deepEqual(
        es.map((e) => [e.msg.pipe_id, e.extra?.toString()]),
        [
          [141484, 'hello-pipe'],
          [7, ''],
          [8, 'xyz'],
        ],
      );
      const lazy = readImage(p(name), { loadExtra: false });
      assert.equal(lazy[0].extra, undefined);
      const r = new ImageReader(p(name));
      assert.equal(r.readAtOffset(lazy[2].extraOffset!, lazy[2].extraLength!).toString(), 'xyz');
      r.close();
    }
  });

  it('sk-queues, tcp-stream, bpfmap-data', () => {
    let w = new ImageWriter(p('sk-queues.img'));
    w.write('sk_packet_entry', { id_for: 15, length: 8, scm: [{ type: 1, rights: [3, 4] }] });
    w.writeRaw(Buffer.from('sockdata'));
    w.close();
    const sk = readImage(p('sk-queues.img'));
    assert.equal(sk[0].extra?.toString(), 'sockdata');
    assert.deepEqual(sk[0].msg.scm, [{ type: 1, rights: [3, 4] }]);

    w = new ImageWriter(p('tcp-stream-4d2.img'));
    w.write('tcp_stream_entry', { inq_len: 3, inq_seq: 1, outq_len: 5, outq_seq: 2, opt_mask: 0, snd_wscale: 7, mss_clamp: 1460 });
    w.writeRaw(Buffer.from('in!'));
    w.writeRaw(Buffer.from('out!!'));
    w.close();
    const tcp = readImage(p('tcp-stream-4d2.img'));
    assert.deepEqual([tcp[0].inq?.toString(), tcp[0].outq?.toString(), tcp[0].extraLength], ['in!', 'out!!', 8]);

    w = new ImageWriter(p('bpfmap-data.img'));
    w.write('bpfmap_data_entry', { map_id: 1, keys_bytes: 4, values_bytes: 8, count: 1 });
    w.writeRaw(Buffer.alloc(12, 0xab));
    w.close();
    assert.equal(readImage(p('bpfmap-data.img'))[0].extra?.length, 12);
  });

  it('ghost files: contents to EOF, or chunks', () => {
    let w = new ImageWriter(p('ghost-file-1.img'));
    w.write('ghost_file_entry', { uid: 0, gid: 0, mode: 0o100644, size: 5n });
    w.writeRaw(Buffer.from('ghost'));
    w.close();
    const g = readImage(p('ghost-file-1.img'));
    assert.equal(g.length, 1);
    assert.equal(g[0].extra?.toString(), 'ghost');

    w = new ImageWriter(p('ghost-file-2.img'));
    w.write('ghost_file_entry', { uid: 0, gid: 0, mode: 0o100644, chunks: true, size: 100n });
    w.write('ghost_chunk_entry', { len: 2n, off: 0n });
    w.writeRaw(Buffer.from('ab'));
    w.write('ghost_chunk_entry', { len: 3n, off: 90n });
    w.writeRaw(Buffer.from('cde'));
    w.close();
    const c = readImage(p('ghost-file-2.img'));
    assert.deepEqual(
      c.map((e) => [e.type, e.extra?.toString()]),
      [
        ['ghost_file_entry', undefined],
        ['ghost_chunk_entry', 'ab'],
        ['ghost_chunk_entry', 'cde'],
      ],
    );
  });

  it('ipcns shm, sem and msg with their padding', () => {
    const desc = { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 5 };
    let w = new ImageWriter(p('ipcns-shm-1.img'));
    w.write('ipc_shm_entry', { desc, size: 5n });
    w.writeRaw(Buffer.from('12345\0\0\0'));
    w.write('ipc_shm_entry', { desc, size: 4096n, in_pagemaps: true });
    w.close();
    const shm = readImage(p('ipcns-shm-1.img'));
    assert.deepEqual(
      shm.map((e) => e.extra?.toString('latin1')),
      ['12345', undefined],
    );

    w = new ImageWriter(p('ipcns-sem-1.img'));
    w.write('ipc_sem_entry', { desc, nsems: 3 });
    w.writeRaw(Buffer.from([1, 0, 2, 0, 3, 0, 0, 0]));
    w.write('ipc_sem_entry', { desc, nsems: 1 });
    w.writeRaw(Buffer.from([9, 0, 0, 0, 0, 0, 0, 0]));
    w.close();
    const sem = readImage(p('ipcns-sem-1.img'));
    assert.deepEqual(
      sem.map((e) => e.extra?.toString('hex')),
      ['010002000300', '0900'],
    );

    w = new ImageWriter(p('ipcns-msg-1.img'));
    w.write('ipc_msg_entry', { desc, qbytes: 100, qnum: 2 });
    w.write('ipc_msg', { mtype: 1n, msize: 3 });
    w.writeRaw(Buffer.from('abc\0\0\0\0\0'));
    w.write('ipc_msg', { mtype: 2n, msize: 8 });
    w.writeRaw(Buffer.from('12345678'));
    w.write('ipc_msg_entry', { desc, qbytes: 100, qnum: 0 });
    w.close();
    const msg = readImage(p('ipcns-msg-1.img'));
    assert.equal(msg.length, 2);
    assert.deepEqual(
      msg[0].ipcMsgs?.map((m) => [m.msg.mtype, m.data.toString()]),
      [
        [1n, 'abc'],
        [2n, '12345678'],
      ],
    );
    assert.deepEqual(msg[1].ipcMsgs, []);
  });
});

describe('errors are one-line ImageErrors', () => {
  const pstreePayload = registry.encode('pstree_entry', { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, 2, 3, 4, 5, 6, 7] });

  it('truncated entry', () => {
    assert.equal(pstreePayload.length, 22);
    fs.writeFileSync(p('pstree.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.PSTREE, 22), pstreePayload.subarray(0, 3)]));
    assert.equal(
      errorLine(() => readImage(p('pstree.img'))),
      'pstree.img: truncated entry at offset 12 (need 22 bytes, have 3)',
    );
  });

  it('truncated size word and header', () => {
    fs.writeFileSync(p('fs-1.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.FS), Buffer.from([5, 0])]));
    assert.equal(
      errorLine(() => readImage(p('fs-1.img'))),
      'fs-1.img: truncated entry size at offset 8 (need 4 bytes, have 2)',
    );
    fs.writeFileSync(p('fs-2.img'), Buffer.from([0x19, 0x43, 0x56]));
    assert.equal(
      errorLine(() => readImage(p('fs-2.img'))),
      'fs-2.img: truncated header (need 8 bytes, have 3)',
    );
    fs.writeFileSync(p('fs-3.img'), u32(IMG_COMMON_MAGIC));
    assert.equal(
      errorLine(() => readImage(p('fs-3.img'))),
      'fs-3.img: truncated header (need 8 bytes, have 4)',
    );
  });

  it('oversized length prefix does not allocate', () => {
    fs.writeFileSync(p('pstree.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.PSTREE, 0xffffffff), Buffer.alloc(10)]));
    assert.equal(
      errorLine(() => readImage(p('pstree.img'))),
      'pstree.img: truncated entry at offset 12 (need 4294967295 bytes, have 10)',
    );
    const w = new ImageWriter(p('pipes-data.img'));
    w.write('pipe_data_entry', { pipe_id: 1, bytes: 0xfffffff0 });
    w.writeRaw(Buffer.from('short'));
    w.close();
    assert.match(
      errorLine(() => readImage(p('pipes-data.img'))),
      /^pipes-data\.img: truncated pipe data at offset \d+ \(need 4294967280 bytes, have 5\)$/,
    );
  });

  it('bad magic', () => {
    fs.writeFileSync(p('core-5.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, 0x12345678, 0)]));
    assert.equal(
      errorLine(() => readImage(p('core-5.img'))),
      'core-5.img: bad magic 0x12345678 (expected core 0x55053847)',
    );
    fs.writeFileSync(p('core-6.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.PSTREE, 0)]));
    assert.equal(
      errorLine(() => readImage(p('core-6.img'))),
      'core-6.img: bad magic 0x50273030, a pstree image (expected core 0x55053847)',
    );
    fs.writeFileSync(p('core-7.img'), Buffer.from('not an image at all'));
    assert.equal(
      errorLine(() => readImage(p('core-7.img'))),
      'core-7.img: bad magic 0x20746f6e (expected core 0x55053847)',
    );
    fs.writeFileSync(p('inventory.img'), u32(MAGIC.CORE));
    assert.equal(
      errorLine(() => readImage(p('inventory.img'))),
      'inventory.img: bad magic 0x55053847, a core image (expected inventory 0x58313116)',
    );
    fs.writeFileSync(p('stats-dump'), u32(IMG_COMMON_MAGIC, MAGIC.STATS));
    assert.equal(
      errorLine(() => readImage(p('stats-dump'))),
      'stats-dump: bad head magic 0x54564319 (expected IMG_SERVICE 0x55105940)',
    );
    fs.writeFileSync(p('mystery'), u32(0x11111111, 2));
    assert.equal(
      errorLine(() => readImage(p('mystery'))),
      'mystery: unknown image name and unknown magic 0x11111111',
    );
  });

  it('proto errors name the field and the entry offset', () => {
    const full = registry.encode('mm_entry', zero('mm_entry'));
    // mm_brk is field 7 (tag 0x38, value 0): drop those two bytes
    const i = full.indexOf(Buffer.from([0x38, 0x00]));
    const bytes = Buffer.concat([full.subarray(0, i), full.subarray(i + 2)]);
    fs.writeFileSync(p('mm-5.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.MM, bytes.length), bytes]));
    assert.equal(
      errorLine(() => readImage(p('mm-5.img'))),
      'mm-5.img: missing required field mm_entry.mm_brk in entry at offset 8',
    );
    fs.writeFileSync(p('mm-6.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.MM, 2), Buffer.from([0x08, 0xff])]));
    assert.equal(
      errorLine(() => readImage(p('mm-6.img'))),
      'mm-6.img: truncated varint at byte 1 in entry at offset 8',
    );
  });

  it('raw images, wrong message types, writes after close', () => {
    fs.writeFileSync(p('pages-3.img'), Buffer.alloc(4096));
    assert.equal(
      errorLine(() => readImage(p('pages-3.img'))),
      'pages-3.img: raw pages image has no entries to read',
    );
    const w = new ImageWriter(p('pstree.img'));
    assert.equal(
      errorLine(() => w.write('core_entry', { mtype: 1 })),
      'pstree.img: pstree images hold pstree_entry, not core_entry',
    );
    assert.equal(
      errorLine(() => w.write('pstree_entry', { pid: 1 } as never)),
      'pstree.img: missing required field pstree_entry.ppid',
    );
    w.close();
    assert.equal(
      errorLine(() => w.write('pstree_entry', { pid: 1, ppid: 0, pgid: 1, sid: 1 })),
      'pstree.img: write after close',
    );
    // the failed writes left nothing behind
    assert.equal(fs.readFileSync(p('pstree.img')).length, 8);
    assert.equal(
      errorLine(() => new ImageWriter(p('no-such-dir/core-1.img'))),
      'core-1.img: cannot create: its directory does not exist (ENOENT)',
    );
    assert.equal(
      errorLine(() => new ImageWriter(p('whatever.bin'))),
      'whatever.bin: unknown image name and no kind given',
    );
  });

  it('truncated extras and padding', () => {
    const w = new ImageWriter(p('tcp-stream-1.img'));
    w.write('tcp_stream_entry', { inq_len: 3, inq_seq: 1, outq_len: 5, outq_seq: 2, opt_mask: 0, snd_wscale: 7, mss_clamp: 1460 });
    w.writeRaw(Buffer.from('in!ou'));
    w.close();
    assert.match(
      errorLine(() => readImage(p('tcp-stream-1.img'))),
      /truncated tcp send queue at offset \d+ \(need 5 bytes, have 2\)/,
    );
    const s = new ImageWriter(p('ipcns-sem-2.img'));
    s.write('ipc_sem_entry', { desc: zero('ipc_desc_entry') as never, nsems: 1 });
    s.writeRaw(Buffer.from([1, 0]));
    s.close();
    assert.match(
      errorLine(() => readImage(p('ipcns-sem-2.img'))),
      /truncated ipc semaphore values padding/,
    );
  });

  it('random files give ImageErrors only', () => {
    const kinds: ImageKind[] = IMAGE_KINDS.filter((k) => k.head !== 'raw');
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let n = 0; n < 1000; n++) {
      const k = kinds[rnd() % kinds.length];
      const body = Buffer.alloc(rnd() % 64);
      for (let i = 0; i < body.length; i++) body[i] = rnd() & 0xff;
      // mostly valid headers and small sizes, so the entry decoders get exercised
      if (body.length >= 4) body.writeUInt32LE(body[0] % 40, 0);
      const head = k.head === 'inventory' ? u32(k.magic) : u32(k.head === 'service' ? 0x55105940 : IMG_COMMON_MAGIC, k.magic);
      const f = p('fuzz.img');
      fs.writeFileSync(f, Buffer.concat([head, body]));
      try {
        readImage(f, { kind: k });
      } catch (e) {
        if (!(e instanceof ImageError)) throw e;
        assert.ok(!e.message.includes('\n'));
      }
    }
  });
});

describe('resources', () => {
  const openFds = () => fs.readdirSync('/proc/self/fd').length;

  it('closes files on success, early stop and errors', () => {
    writeImage(p('fs-21.img'), 'fs_entry', [
      { cwd_id: 1, root_id: 1 },
      { cwd_id: 2, root_id: 2 },
    ]);
    fs.writeFileSync(p('core-21.img'), u32(IMG_COMMON_MAGIC, 0x1234));
    fs.writeFileSync(p('core-22.img'), Buffer.concat([u32(IMG_COMMON_MAGIC, MAGIC.CORE, 9), Buffer.alloc(2)]));
    const before = openFds();
    for (let i = 0; i < 50; i++) {
      readImage(p('fs-21.img'));
      readOne(p('fs-21.img'), 'fs_entry');
      for (const e of new ImageReader(p('fs-21.img'))) if (e) break;
      assert.throws(() => readImage(p('core-21.img')), ImageError);
      assert.throws(() => readImage(p('core-22.img')), ImageError);
      readImage(p('core-999.img'));
    }
    assert.equal(openFds(), before);
    const r = new ImageReader(p('fs-21.img'));
    r.next();
    const mid = openFds();
    r.close();
    assert.equal(openFds(), mid - 1);
  });

  it('recognises old pages-<pid>.img that hold a pagemap', () => {
    const f = p('pages-77.img');
    const w = new ImageWriter(f, { kind: 'PAGES_OLD' });
    w.write('pagemap_head', { pages_id: 0 });
    w.write('pagemap_entry', { vaddr: 0x1000n, compat_nr_pages: 1 });
    w.close();
    const r = new ImageReader(f);
    assert.equal(r.kind.id, 'PAGES_OLD');
    assert.deepEqual(
      [...r].map((e) => e.type),
      ['pagemap_head', 'pagemap_entry'],
    );
  });

  it('eachRaw hands out undecoded payloads', () => {
    writeImage(p('fs-23.img'), 'fs_entry', [
      { cwd_id: 1, root_id: 1 },
      { cwd_id: 2, root_id: 3 },
    ]);
    const r = new ImageReader(p('fs-23.img'));
    const got: ProtoObject[] = [];
    r.eachRaw((buf, start, end, offset) => got.push(r.decodeRaw('fs_entry', buf, start, end, offset)));
    assert.deepEqual(got, [
      { cwd_id: 1, root_id: 1 },
      { cwd_id: 2, root_id: 3 },
    ]);
    assert.throws(() => new ImageReader(p('pipes-data.img')).eachRaw(() => {}), /eachRaw on an image with extra payloads/);
  });
});

describe('typed helpers', () => {
  it('readOne rejects an image of another message type', () => {
    writeImage(p('fs-11.img'), 'fs_entry', [{ cwd_id: 1, root_id: 1, umask: 0o22 }]);
    assert.equal(
      errorLine(() => readOne(p('fs-11.img'), 'core_entry' as MessageName)),
      'fs-11.img: holds fs_entry, not core_entry',
    );
    assert.equal(readOne(p('fs-11.img'), 'fs_entry')?.umask, 0o22);
  });
});
