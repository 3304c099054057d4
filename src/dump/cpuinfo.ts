// cpuinfo dump / check: this CPU, read with CPUID in a helper tracee, written to cpuinfo.img or
// compared with the one there (resources/cpu/cpuinfo.ts).
import path from 'node:path';
import { CriuError, NotSupportedError } from '../errors.ts';
import { ImageWriter, readMessages, checkDumpDir, imageFileName } from '../images/index.ts';
import { arch } from '../kernel/index.ts';
import type { Logger } from '../resources/types.ts';
import { startHelper, killHelper } from '../restore/stub.ts';
import { readCpuInfo, cpuinfoEntry, checkCpuInfo } from '../resources/cpu/cpuinfo.ts';

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
