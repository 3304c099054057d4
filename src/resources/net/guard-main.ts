// The TCP repair guardian's own entry (src/soccr/guard.ts): a process apart from criu-ts, which
// outlives it to heal what it froze and to remove the network lock of a tree that runs on.
// A bundle of its own beside criu-ts's (bin/criu-ts) starts in half the time of the whole CLI.
import { runGuardian } from '../../soccr/guard.ts';
import { unlock } from './netlock.ts';

process.exitCode = runGuardian(0, 1, (extra) => unlock(JSON.parse(extra)));
