// --action-script programs: run at each action with CRIU's environment (CRTOOLS_SCRIPT_ACTION,
// CRTOOLS_IMAGE_DIR, CRTOOLS_INIT_PID once the restored root is known). A script that fails
// fails the operation.
import { spawnSync } from 'node:child_process';
import { CriuError } from '../errors.ts';
import type { RunAction } from '../actions.ts';

export function shellActions(scripts: readonly string[], imagesDir: string): RunAction | undefined {
  if (scripts.length === 0) return undefined;
  let initPid: number | undefined;
  return (name, pid) => {
    // An RPC-only question (external files to add), not a script action.
    if (name === 'query-ext-files') return;
    initPid ??= pid;
    const env: NodeJS.ProcessEnv = { ...process.env, CRTOOLS_SCRIPT_ACTION: name, CRTOOLS_IMAGE_DIR: imagesDir };
    if (initPid !== undefined) env.CRTOOLS_INIT_PID = String(initPid);
    for (const script of scripts) {
      const r = spawnSync(script, [], { env, stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.error) throw new CriuError(`action script ${script} (${name}): ${r.error.message}`);
      if (r.status !== 0)
        throw new CriuError(
          `action script ${script} failed at ${name} with ${r.status === null ? `signal ${r.signal}` : `exit code ${r.status}`}`,
        );
    }
  };
}
