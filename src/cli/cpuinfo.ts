// `criu-ts cpuinfo dump -D DIR` writes this CPU to cpuinfo.img; `cpuinfo check -D DIR` says,
// in one line, why this CPU cannot run what the image's ran (exit 1), or nothing (exit 0).
import fs from 'node:fs';
import path from 'node:path';
import { CriuError, NotSupportedError } from '../errors.ts';
import { ImageWriter, readMessages, checkDumpDir, imageFileName } from '../images/index.ts';
import { arch } from '../kernel/index.ts';
import { LevelLogger } from '../log.ts';
import type { Argv } from './argv.ts';
import type { Logger } from '../resources/types.ts';
import { startHelper, killHelper } from '../restore/stub.ts';
import { readCpuInfo, cpuinfoEntry, checkCpuInfo } from '../resources/cpu/cpuinfo.ts';

export async function runCpuinfo(argv: Argv): Promise<number> {
  const words = argv.args.slice(1).filter((a) => !/^-v\d*$/.test(a));
  const action = words.find((w) => !w.startsWith('-') && words[words.indexOf(w) - 1] !== '-D' && words[words.indexOf(w) - 1] !== '-o');
  if (action !== 'dump' && action !== 'check') throw new CriuError('Usage: criu-ts cpuinfo dump|check -D DIR');
  const dir = path.resolve(argv.imagesDir ?? '.');
  if (!fs.existsSync(dir)) throw new CriuError(`images directory ${dir} does not exist`);
  const logFile = argv.logFile && argv.logFile !== '-' ? path.resolve(path.resolve(dir, argv.workDir ?? '.'), argv.logFile) : undefined;
  const log = new LevelLogger(argv.level, logFile);
  try {
    cpuinfo(dir, action, log);
    return 0;
  } catch (e) {
    if (logFile) log.error(e instanceof Error ? e.message.split('\n')[0] : String(e));
    throw e;
  } finally {
    log.close();
  }
}

/** cpuinfo dump (this CPU to DIR/cpuinfo.img) or check (throws the one-line reason it cannot run the image's). */
export function cpuinfo(dir: string, action: 'dump' | 'check', log: Logger): void {
  if (arch.name !== 'x86_64') throw NotSupportedError.option(`cpuinfo on ${arch.name}`);
  const file = path.join(dir, imageFileName('CPUINFO'));
  if (action === 'dump') checkDumpDir(dir, false);
  const img = action === 'check' ? readMessages(file, 'cpuinfo_entry')[0] : undefined;
  if (action === 'check' && !img) throw new CriuError(`${file}: no cpuinfo entry`);
  const h = startHelper([]);
  let here: ReturnType<typeof readCpuInfo>;
  try {
    here = readCpuInfo(h.area);
  } finally {
    killHelper(h);
  }
  log.info(`cpu: family ${here.family} model ${here.model} "${here.modelId}", xfeatures 0x${here.xfeaturesMask.toString(16)}`);
  if (action === 'dump') {
    const w = new ImageWriter(file, { kind: 'CPUINFO' });
    w.write('cpuinfo_entry', cpuinfoEntry(here));
    w.close();
    return;
  }
  const problem = checkCpuInfo(img!, here);
  if (problem) throw new CriuError(problem);
  log.info('cpuinfo check: this CPU can run the dump');
}
