// The cost of one injected syscall (a resume and a stop of the tracee) with the tracer and
// the tracee on one CPU (what criu-ts does while it holds a tree: src/compel/colocate.ts),
// left to the scheduler, and forced onto two different CPUs; back to back, and with 100 us
// of tracer work between calls, as in a real dump, during which an idle CPU goes to sleep
// and must be woken for the next call. Median of many calls.
//
// Then, colocated and back to back, one injected call of a dump as criu-ts makes it: through
// the injection area's `syscall; trap`, the same with the thread keeping its own state between
// calls (its registers and mask put back after each), and healing itself (src/compel/heal.ts:
// from the heal code on its signal frame, stopped at syscall entry and exit).
//
//   node bench/ptrace-stop.ts [calls]
import fs from 'node:fs';
import os from 'node:os';
import { Tracee, InjectionArea, vdsoSyscallInsn, colocate, endColocation, healFrame } from '../src/compel/index.ts';
import { cpu } from '../src/resources/cpu/index.ts';
import { parseMaps } from '../src/proc/index.ts';
import { posixSpawn, kill, waitpid, WALL, PTRACE_O, schedGetaffinity, schedSetaffinity, getcpu } from '../src/kernel/index.ts';
import './common.ts';

const calls = Number(process.argv[2] ?? 2000);
/** This thread's own affinity, given back after each placement. */
const home = schedGetaffinity(0);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const oneCpu = (cpu: number) => {
  const m = Buffer.alloc(128);
  m[cpu >> 3] |= 1 << (cpu & 7);
  return m;
};

type Placement = 'one CPU (colocated)' | "scheduler's choice" | 'two CPUs (forced)';

/** A `sleep` seized (with the tracer colocated when asked) for `fn`, then killed and everything put back. */
function withSleeper(colocated: boolean, fn: (t: Tracee, pid: number) => number): number {
  const pid = posixSpawn('/bin/sleep', ['sleep', '600'], []);
  try {
    if (colocated) colocate();
    const t = Tracee.seize(pid, PTRACE_O.TRACESYSGOOD);
    t.useSyscallInsn(vdsoSyscallInsn(t, parseMaps(fs.readFileSync(`/proc/${pid}/maps`, 'utf8')), 'the benchmark'));
    return fn(t, pid);
  } finally {
    endColocation();
    schedSetaffinity(0, home);
    kill(pid, 9);
    waitpid(pid, WALL);
  }
}

/** The median time of an injected getppid, after `workUs` of the tracer's own work each. */
function timeCalls(t: Tracee, workUs = 0): number {
  const us: number[] = [];
  for (let i = 0; i < calls; i++) {
    const w = performance.now();
    while ((performance.now() - w) * 1000 < workUs) {
      /* the tracer's own work */
    }
    const a = performance.now();
    t.syscall('getppid');
    us.push((performance.now() - a) * 1000);
  }
  return median(us);
}

function measure(placement: Placement, workUs: number): number {
  return withSleeper(placement === 'one CPU (colocated)', (t, pid) => {
    if (placement === 'two CPUs (forced)') {
      const cpu = getcpu();
      schedSetaffinity(0, oneCpu(cpu));
      schedSetaffinity(pid, oneCpu((cpu + 1) % os.availableParallelism()));
    }
    return timeCalls(t, workUs);
  });
}

const placements: Placement[] = ['one CPU (colocated)', "scheduler's choice", 'two CPUs (forced)'];
console.log(`one injected getppid (resume to syscall entry, to exit, registers back), median of ${calls}, in us:`);
console.log(`  ${'placement'.padEnd(22)} ${'back to back'.padStart(14)} ${'after 100 us of work'.padStart(22)}`);
measure("scheduler's choice", 0); // warm-up: the first placement measured must not pay for JIT compilation
const r = placements.map((p) => ({ p, b2b: measure(p, 0), work: measure(p, 100) }));
const [base] = r;
const cell = (us: number, ref: number) => `${us.toFixed(1)} (${(us / ref).toFixed(2)}x)`;
for (const { p, b2b, work } of r)
  console.log(`  ${p.padEnd(22)} ${cell(b2b, base.b2b).padStart(14)} ${cell(work, base.work).padStart(22)}`);

type Mode = 'area trap' | 'own state' | 'healing';

function dumpCall(mode: Mode): number {
  return withSleeper(true, (t) => {
    const regs = t.getRegs(),
      mask = t.getSigmask(),
      fpregs = t.getFpRegs();
    const area = InjectionArea.map(t);
    if (mode !== 'area trap') t.keepOwnState(regs, mask);
    if (mode === 'healing') {
      const slot = area.healSlot();
      const frame = healFrame(slot.at, { regs, mask, fpregs, ...cpu.healExtras(t, cpu.facts(area)) });
      if (!frame || !t.healWith(area.healCode, slot, frame)) throw new Error('no heal frame for the benchmark tracee');
    }
    return timeCalls(t);
  });
}

const modes: Mode[] = ['area trap', 'own state', 'healing'];
console.log(`one injected getppid of a dump, colocated, back to back, median of ${calls}, in us:`);
const d = modes.map((m) => ({ m, us: dumpCall(m) }));
for (const { m, us } of d) console.log(`  ${m.padEnd(22)} ${cell(us, d[0].us).padStart(14)}`);
