// `criu-ts crit` as a command: crit's subcommands, where output goes, and failures as one line
// with exit code 1.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCrit } from '../../src/cli/crit.ts';
import { loadImage, parseJson } from '../../src/crit/index.ts';
import { ImageWriter } from '../../src/images/index.ts';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'dump');
const REPO = path.join(import.meta.dirname, '..', '..');
const fixture = (name: string) => path.join(FIXTURES, name);
const pidOf = () => /^core-(\d+)\.img$/.exec(fs.readdirSync(FIXTURES).find((f) => f.startsWith('core-'))!)![1];

interface Run {
  rc: number;
  out: Buffer;
  err: string;
}

function crit(args: string[], stdin: Buffer = Buffer.alloc(0)): Run {
  const out: Buffer[] = [];
  let err = '';
  const rc = runCrit(args, {
    stdout: (d) => out.push(Buffer.from(d)),
    stderr: (t) => {
      err += t;
    },
    stdin: () => stdin,
  });
  return { rc, out: Buffer.concat(out), err };
}

function fails(r: Run, re: RegExp): void {
  assert.equal(r.rc, 1, `exit code; stderr: ${r.err}`);
  assert.equal(r.out.length, 0, 'nothing on stdout');
  assert.match(r.err, /^[^\n]+\n$/, 'one line on stderr');
  assert.match(r.err.trimEnd(), re);
}

let dir = '';
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crit-cli-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('crit decode / encode / show', () => {
  it('decode prints JSON and a newline to stdout; -o writes it without the newline', () => {
    const r = crit(['decode', '-i', fixture('pstree.img')]);
    assert.equal(r.rc, 0, r.err);
    const text = r.out.toString();
    assert.ok(text.startsWith('{"magic": "PSTREE", "entries": [{"pid": ') && text.endsWith(']}\n'), text);
    const out = path.join(dir, 'pstree.json');
    assert.equal(crit(['decode', '-i', fixture('pstree.img'), '-o', out]).rc, 0);
    assert.equal(fs.readFileSync(out, 'utf8'), text.slice(0, -1));
  });

  it('decode --pretty: indent 4, hex and flag names', () => {
    const r = crit(['decode', '--pretty', `--in=${fixture(`mm-${pidOf()}.img`)}`]);
    assert.equal(r.rc, 0, r.err);
    const text = r.out.toString();
    assert.ok(text.startsWith('{\n    "magic": "MM",\n    "entries": [\n        {\n            "mm_start_code": "0x'), text.slice(0, 200));
    assert.match(text, /"prot": "PROT_READ \| PROT_EXEC"/);
    assert.match(text, /"status": "VMA_AREA_REGULAR \| VMA_FILE_PRIVATE"/);
  });

  it('decode reads stdin and encode writes stdout, byte for byte', () => {
    const img = fs.readFileSync(fixture(`core-${pidOf()}.img`));
    for (const pretty of [[], ['--pretty']]) {
      const json = crit(['decode', ...pretty], img);
      assert.equal(json.rc, 0, json.err);
      const back = crit(['encode'], json.out);
      assert.equal(back.rc, 0, back.err);
      assert.deepEqual(back.out, img);
    }
  });

  it('show --nopl: payload sizes instead of payloads', () => {
    const r = crit(['show', fixture('pipes-data.img'), '--nopl']);
    assert.equal(r.rc, 0, r.err);
    const doc = parseJson(r.out.toString()) as { entries: { bytes: number; extra: string }[] };
    assert.deepEqual(
      doc.entries.map((e) => e.extra),
      doc.entries.map((e) => `... <${e.bytes}B>`),
    );
    const full = crit(['show', fixture('pipes-data.img')]);
    assert.equal(
      Buffer.from((parseJson(full.out.toString()) as { entries: { extra: string }[] }).entries[0].extra, 'base64').toString(),
      'pipe data\n',
    );
  });

  it('info: magic and entries, pagemap without its head', () => {
    const r = crit(['info', fixture(`pagemap-${pidOf()}.img`)]);
    assert.equal(r.rc, 0, r.err);
    const n = loadImage(fixture(`pagemap-${pidOf()}.img`)).entries.length - 1;
    assert.equal(r.out.toString(), `{\n    "magic": "PAGEMAP",\n    "count": ${n}\n}\n`);
  });

  it('x DIR ps', () => {
    const r = crit(['x', FIXTURES, 'ps']);
    assert.equal(r.rc, 0, r.err);
    const lines = r.out.toString().split('\n');
    assert.equal(lines[0], '    PID   PGID    SID   COMM');
    assert.match(lines[1], new RegExp(`^ *${pidOf()} +\\d+ +\\d+   fixture$`));
    assert.match(lines[2], /^ *\d+ +\d+ +\d+ {7}fixture$/);
  });

  it('encode refuses a payload that disagrees with its entry', () => {
    const json = path.join(dir, 'pipes.json');
    fs.writeFileSync(json, JSON.stringify({ magic: 'PIPES_DATA', entries: [{ pipe_id: 1, bytes: 5, extra: 'YWJj\n' }] }));
    fails(crit(['encode', '-i', json, '-o', path.join(dir, 'x.img')]), /^pipes\.json: entry 0: extra has 3 bytes but bytes says 5$/);
    assert.ok(!fs.existsSync(path.join(dir, 'x.img')));
  });
});

describe('crit failures: one line, exit 1', () => {
  it('missing, empty and raw files', () => {
    fails(crit(['decode', '-i', path.join(dir, 'nope.img')]), /^nope\.img: cannot read: ENOENT/);
    fs.writeFileSync(path.join(dir, 'empty.img'), '');
    fails(crit(['show', path.join(dir, 'empty.img')]), /^empty\.img: empty file/);
    fails(crit(['decode', '-i', fixture('pages-1.img')]), /^pages-1\.img: unknown magic 0x[0-9a-f]{8}: .*pages-N\.img/);
    fails(crit(['info', FIXTURES]), /is a directory/);
  });

  it('a truncated image prints nothing but the error', () => {
    const img = fs.readFileSync(fixture(`core-${pidOf()}.img`));
    const cut = path.join(dir, 'core-1.img');
    fs.writeFileSync(cut, img.subarray(0, img.length - 10));
    fails(crit(['decode', '-i', cut]), /^core-1\.img: truncated entry at offset 12 \(need \d+ bytes, have \d+\)$/);
    const out = path.join(dir, 'core.json');
    fails(crit(['decode', '-i', cut, '-o', out]), /truncated/);
    assert.ok(!fs.existsSync(out), 'no partial output file');
  });

  it('a bad entry in the middle: nothing printed', () => {
    const file = path.join(dir, 'fs-1.img');
    const w = new ImageWriter(file);
    w.write('fs_entry', { cwd_id: 1, root_id: 2 });
    w.writeRaw(Buffer.from([1, 0, 0, 0, 0x08]));
    w.close();
    fails(crit(['decode', '-i', file]), /^fs-1\.img: truncated varint at byte 1 in entry at offset 16$/);
  });

  it('decode -o onto its own input is refused, the image stays', () => {
    const img = path.join(dir, 'pstree.img');
    fs.copyFileSync(fixture('pstree.img'), img);
    fails(crit(['decode', '-i', img, '-o', img]), /^pstree\.img: is the input image/);
    assert.deepEqual(fs.readFileSync(img), fs.readFileSync(fixture('pstree.img')));
  });

  it('bad JSON and bad documents', () => {
    const json = path.join(dir, 'bad.json');
    fs.writeFileSync(json, '{"magic": "PSTREE", "entries": [');
    fails(crit(['encode', '-i', json]), /^bad\.json: not valid JSON: /);
    fs.writeFileSync(json, '{"magic": "NOPE", "entries": []}');
    fails(crit(['encode', '-i', json]), /^bad\.json: unknown magic "NOPE"$/);
    fs.writeFileSync(json, '{"magic": "PSTREE", "entries": [{"pid": 1}]}');
    fails(crit(['encode', '-i', json]), /^bad\.json: entry 0: missing required field pstree_entry\.ppid$/);
    fs.writeFileSync(json, '{"magic": "MM", "entries": [{"vmas": [{"start": "0xzz"}]}]}');
    fails(crit(['encode', '-i', json]), /^bad\.json: entry 0: mm_entry\.vmas\[0\]\.start: "0xzz" is not a number$/);
    fs.writeFileSync(json, '{"magic": "FDINFO", "entries": [{"id": 1, "flags": 0, "type": "NOPE", "fd": 0}]}');
    fails(crit(['encode', '-i', json]), /^bad\.json: entry 0: fdinfo_entry\.type: "NOPE" is not a fd_types name$/);
    fs.writeFileSync(json, '{"magic": "PSTREE", "entries": [{"pid": 4294967296, "ppid": 0, "pgid": 0, "sid": 0}]}');
    fails(crit(['encode', '-i', json]), /^bad\.json: entry 0: pstree_entry\.pid: 4294967296 is not a valid uint32$/);
  });

  it('usage errors', () => {
    fails(crit([]), /too few arguments/);
    fails(crit(['frob']), /invalid choice "frob"/);
    fails(crit(['decode', '--bogus']), /unrecognized argument --bogus/);
    fails(crit(['decode', '-i']), /-i expects a file name/);
    fails(crit(['info']), /missing argument/);
    fails(crit(['x', FIXTURES, 'nope']), /invalid choice "nope"/);
    fails(crit(['show', 'a', 'b']), /unrecognized argument b/);
  });

  it('as a process: exit 1, one line, no stack trace', () => {
    const node = path.join(REPO, 'node_modules', '.bin', 'node');
    const r = spawnSync(node, [path.join(REPO, 'src', 'cli', 'crit.ts'), 'decode', '-i', fixture('pages-1.img')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^pages-1\.img: unknown magic [^\n]*\n$/);
  });
});
