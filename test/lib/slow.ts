/**
 * How much slower than this VM the machine runs: the emulated arm64 lab sets
 * CRIU_TS_SLOW=10. Waits, timeouts and speed limits in the tests scale by it.
 */
export const SLOW = Math.max(1, Number(process.env.CRIU_TS_SLOW ?? 1) || 1);
