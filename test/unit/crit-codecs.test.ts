// The text forms crit uses, checked against Python itself (the interpreter crit runs on) on
// random inputs: json.dumps, base64.encodebytes, quopri, ipaddress, int(x, 0), human_readable.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import * as fs from 'node:fs';
import { describe, it } from 'node:test';
import {
  base64Lines,
  fromBase64,
  fromQuotedPrintable,
  humanReadable,
  parseJson,
  parsePyInt,
  toJson,
  toQuotedPrintable,
} from '../../src/crit/index.ts';
import type { JsonValue } from '../../src/crit/index.ts';
import { devText, flagsText, ipText, parseDev, parseFlags, parseIp } from '../../src/crit/options.ts';

const PY = '/usr/bin/python3';
const havePy = fs.existsSync(PY);

const DRIVER = `
import base64, binascii, ipaddress, json, socket, sys
def human_readable(num):
    for unit in ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']:
        if num < 1024.0:
            if int(num) == num:
                return "%d%sB" % (num, unit)
            else:
                return "%.1f%sB" % (num, unit)
        num /= 1024.0
    return "%.1fYB" % num
def intval(s):
    try:
        return str(int(s, 0))
    except ValueError:
        return None
def ip(words):
    if len(words) == 1:
        return ipaddress.IPv4Address(socket.ntohl(words[0])).compressed
    v = (socket.ntohl(words[0]) << 96) + (socket.ntohl(words[1]) << 64) + (socket.ntohl(words[2]) << 32) + socket.ntohl(words[3])
    return ipaddress.IPv6Address(v).compressed
req = json.load(sys.stdin)
out = {
    'qp': [binascii.b2a_qp(bytes.fromhex(h)).decode() for h in req['qp']],
    'b64': [base64.encodebytes(bytes.fromhex(h)).decode() for h in req['b64']],
    'json': [json.dumps(s) for s in req['json']],
    'jsonp': [json.dumps(v, indent=4) for v in req['jsonp']],
    'int': [intval(s) for s in req['int']],
    'ip': [ip(w) for w in req['ip']],
    'hr': [human_readable(n) for n in req['hr']],
}
print(json.dumps(out))
`;

function python(req: Record<string, unknown>): Record<string, (string | null)[]> {
  const r = spawnSync(PY, ['-c', DRIVER], { input: JSON.stringify(req), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  // text-like with line ends, spaces and dots, where quoted-printable has its special cases
  fc.array(fc.constantFrom(0x20, 0x09, 0x0a, 0x0d, 0x2e, 0x3d, 0x61, 0x00, 0xff), { maxLength: 120 }).map((a) => Uint8Array.from(a)),
);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const intText = fc.oneof(
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.bigInt({ min: 0n, max: 2n ** 64n }).map((v) => `0x${v.toString(16)}`),
  fc.stringMatching(/^\s?[+-]?(0[xXoObB])?[0-9a-fA-F_]{0,6}\s?$/),
);

describe('crit text forms against Python', { skip: havePy ? false : 'no /usr/bin/python3' }, () => {
  const N = 400;
  const qp = fc.sample(bytes, { seed: 1, numRuns: N });
  const b64 = fc.sample(fc.uint8Array({ maxLength: 300 }), { seed: 2, numRuns: 50 });
  const strs = fc.sample(fc.string({ unit: 'binary', maxLength: 20 }), { seed: 3, numRuns: N });
  const docs = fc.sample(fc.jsonValue({ maxDepth: 3 }), { seed: 4, numRuns: 100 }) as JsonValue[];
  const ints = fc.sample(intText, { seed: 5, numRuns: N });
  const ips = fc.sample(
    fc.oneof(
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 1 }),
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff })), { minLength: 4, maxLength: 4 }),
    ),
    { seed: 6, numRuns: N },
  );
  const hrs = [
    ...fc.sample(fc.integer({ min: 0, max: 2 ** 40 }), { seed: 7, numRuns: N }),
    0,
    1023,
    1024,
    1280,
    1536,
    10 * 1024 * 1024 + 52429,
  ];
  const py = python({ qp: qp.map(hex), b64: b64.map(hex), json: strs, jsonp: docs, int: ints, ip: ips, hr: hrs });

  it('quoted-printable: binascii.b2a_qp where that is lossless, and always reversible', () => {
    qp.forEach((b, i) => {
      const ours = toQuotedPrintable(b);
      assert.deepEqual(fromQuotedPrintable(ours), Buffer.from(b), `round trip of ${hex(b)}`);
      const theirs = py.qp[i]!;
      if (fromQuotedPrintable(theirs).equals(Buffer.from(b))) assert.equal(ours, theirs, hex(b));
    });
  });

  it('base64.encodebytes', () => {
    b64.forEach((b, i) => {
      assert.equal(base64Lines(b), py.b64[i]);
      assert.deepEqual(fromBase64(base64Lines(b)), Buffer.from(b));
    });
  });

  it('json.dumps of strings and of documents with indent=4', () => {
    strs.forEach((s, i) => {
      assert.equal(toJson(s), py.json[i]);
    });
    docs.forEach((d, i) => {
      assert.equal(toJson(d, true), py.jsonp[i]);
      assert.deepEqual(parseJson(toJson(d)), parseJson(py.jsonp[i]!));
    });
  });

  it('int(text, 0)', () => {
    ints.forEach((s, i) => {
      assert.equal(parsePyInt(s)?.toString() ?? null, py.int[i], JSON.stringify(s));
    });
  });

  it('ipaddress: compressed text, and back', () => {
    ips.forEach((w, i) => {
      assert.equal(ipText(w), py.ip[i]);
      assert.deepEqual(parseIp(py.ip[i]!), w);
    });
  });

  it('human_readable sizes of show --nopl', () => {
    hrs.forEach((n, i) => {
      assert.equal(humanReadable(n), py.hr[i], String(n));
    });
  });
});

describe('crit field options', () => {
  it('flags: names in table order, unnamed bits as a hex rest, "" for none', () => {
    assert.equal(flagsText('mmap.prot', 5), 'PROT_READ | PROT_EXEC');
    assert.equal(flagsText('mmap.status', 0x10201), 'VMA_AREA_REGULAR | VMA_ANON_PRIVATE | 0x10000');
    assert.equal(flagsText('pmap.flags', 0), '');
    assert.equal(parseFlags('mmap.status', 'VMA_AREA_REGULAR | VMA_ANON_PRIVATE | 0x10000'), 0x10201n);
    assert.equal(parseFlags('pmap.flags', ''), 0n);
    assert.equal(parseFlags('rfile.flags', 'O_RDWR|32768'), 0o100002n);
  });

  it('dev_t: new encoding and glibc makedev for odev fields', () => {
    assert.equal(devText((8 << 20) | 1, false), '8:1');
    assert.equal(parseDev('8:1', false), BigInt((8 << 20) | 1));
    // /dev/pts/300: major 136, minor 300
    const odev = ((136 & 0xfff) << 8) | (300 & 0xff) | ((300 & ~0xff) << 12);
    assert.equal(devText(odev, true), '136:300');
    assert.equal(parseDev('136:300', true), BigInt(odev));
  });

  it('IPv6 with an embedded IPv4 tail parses', () => {
    assert.deepEqual(parseIp('::ffff:1.2.3.4'), parseIp('::ffff:102:304'));
    assert.deepEqual(parseIp('127.0.0.1'), [0x0100007f]);
    assert.throws(() => parseIp('1::2::3'));
    assert.throws(() => parseIp('01.2.3.4'));
  });

  it('JSON keeps 64-bit integers exact both ways', () => {
    const v = parseJson('{"a": 18446744073709551615, "b": -9223372036854775808, "c": 9007199254740993, "d": 5}');
    assert.deepEqual(v, { a: 18446744073709551615n, b: -9223372036854775808n, c: 9007199254740993n, d: 5 });
    assert.equal(toJson(v), '{"a": 18446744073709551615, "b": -9223372036854775808, "c": 9007199254740993, "d": 5}');
    // digits in strings stay text, however the quotes before them are escaped
    const tricky =
      '["x 12345678901234567890", "q\\\\", 12345678901234567890, "\\"12345678901234567890", 1e12345678901234567, 1000000000000000]';
    assert.deepEqual(parseJson(tricky), [
      'x 12345678901234567890',
      'q\\',
      12345678901234567890n,
      '"12345678901234567890',
      Infinity,
      1000000000000000,
    ]);
  });
});
