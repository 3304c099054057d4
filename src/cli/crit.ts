// `criu-ts crit ...`: CRIU's crit command line (decode, encode, show, info, x) with crit's output.
// Every failure is one line on stderr and exit code 1.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readManifest, verifyManifest, verifyListedFile } from '../images/index.ts';
import { ImageError, ProtoError } from '../images/index.ts';
import {
  DictError,
  EXPLORERS,
  EncodeError,
  checkImage,
  critEntries,
  detectImage,
  dumpImage,
  explore,
  imageInfo,
  parseJson,
  quote,
  toJson,
} from '../crit/index.ts';
import type { Explorer, JsonValue } from '../crit/index.ts';

/** Where crit's output goes; tests substitute their own. */
export interface CritIo {
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
  stdin(): Buffer;
}

class UsageError extends Error {}

const USAGE = `usage: crit [-h] [--version] {decode,encode,info,x,show} ...

CRiu Image Tool

  decode [--pretty] [-i IN] [-o OUT]   criu image to JSON (stdin/stdout by default)
  encode [-i IN] [-o OUT]              JSON to criu image
  info IN                              magic and number of entries
  x DIR {ps,fds,mems,rss}              explore an image directory
  show IN [--nopl]                     decode --pretty to stdout (--nopl: payload sizes only)
`;

function writeAllSync(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(fd, data, off, data.length - off);
    } catch (e) {
      // stdout may be a non-blocking pipe that is full for a moment
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
}

const defaultIo: CritIo = {
  stdout: (d) => writeAllSync(1, typeof d === 'string' ? Buffer.from(d) : d),
  stderr: (t) => writeAllSync(2, Buffer.from(t)),
  stdin: () => fs.readFileSync(0),
};

/** Collects text and hands it on in large pieces. */
class Sink {
  private parts: string[] = [];
  private size = 0;
  private readonly put: (data: string) => void;

  constructor(put: (data: string) => void) {
    this.put = put;
  }

  write = (s: string): void => {
    this.parts.push(s);
    this.size += s.length;
    if (this.size >= 1 << 20) this.flush();
  };

  flush(): void {
    if (this.parts.length === 0) return;
    const s = this.parts.join('');
    this.parts = [];
    this.size = 0;
    this.put(s);
  }
}

interface Parsed {
  cmd: string;
  in?: string;
  out?: string;
  pretty: boolean;
  nopl: boolean;
  pos: string[];
}

function parseArgs(argv: string[]): Parsed {
  const cmd = argv[0];
  const p: Parsed = { cmd, pretty: false, nopl: false, pos: [] };
  const flags: Record<string, string[]> = {
    decode: ['--pretty', '-i', '--in', '-o', '--out'],
    encode: ['-i', '--in', '-o', '--out'],
    show: ['--nopl'],
    info: [],
    x: [],
  };
  const allowed = flags[cmd];
  if (!allowed) throw new UsageError(`crit: invalid choice ${JSON.stringify(cmd)} (choose from decode, encode, info, x, show)`);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      p.pos.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      p.pos.push(a);
      continue;
    }
    let name = a;
    let value: string | undefined;
    if (a.startsWith('--') && a.includes('=')) [name, value] = [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)];
    else if (/^-[io]./.test(a)) [name, value] = [a.slice(0, 2), a.slice(2)];
    if (!allowed.includes(name)) throw new UsageError(`crit ${cmd}: unrecognized argument ${a}`);
    if (name === '--pretty') p.pretty = true;
    else if (name === '--nopl') p.nopl = true;
    else {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`crit ${cmd}: ${name} expects a file name`);
      }
      if (name === '-i' || name === '--in') p.in = value;
      else p.out = value;
    }
  }
  const want = cmd === 'x' ? 2 : cmd === 'info' || cmd === 'show' ? 1 : 0;
  if (p.pos.length < want)
    throw new UsageError(`crit ${cmd}: missing argument${want > 1 ? 's' : ''}: ${cmd === 'x' ? 'DIR {ps,fds,mems,rss}' : 'IN'}`);
  if (p.pos.length > want) throw new UsageError(`crit ${cmd}: unrecognized argument ${p.pos[want]}`);
  if (cmd === 'x' && !(EXPLORERS as readonly string[]).includes(p.pos[1])) {
    throw new UsageError(`crit x: invalid choice ${JSON.stringify(p.pos[1])} (choose from ps, fds, mems, rss)`);
  }
  return p;
}

/** stdin has no file name for ImageReader: it goes through a temporary file named "stdin". */
function withInput<T>(file: string | undefined, io: CritIo, fn: (file: string) => T): T {
  if (file !== undefined) return fn(file);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-crit-'));
  try {
    const tmp = path.join(dir, 'stdin');
    fs.writeFileSync(tmp, io.stdin());
    return fn(tmp);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function decode(file: string, outFile: string | undefined, pretty: boolean, nopl: boolean, io: CritIo): void {
  const { magic, kind } = detectImage(file);
  // everything is checked before the first byte of output, so a bad image prints nothing
  const count = checkImage(file, kind);
  let fd: number | undefined;
  const sink = new Sink(outFile === undefined ? (s) => io.stdout(s) : (s) => writeAllSync(fd!, Buffer.from(s)));
  if (outFile !== undefined) {
    // output is written while the image is read: it must not be the image
    const a = fs.statSync(file);
    const b = fs.statSync(outFile, { throwIfNoEntry: false });
    if (b && a.dev === b.dev && a.ino === b.ino) throw new ImageError(outFile, 'is the input image; write the JSON elsewhere');
    try {
      fd = fs.openSync(outFile, 'w', 0o644);
    } catch (e) {
      throw new ImageError(outFile, `cannot create: ${(e as Error).message.replace(/, \w+ '.*'$/, '')}`);
    }
  }
  try {
    const w = sink.write;
    const ind = pretty ? '\n    ' : ' ';
    w(`{${pretty ? ind : ''}"magic": ${quote(magic)},${ind}"entries": [`);
    let i = 0;
    for (const e of critEntries(file, kind, { pretty, nopl })) {
      w(pretty ? (i++ ? ',\n        ' : '\n        ') : i++ ? ', ' : '');
      w(toJson(e, pretty, 2));
    }
    if (i !== count) throw new ImageError(file, 'changed while being read');
    w(pretty && i ? '\n    ]\n}' : ']' + (pretty ? '\n}' : '}'));
    if (outFile === undefined) w('\n');
    sink.flush();
  } catch (e) {
    if (outFile !== undefined) fs.rmSync(outFile, { force: true });
    throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function encode(inFile: string | undefined, outFile: string | undefined, io: CritIo): void {
  const name = inFile ?? 'stdin';
  let doc: JsonValue;
  try {
    const text = inFile === undefined ? io.stdin().toString('utf8') : fs.readFileSync(inFile, 'utf8');
    doc = parseJson(text);
  } catch (e) {
    const msg = (e as Error).message.replace(/, \w+ '.*'$/, '').split('\n')[0];
    throw new ImageError(name, e instanceof SyntaxError ? `not valid JSON: ${msg}` : `cannot read: ${msg}`);
  }
  let img: Buffer;
  try {
    img = dumpImage(doc);
  } catch (e) {
    if (e instanceof EncodeError || e instanceof DictError || e instanceof ProtoError) throw new ImageError(name, e.message);
    throw e;
  }
  if (outFile === undefined) return io.stdout(img);
  try {
    fs.writeFileSync(outFile, img, { mode: 0o600 });
  } catch (e) {
    throw new ImageError(outFile, `cannot write: ${(e as Error).message.replace(/, \w+ '.*'$/, '')}`);
  }
}

function run(argv: string[], io: CritIo): number {
  if (argv.length === 0) {
    io.stderr('crit: too few arguments: crit {decode,encode,info,x,show} ... (crit -h for help)\n');
    return 1;
  }
  if (argv[0] === '-h' || argv[0] === '--help' || argv.includes('-h') || argv.includes('--help')) {
    io.stdout(USAGE);
    return 0;
  }
  if (argv[0] === '--version') {
    io.stdout('criu-ts crit 0.1.0 (CRIU 4.2 images)\n');
    return 0;
  }
  // Like restore, crit checks files against the dump's checksum manifest unless told not to.
  const skipVerify = argv.includes('--skip-verify');
  const a = parseArgs(argv.filter((x) => x !== '--skip-verify'));
  if (a.cmd === 'x') checkDumpDir(a.pos[0]);
  if (!skipVerify) {
    if (a.cmd === 'x') {
      const m = readManifest(a.pos[0]);
      if (m) verifyManifest(a.pos[0], m, (n) => !/^pages-\d+\.img$/.test(n));
    } else if (a.cmd !== 'encode') {
      const f = a.cmd === 'decode' ? a.in : a.pos[0];
      if (f !== undefined) verifyListedFile(f);
    }
  }
  switch (a.cmd) {
    case 'decode':
      withInput(a.in, io, (f) => decode(f, a.out, a.pretty, false, io));
      break;
    case 'show':
      decode(a.pos[0], undefined, true, a.nopl, io);
      break;
    case 'encode':
      encode(a.in, a.out, io);
      break;
    case 'info': {
      const { magic, count } = imageInfo(a.pos[0]);
      io.stdout(`{\n    "magic": ${quote(magic)},\n    "count": ${count}\n}\n`);
      break;
    }
    case 'x': {
      const sink = new Sink((s) => io.stdout(s));
      explore(a.pos[0], a.pos[1] as Explorer, (line) => sink.write(line + '\n'));
      sink.flush();
      break;
    }
  }
  return 0;
}

/** An images directory to explore: there, and holding a dump (its pstree.img). */
function checkDumpDir(dir: string): void {
  if (!fs.existsSync(dir)) throw new UsageError(`images directory ${dir} does not exist`);
  if (!fs.existsSync(path.join(dir, 'pstree.img'))) throw new UsageError(`no dump in ${dir}: it has no pstree.img`);
}

/** `crit` with CRIU's arguments; returns the exit code. */
export function runCrit(argv: string[], io: CritIo = defaultIo): number {
  try {
    return run(argv, io);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return 1;
    const known = e instanceof ImageError || e instanceof UsageError;
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    io.stderr(`${known ? msg : `crit: internal error: ${msg}`}\n`);
    return 1;
  }
}

// `node src/cli/crit.ts ARGS`; inside the bundled CLI, import.meta.main is the bundle's.
if (import.meta.main && import.meta.url.endsWith('/crit.ts')) process.exitCode = runCrit(process.argv.slice(2));
