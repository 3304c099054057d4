// criu-ts's run-time state directory (tmpfs, gone at reboot): the journals of dumps in
// progress (dump/journal.ts) and facts about this boot's CPU (compel/cpuid.ts).
export const RUN_DIR = process.env.CRIU_TS_RUN_DIR ?? '/run/criu-ts';
