// The worker side of BackgroundVerify (integrity.ts): checks the listed files and leaves
// the verdict in shared memory, "name: problem" for the first bad one.
import { workerData } from 'node:worker_threads';
import { checkListedFile, type ChecksumKind, type ManifestFile } from './checksum.ts';

export interface VerifyData {
  dir: string;
  files: Array<[string, ManifestFile]>;
  digest: ChecksumKind;
  result: SharedArrayBuffer;
}

const { dir, files, digest, result } = workerData as VerifyData;
const flag = new Int32Array(result, 0, 1);
let err = '';
try {
  const buf = Buffer.allocUnsafe(4 << 20);
  for (const [name, want] of files) {
    const problem = checkListedFile(dir, name, want, digest, buf);
    if (problem) {
      err = `${name}: ${problem}`;
      break;
    }
  }
} catch (e) {
  err = `checksum verification failed: ${String((e as Error)?.message ?? e).split('\n')[0]}`;
}
Buffer.from(result, 8).write(err.slice(0, 4000), 'utf8');
Atomics.store(flag, 0, err ? 2 : 1);
Atomics.notify(flag, 0);
