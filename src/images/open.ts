// Opening the files of an images or work directory (images, manifest, log, pidfile). Root may
// dump into, or restore from, a directory someone else can write: a name there must never lead
// through a symlink, onto a FIFO or device (a read would hang), or into a file planted for us to
// write (it would keep its planter as owner). So a name is a single component opened with
// O_NOFOLLOW, a read must find a regular file, and a write replaces the name with a new file of
// our own (O_EXCL, mode 0600). The CLI also installs an opener built on openat2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (setImageOpener); worker threads use Node's own open.
import fs from 'node:fs';
import path from 'node:path';
import { ImageError } from './image-common.ts';
import { CriuError } from '../errors.ts';

/** Opens `name`, one path component, in `dir`; returns the fd or throws (errno in `code`). */
export type ImageOpener = (dir: string, name: string, flags: number, mode: number) => number;

const nodeOpener: ImageOpener = (dir, name, flags, mode) => fs.openSync(path.join(dir, name), flags, mode);
let opener: ImageOpener = nodeOpener;

export function setImageOpener(o: ImageOpener): void {
  opener = o;
}

const C = fs.constants;
const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

function refusal(e: unknown, creating = false): string {
  switch (errCode(e)) {
    case 'ELOOP':
      return 'is a symbolic link; refused';
    case 'EXDEV':
      return 'resolves outside its directory; refused';
    case 'ENOENT':
      return creating ? 'its directory does not exist (ENOENT)' : 'missing (ENOENT)';
    case 'EEXIST':
      return 'was created by someone else while criu-ts replaced it; refused';
    default:
      return (e as Error).message.split('\n')[0];
  }
}

function split(file: string): [string, string] {
  const name = path.basename(file);
  if (!name || name === '.' || name === '..') throw new ImageError(file, 'not a file name');
  return [path.dirname(file), name];
}

/**
 * Open an existing image for reading. Throws ImageError naming the file: missing, a symlink, or
 * anything but a regular file. `missingOk` returns undefined for a missing file instead.
 */
export function openImageRead(file: string, missingOk = false): number | undefined {
  const [dir, name] = split(file);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = opener(dir, name, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK, 0);
  } catch (e) {
    if (missingOk && errCode(e) === 'ENOENT') return undefined;
    throw new ImageError(file, `cannot open: ${refusal(e)}`);
  }
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw new ImageError(file, `cannot stat: ${refusal(e)}`);
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new ImageError(file, 'not a regular file; refused');
  }
  return fd;
}

/** openImageRead for a file that must exist. */
export function openImage(file: string): number {
  return openImageRead(file)!;
}

/**
 * Create `file` anew for writing, mode 0600: whatever had its name (a symlink, a hard link to
 * another file, a file someone else created) is unlinked, never written through. The create
 * comes first (O_EXCL): a new dump's directory has nothing to unlink.
 */
export function createImage(file: string, extraFlags = 0): number {
  const [dir, name] = split(file);
  const create = (): number => opener(dir, name, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | extraFlags, 0o600);
  try {
    return create();
  } catch (e) {
    if (errCode(e) !== 'EEXIST') throw new ImageError(file, `cannot create: ${refusal(e, true)}`);
  }
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw new ImageError(file, `cannot replace: ${refusal(e)}`);
  }
  try {
    return create();
  } catch (e) {
    throw new ImageError(file, `cannot create: ${refusal(e, true)}`);
  }
}

/** A whole small file (manifest), read as openImageRead reads. */
export function readImageFile(file: string): Buffer {
  const fd = openImage(file);
  try {
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A whole small file written as createImage writes, through a temporary name renamed over it. */
export function writeImageFile(file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  const fd = createImage(tmp);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

const euid = (): number => process.geteuid?.() ?? 0;
const egid = (): number => process.getegid?.() ?? 0;

/** A directory criu-ts will not write to or restore from: nothing, not even a log, goes there. */
export class UntrustedDirError extends CriuError {}

/** Why a file can be written by someone other than criu-ts's user, or ''. */
function foreignWrite(st: fs.Stats): string {
  if (st.uid !== euid()) return `belongs to uid ${st.uid}, not to criu-ts's user (uid ${euid()})`;
  if (st.isSymbolicLink()) return ''; // its mode means nothing; opening it is refused anyway
  if (st.mode & 0o002) return 'is writable by others';
  if (st.mode & 0o020 && st.gid !== egid()) return `is writable by group ${st.gid}`;
  return '';
}

/**
 * A dump writes a process's memory and secrets into `dir`: one that another user owns (who could
 * change its permissions, or read what a mistake left readable) is refused unless forced. A
 * directory criu-ts's user owns but others may write (ZDTM makes every images directory 0777)
 * is accepted: every file criu-ts makes there is created anew, 0600, never through a link, so
 * others can neither read nor redirect it, and what they could do afterwards (remove or swap
 * files) is what the restore's checks catch.
 */
export function checkDumpDir(dir: string, force: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return; /* created by the dump, 0700 */
  }
  if (st.uid !== euid() && !force) {
    throw new UntrustedDirError(
      `${dir}: the directory belongs to uid ${st.uid}, not to criu-ts's user (uid ${euid()}); refused (--force dumps there anyway)`,
    );
  }
}

/**
 * A root restore recreates whatever credentials, files and memory the images say, so they must
 * be trusted: an image that another user owns or can write is refused unless --trust-images
 * says otherwise (a file another user put in the directory is theirs). `names`: the files to check.
 */
export function checkRestoreDir(dir: string, names: readonly string[], trust: boolean): void {
  if (trust || euid() !== 0) return;
  const hint = '; refused for a restore as root (--trust-images restores it anyway)';
  for (const name of names) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(dir, name));
    } catch {
      continue; /* missing: reported by the reader */
    }
    const whyFile = foreignWrite(st);
    if (whyFile) throw new UntrustedDirError(`${name}: ${whyFile}${hint}`);
  }
}
