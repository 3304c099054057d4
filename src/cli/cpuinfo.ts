// `criu-ts cpuinfo dump -D DIR` writes this CPU to cpuinfo.img; `cpuinfo check -D DIR` says,
// in one line, why this CPU cannot run what the image's ran (exit 1), or nothing (exit 0).
import fs from 'node:fs';
import path from 'node:path';
import { CriuError } from '../errors.ts';
import { LevelLogger } from '../log.ts';
import type { Argv } from './argv.ts';
import { cpuinfo } from '../dump/cpuinfo.ts';

export async function runCpuinfo(argv: Argv): Promise<number> {
  const words = argv.args.slice(1).filter((a) => !/^-v\d*$/.test(a));
  // The first word that is not an option or an option's value.
  const action = words.find((w, i) => !w.startsWith('-') && !/^(-[DoW]|--(images-dir|log-file|work-dir))$/.test(words[i - 1] ?? ''));
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
