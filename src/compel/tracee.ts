// Tracee: a thread under our ptrace control, and the means to make it run syscalls on
// our behalf (libcompel's job in CRIU). No code is ever loaded into the target: an
// injected syscall runs one `syscall` instruction that already exists (in the vDSO) or
// that sits on an injection page we mapped.
import fs from 'node:fs';
import {
  arch,
  ptrace,
  waitpid,
  getRegset,
  setRegset,
  getSigmask,
  setSigmask,
  getEventMsg,
  getSiginfo,
  processVmReadv,
  processVmWritev,
  SysError,
  PTRACE,
  PTRACE_EVENT,
  NT,
  WALL,
  W,
  SIG,
  sysnr,
  tgkill,
  getpid,
  socketpair,
  sendMsg,
  AF_UNIX,
  SOCK,
  SOL_SOCKET,
  type SyscallName,
} from '../kernel/index.ts';
import { AREA_SIZE, COURIER_BYTES } from './area.ts';
import type { HealFrame } from './heal.ts';
import { pinTracee, unpinTracee, repinTracee } from './colocate.ts';
import { now } from '../lazy.ts';

export type SysArg = number | bigint;

const STOP_SIGNALS: ReadonlySet<number> = new Set([SIG.STOP, SIG.TSTP, SIG.TTIN, SIG.TTOU]);

/** A fatal signal or an unexpected stop while the tracee ran an injected syscall. */
export class InjectionError extends Error {
  readonly tid: number;
  constructor(tid: number, message: string) {
    super(`task ${tid}: ${message}`);
    this.name = 'InjectionError';
    this.tid = tid;
  }
}

/** An injected syscall that returned -errno. */
export class RemoteSysError extends SysError {
  readonly tid: number;
  constructor(tid: number, call: string, errno: number) {
    super(`${call} in task ${tid}`, errno);
    this.tid = tid;
  }
}

const NO_SYSCALL = Buffer.from([0xff, 0xff, 0xff, 0xff]);
const FATAL = new Set<number>([SIG.SEGV, SIG.BUS, SIG.ILL, SIG.FPE, SIG.SYS]);
/**
 * The mask a tracee has while it runs injected code: every signal but SIGTRAP. The trap that
 * ends an injected call on the injection page is a forced SIGTRAP, and the kernel resets the
 * handler of a forced signal that is blocked (or ignored) to SIG_DFL.
 */
export const INJECTION_SIGMASK = 0xffffffffffffffffn & ~(1n << BigInt(SIG.TRAP - 1));

export interface StopInfo {
  status: number;
  sig: number;
  event: number;
  exited: boolean;
}

/**
 * The state a thread holds between injected calls when it must stay resumable: its own
 * general registers and signal mask, and `more` to put back what a syscall discards (arm64's
 * SVE state). If criu-ts dies while the thread is in a ptrace stop, the kernel lets it run
 * from its current registers (measured on 6.18: also from the SIGTRAP stop of an injected
 * call's trap, whose signal is not delivered then), so only the time inside a call is unsafe.
 */
interface OwnState {
  regs: Buffer;
  mask: bigint;
  more?: () => void;
  heal?: Heal;
}

/** Where a thread's injected calls heal themselves from (heal.ts, healWith). */
interface Heal {
  /** A syscall instruction followed by heal.ts's healTail. */
  code: bigint;
  slot: HealSlot;
  frame: HealFrame;
  /** What the GCS slot held before its cap token went in. */
  tokenWas?: Buffer;
}

/** The one place of a process's area where the frame of the thread in a call sits. */
export interface HealSlot {
  at: bigint;
  /** The thread whose frame is there now. */
  owner?: number;
}

/**
 * Injected calls that could not heal themselves while threads held their own state between
 * calls, and the time spent inside them: the only moments a SIGKILL of criu-ts harms the task.
 */
export const unsafeWindow = { calls: 0, ms: 0 };

function describe(status: number): string {
  if (W.exited(status)) return `exited with status ${W.exitStatus(status)}`;
  if (W.signaled(status)) return `killed by signal ${W.termSig(status)}`;
  if (W.stopped(status)) return `stopped by signal ${W.stopSig(status)} event ${W.event(status)}`;
  return `status 0x${status.toString(16)}`;
}

/** One buffer for every regset read: ptrace requests all come from one thread. */
const fpScratch = Buffer.alloc(arch.fpRegsMaxSize);

export class Tracee {
  /**
   * Test hook: called in a healing call once the thread's registers are the call's
   * ('loaded'), and once it has stopped after the syscall ('done').
   */
  static inCall: ((tid: number, phase: 'loaded' | 'done') => void) | undefined;

  readonly tid: number;
  /** Where injected syscalls run; see useSyscallInsn / useInjectionPage. */
  /** The first stop seen after seizing: for a task stopped by a signal, its group-stop names that signal. */
  firstStop: StopInfo | undefined;
  private insnAddr = 0n;
  /** True when insnAddr is our injection page ending with a trap; false for a bare syscall insn. */
  private trapMode = false;
  private memFd = -1;
  private readonly scratchRegs: Buffer;
  /**
   * scratchRegs hold the thread's registers as the last injected call left them, and
   * nothing has changed them since: the next call starts from them instead of reading
   * them again (one ptrace call less per injected syscall). Anything that sets registers
   * or lets the thread run clears it.
   */
  private regsKnown = false;
  /** The syscall the tracee runs on its own since startSyscall, until finishSyscall. */
  private running: string | undefined;

  /** The affinity to give back at detach, when the tracee was pinned to our CPU (colocate.ts). */
  private home: Buffer | undefined;
  /** See keepOwnState. */
  private own: OwnState | undefined;
  /** When the current injected call began (ms, now()), for unsafeWindow. */
  private callStart = 0;

  private constructor(tid: number, born: boolean) {
    this.tid = tid;
    this.vtid = tid;
    this.scratchRegs = Buffer.alloc(arch.gpRegsSize);
    this.home = pinTracee(tid, born);
  }

  /** The thread's own CPU affinity while we pin it to ours; undefined when it is not pinned. */
  get homeAffinity(): Buffer | undefined {
    return this.home;
  }

  /** PTRACE_SEIZE + PTRACE_INTERRUPT, and wait until the thread is in a ptrace stop. */
  static seize(tid: number, options: number): Tracee {
    ptrace(PTRACE.SEIZE, tid, 0, options, `PTRACE_SEIZE(${tid})`);
    const t = new Tracee(tid, false);
    ptrace(PTRACE.INTERRUPT, tid, 0, 0);
    t.waitStop();
    return t;
  }

  /**
   * PTRACE_SEIZE + PTRACE_INTERRUPT without waiting: for tasks in a frozen cgroup, whose
   * stop is reported only once the cgroup is thawed. Call waitStop() after the thaw.
   */
  static seizeDeferred(tid: number, options: number): Tracee {
    ptrace(PTRACE.SEIZE, tid, 0, options, `PTRACE_SEIZE(${tid})`);
    ptrace(PTRACE.INTERRUPT, tid, 0, 0);
    return new Tracee(tid, false);
  }

  /** A thread that is already traced by us (auto-attached clone child) and stopped. */
  static adopt(tid: number, vtid = tid): Tracee {
    const t = new Tracee(tid, true);
    t.vtid = vtid;
    return t;
  }

  /** Wait for the next stop of this thread; throws if it died. */
  waitStop(): StopInfo {
    const { status } = waitpid(this.tid, WALL);
    if (!W.stopped(status)) throw new InjectionError(this.tid, describe(status));
    const st = { status, sig: W.stopSig(status), event: W.event(status), exited: false };
    this.firstStop ??= st;
    return st;
  }

  /**
   * Wait until the thread reaches a ptrace-stop that is not a plain signal delivery.
   * Signals that arrive meanwhile are left for the caller (the tree is frozen; they stay queued).
   */
  waitInterruptStop(): StopInfo {
    for (;;) {
      const st = this.waitStop();
      if (st.sig === SIG.TRAP && st.event === PTRACE_EVENT.STOP) return st;
      if (st.event === PTRACE_EVENT.STOP) return st; // group-stop while seized
      // A signal-delivery stop: re-deliver it on resume and interrupt again.
      this.regsKnown = false;
      ptrace(PTRACE.CONT, this.tid, 0, st.sig);
      ptrace(PTRACE.INTERRUPT, this.tid, 0, 0);
    }
  }

  getRegs(into?: Buffer): Buffer {
    const b = into ?? Buffer.alloc(arch.gpRegsSize);
    getRegset(this.tid, NT.PRSTATUS, b);
    return b;
  }
  setRegs(regs: Buffer): void {
    this.idle();
    this.regsKnown = false;
    setRegset(this.tid, NT.PRSTATUS, regs);
  }

  private idle(): void {
    if (this.running) throw new Error(`task ${this.tid} is still running its ${this.running}`);
  }

  /** Extended FPU state (XSAVE area on x86_64), trimmed to what the kernel returned. */
  getFpRegs(): Buffer {
    const n = getRegset(this.tid, arch.fpRegset, fpScratch);
    return Buffer.from(fpScratch.subarray(0, n));
  }
  setFpRegs(buf: Buffer): void {
    setRegset(this.tid, arch.fpRegset, buf);
  }

  getRegset(note: number, maxSize: number): Buffer {
    const b = Buffer.alloc(maxSize);
    const n = getRegset(this.tid, note, b);
    return Buffer.from(b.subarray(0, n));
  }
  /** A regset, or undefined where this kernel or CPU does not have it. */
  optionalRegset(note: number, maxSize: number): Buffer | undefined {
    try {
      return this.getRegset(note, maxSize);
    } catch (e) {
      if (e instanceof SysError) return undefined;
      throw e;
    }
  }
  setRegset(note: number, buf: Buffer): void {
    this.idle();
    this.regsKnown = false;
    setRegset(this.tid, note, buf);
  }

  /** A ptrace request on this thread that no typed method covers (arch-specific ones). */
  request(req: number, addr: bigint | number, data: Buffer | bigint | number = 0): number {
    this.regsKnown = false;
    return ptrace(req, this.tid, addr, data);
  }

  /**
   * From now on, put `regs` and `mask` back after every injected call, and block all
   * signals only during one (see OwnState). Injected calls then start from `regs`.
   */
  keepOwnState(regs: Buffer, mask: bigint, more?: () => void): void {
    this.own = { regs: Buffer.from(regs), mask, more };
  }
  dropOwnState(): void {
    this.stopHealing();
    this.own = undefined;
  }

  /**
   * From now on, injected calls of this thread (which keeps its own state) heal themselves
   * (heal.ts): they run from `code` with `frame` in `slot`, and stop at the syscall's exit,
   * before the code that follows it. Syscall stops, not a trap: the SIGTRAP of a trap stop
   * would be delivered once its tracer is gone (TRACESYSGOOD's SIGTRAP|0x80 is no signal).
   */
  healWith(code: bigint, slot: HealSlot, frame: HealFrame): boolean {
    if (!this.own) throw new Error(`task ${this.tid}: only a thread that keeps its own state heals`);
    const heal: Heal = { code, slot, frame };
    if (frame.token) {
      // A shadow stack that is full has no slot for the token: such a thread does not heal.
      const v = Buffer.alloc(8);
      v.writeBigUInt64LE(frame.token.value);
      try {
        heal.tokenWas = this.readMem(frame.token.at, 8);
        this.writeMemForce(frame.token.at, v);
      } catch {
        return false;
      }
    }
    this.own.heal = heal;
    return true;
  }

  /** Injected calls no longer heal themselves (the area they heal from is going). */
  stopHealing(): void {
    const h = this.own?.heal;
    if (!h) return;
    this.own!.heal = undefined;
    if (h.frame.token && h.tokenWas) this.writeMemForce(h.frame.token.at, h.tokenWas);
  }

  getSigmask(): bigint {
    return getSigmask(this.tid);
  }
  setSigmask(mask: bigint): void {
    setSigmask(this.tid, mask);
  }
  eventMsg(): number {
    return getEventMsg(this.tid);
  }

  /** Run injected syscalls through an existing `syscall` instruction (stops at syscall exit). */
  useSyscallInsn(addr: bigint): void {
    this.insnAddr = addr;
    this.trapMode = false;
  }
  /** Run injected syscalls through our injection page (`syscall; trap`), one stop per call. */
  useInjectionPage(addr: bigint): void {
    this.insnAddr = addr;
    this.trapMode = true;
  }
  get injectionAddr(): bigint {
    return this.insnAddr;
  }

  /**
   * Make the tracee execute one syscall and return its raw result (negative errno on
   * failure). All signals are blocked meanwhile so that no handler runs in the middle.
   * Registers are clobbered, unless the thread keeps its own state (keepOwnState), which
   * goes back at once after the call.
   */
  syscallRaw(name: SyscallName | number, ...args: SysArg[]): bigint {
    this.loadSyscall(name, args);
    try {
      if (this.trapMode && !this.own?.heal) {
        ptrace(PTRACE.CONT, this.tid, 0, 0);
        this.expectTrap(name);
      } else {
        ptrace(PTRACE.SYSCALL, this.tid, 0, 0);
        this.expectSyscallStop(name);
        ptrace(PTRACE.SYSCALL, this.tid, 0, 0);
        this.expectSyscallStop(name);
        if (arch.syscallNrRegset !== undefined) setRegset(this.tid, arch.syscallNrRegset, NO_SYSCALL);
      }
    } catch (e) {
      this.settleQuietly();
      throw e;
    }
    const after = this.getRegs(this.scratchRegs);
    this.regsKnown = true;
    this.checkHealStop(after, name);
    if (this.own?.heal) Tracee.inCall?.(this.tid, 'done');
    this.settle();
    return arch.syscallResult(after);
  }

  /** How a thread is let go into an injected call: it stops once the call is done. */
  private get resumeRequest(): number {
    return this.trapMode && !this.own?.heal ? PTRACE.CONT : PTRACE.SYSCALL;
  }

  /** A healing call stops at its syscall's exit: the thread must be right after it, before the code that heals. */
  private checkHealStop(after: Buffer, name: SyscallName | number | string): void {
    const h = this.own?.heal;
    if (!h) return;
    const ip = arch.ip(after);
    if (ip === h.code + BigInt(arch.syscallInsnLen)) return;
    this.settleQuietly();
    throw new InjectionError(this.tid, `injected ${String(name)} stopped at 0x${ip.toString(16)}, not after its syscall`);
  }

  /** The heal frame of this thread in its slot (see healWith), before its registers point at it. */
  private placeFrame(h: Heal): void {
    if (h.slot.owner === this.tid) return;
    h.slot.owner = undefined;
    this.writeMem(h.slot.at, h.frame.bytes);
    h.slot.owner = this.tid;
  }

  private loadSyscall(name: SyscallName | number, args: SysArg[]): void {
    if (this.insnAddr === 0n) throw new Error(`task ${this.tid}: no syscall instruction chosen for injection`);
    const nr = typeof name === 'number' ? name : sysnr(name);
    const r = this.ownRegs() ?? (this.regsKnown ? this.scratchRegs : this.getRegs(this.scratchRegs));
    if (!this.own?.heal) arch.setIp(r, this.insnAddr);
    arch.setSyscall(
      r,
      nr,
      args.map((a) => BigInt.asUintN(64, BigInt(a))),
    );
    this.setRegs(r);
    this.enterCall();
    if (this.own?.heal) Tracee.inCall?.(this.tid, 'loaded');
  }

  /**
   * For a thread that keeps its own state: its own registers, to start a call from (a healing
   * thread's call runs from its heal code, on its frame).
   */
  private ownRegs(): Buffer | undefined {
    if (!this.own) return undefined;
    const r = this.scratchRegs;
    this.own.regs.copy(r);
    const h = this.own.heal;
    if (h) {
      this.placeFrame(h);
      arch.setSp(r, h.frame.sp);
      arch.setIp(r, h.code);
    }
    return r;
  }

  /**
   * Start of an injected call of a thread that keeps its own state, once its registers are
   * the call's: block every signal but SIGTRAP (INJECTION_SIGMASK).
   */
  private enterCall(): void {
    if (!this.own) return;
    this.callStart = now();
    if (this.own.mask !== INJECTION_SIGMASK) setSigmask(this.tid, INJECTION_SIGMASK);
  }

  /**
   * End of an injected call: the thread's own state goes back at once, its registers last, so
   * that a healing thread is whole at every moment (its registers still lead to its frame).
   */
  private settle(): void {
    const own = this.own;
    if (!own) return;
    own.more?.();
    if (own.mask !== INJECTION_SIGMASK) setSigmask(this.tid, own.mask);
    setRegset(this.tid, NT.PRSTATUS, own.regs);
    this.regsKnown = false;
    if (own.heal) return;
    unsafeWindow.calls++;
    unsafeWindow.ms += now() - this.callStart;
  }

  /** settle() after a failed call, when the thread may be gone. */
  private settleQuietly(): void {
    try {
      this.settle();
    } catch {
      /* the thread is gone or not stopped */
    }
  }

  /**
   * Start an injected syscall and return at once: the tracee runs it on its own, off our CPU,
   * while we go on (with other tracees, or with work of our own). Nothing else may be done
   * with this tracee until finishSyscall. Needs the injection page (one stop per call).
   */
  startSyscall(name: SyscallName, ...args: SysArg[]): void {
    if (!this.trapMode || this.own?.heal) throw new Error(`task ${this.tid}: startSyscall needs the injection page, and no healing`);
    this.loadSyscall(name, args);
    unpinTracee(this.tid, this.home);
    ptrace(PTRACE.CONT, this.tid, 0, 0);
    this.running = name;
  }

  /** Wait for the syscall startSyscall began; returns its raw result. */
  finishSyscall(): bigint {
    const name = this.running;
    if (name === undefined) throw new Error(`task ${this.tid}: no syscall started`);
    this.running = undefined;
    try {
      this.expectTrap(name);
    } catch (e) {
      this.settleQuietly();
      throw e;
    }
    if (this.home) repinTracee(this.tid);
    const after = this.getRegs(this.scratchRegs);
    this.regsKnown = true;
    this.settle();
    return arch.syscallResult(after);
  }

  /** Resume with `regs` until the trap instruction that follows the code at their ip; returns the regs there. */
  runUntilTrap(regs: Buffer): Buffer {
    if (this.own?.heal) throw new Error(`task ${this.tid}: runUntilTrap cannot heal itself`);
    this.setRegs(regs);
    this.enterCall();
    const was = this.trapMode;
    this.trapMode = true;
    try {
      ptrace(PTRACE.CONT, this.tid, 0, 0);
      this.expectTrap('code');
    } catch (e) {
      this.settleQuietly();
      throw e;
    } finally {
      this.trapMode = was;
    }
    const out = this.getRegs();
    this.settle();
    return out;
  }

  /**
   * The injected call from whose syscall-exit stop the thread is let go with `final` as its
   * general registers (the call that removes the injection area). The register syscall stops
   * borrow (arm64's x7) takes its final value before the call: written at the stop, it
   * would be lost.
   */
  lastSyscall(final: Buffer, name: SyscallName, ...args: SysArg[]): bigint {
    this.stopHealing();
    const at = arch.syscallStopReg;
    if (at !== undefined && !this.trapMode) {
      const r = this.regsKnown ? this.scratchRegs : this.getRegs(this.scratchRegs);
      final.copy(r, at, at, at + 8);
      this.regsKnown = true;
    }
    return this.syscall(name, ...args);
  }

  /** Like syscallRaw, but a -errno result throws RemoteSysError. */
  syscall(name: SyscallName | number, ...args: SysArg[]): bigint {
    const r = this.syscallRaw(name, ...args);
    if (r < 0n && r > -4096n) throw new RemoteSysError(this.tid, String(name), Number(-r));
    return r;
  }

  private expectTrap(name: SyscallName | number | string): void {
    for (;;) {
      const st = this.waitStop();
      if (st.sig === SIG.TRAP && st.event === 0) return;
      this.unexpected(name, st);
    }
  }

  private expectSyscallStop(name: SyscallName | number): void {
    for (;;) {
      const st = this.waitStop();
      if (st.sig === (SIG.TRAP | 0x80)) return;
      this.unexpected(name, st);
    }
  }

  private unexpected(name: SyscallName | number | string, st: StopInfo): void {
    if (FATAL.has(st.sig) && st.event === 0) {
      const si = getSiginfo(this.tid);
      const addr = si.readBigUInt64LE(16);
      throw new InjectionError(
        this.tid,
        `signal ${st.sig} (code ${si.readInt32LE(8)}, addr 0x${addr.toString(16)}) during injected ${String(name)}`,
      );
    }
    if (st.event === PTRACE_EVENT.STOP) {
      // A group stop or a stray interrupt: the injected call has not run yet; resume.
      ptrace(this.resumeRequest, this.tid, 0, 0);
      return;
    }
    if (st.event === 0 && STOP_SIGNALS.has(st.sig) && this.stopSignal() !== undefined) {
      // A stop signal sent again to a task already stopped stays pending, and is taken
      // before the injected call runs: it would do nothing (the task is stopped, and SIGCONT
      // discards it), so it is dropped; the task is stopped again when it is let go.
      ptrace(this.resumeRequest, this.tid, 0, 0);
      return;
    }
    if (st.event !== 0) {
      // clone/fork events while injecting clone3: the caller collects the child.
      this.lastEvent = st.event;
      this.lastEventMsg = this.eventMsg();
      ptrace(this.resumeRequest, this.tid, 0, 0);
      return;
    }
    throw new InjectionError(this.tid, `unexpected ${describe(st.status)} during injected ${String(name)}`);
  }

  /** The signal that had stopped the thread when it was seized (its group-stop), if one had. */
  stopSignal(): number | undefined {
    const f = this.firstStop;
    return f && f.event === PTRACE_EVENT.STOP && STOP_SIGNALS.has(f.sig) ? f.sig : undefined;
  }

  /** Arrange for the thread to run one syscall as soon as it is let go (e.g. exit_group before detach). */
  prepareResume(name: SyscallName, ...args: SysArg[]): void {
    const r = this.getRegs();
    arch.setIp(r, this.insnAddr);
    arch.setSyscall(
      r,
      sysnr(name),
      args.map((a) => BigInt.asUintN(64, BigInt(a))),
    );
    this.setRegs(r);
  }

  /** The last PTRACE_EVENT seen during injection (clone3 reports one). */
  lastEvent = 0;
  /** Its message: for a fork or clone, the child's pid in criu-ts's PID namespace. */
  lastEventMsg = 0;
  /** The thread's id in its own PID namespace, which injected calls see (tid: criu-ts's). */
  vtid: number;
  /**
   * An fd of the tracee's table holding a pidfd of criu-ts, for a tracee that cannot name
   * criu-ts (it is in another PID namespace): inherited from the restore's helper.
   */
  criuPidfd?: number;

  /**
   * Give the tracee (still in criu-ts's PID namespace) a pidfd of criu-ts at fd `at`, which the
   * tasks it begets in a new PID namespace inherit (criuPidfd).
   */
  holdTracerPidfd(at: number): void {
    const p = this.syscall('pidfd_open', getpid(), 0);
    if (p !== BigInt(at)) {
      this.syscall('dup3', p, at, 0);
      this.syscall('close', p);
    }
    this.criuPidfd = at;
  }

  /**
   * A datagram socket whose other end criu-ts holds (`local`), at fd `remote` in the tracee
   * and inherited by the tasks it begets: a tree in a user namespace of its own may not
   * pidfd_getfd from criu-ts (ptrace access to a process of the parent namespace), so
   * criu-ts sends it fds (SCM_RIGHTS) that it receives by an injected recvmsg.
   */
  courier?: { local: number; remote: number };

  /** Make the courier (see above) at fd `at` of this tracee, which may still pidfd_getfd from criu-ts. */
  holdCourier(at: number): void {
    const [local, remote] = socketpair(AF_UNIX, SOCK.DGRAM | SOCK.CLOEXEC);
    try {
      const pidfd = this.syscall('pidfd_open', getpid(), 0);
      const r = this.syscall('pidfd_getfd', pidfd, remote, 0);
      this.syscall('close', pidfd);
      if (r !== BigInt(at)) {
        this.syscall('dup3', r, at, 0);
        this.syscall('close', r);
      }
    } finally {
      fs.closeSync(remote);
    }
    this.courier = { local, remote: at };
  }

  /** One of criu-ts's fds, copied into the tracee (close-on-exec): its number there. */
  takeFd(localFd: number): bigint {
    if (!this.courier) {
      const pidfd = this.pidfdOfTracer();
      try {
        return this.syscall('pidfd_getfd', pidfd, localFd, 0);
      } finally {
        this.syscallRaw('close', pidfd);
      }
    }
    sendMsg(this.courier.local, { data: Buffer.from([1]), fds: [localFd] });
    // msghdr, its iovec, one byte of data and a cmsg of one fd, in the area's last bytes.
    const buf = this.insnAddr + BigInt(AREA_SIZE - COURIER_BYTES);
    const m = Buffer.alloc(104);
    m.writeBigUInt64LE(buf + 56n, 16); // msg_iov
    m.writeBigUInt64LE(1n, 24); // msg_iovlen
    m.writeBigUInt64LE(buf + 80n, 32); // msg_control
    m.writeBigUInt64LE(24n, 40); // msg_controllen
    m.writeBigUInt64LE(buf + 72n, 56); // iov_base
    m.writeBigUInt64LE(8n, 64); // iov_len
    this.writeMem(buf, m);
    this.syscall('recvmsg', this.courier.remote, buf, 0x40000000 /* MSG_CMSG_CLOEXEC */);
    const c = this.readMem(buf + 80n, 24);
    if (c.readInt32LE(8) !== SOL_SOCKET || c.readInt32LE(12) !== 1 /* SCM_RIGHTS */)
      throw new InjectionError(this.tid, 'the fd criu-ts sent did not arrive');
    return BigInt(c.readInt32LE(16));
  }

  /** A new fd in the tracee: a pidfd of criu-ts, for pidfd_getfd (the caller closes it). */
  pidfdOfTracer(): bigint {
    if (this.criuPidfd !== undefined) return this.syscall('fcntl', this.criuPidfd, 1030 /* F_DUPFD_CLOEXEC */, 0);
    return this.syscall('pidfd_open', getpid(), 0);
  }

  /** Block every signal for the duration of `fn`, so injected work is never interrupted by a handler. */
  withSignalsBlocked<T>(fn: () => T): T {
    const old = this.getSigmask();
    this.setSigmask(INJECTION_SIGMASK);
    try {
      return fn();
    } finally {
      this.setSigmask(old);
    }
  }

  readMem(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    const n = processVmReadv(this.tid, b, [{ addr, len }]);
    if (n !== len) throw new InjectionError(this.tid, `short read of ${len} bytes at 0x${addr.toString(16)} (${n})`);
    return b;
  }

  /**
   * Write memory. process_vm_writev honours page protections, so read-only pages go
   * through /proc/PID/mem, which writes with FOLL_FORCE while we are attached.
   */
  writeMem(addr: bigint, data: Buffer): void {
    try {
      const n = processVmWritev(this.tid, data, [{ addr, len: data.length }]);
      if (n === data.length) return;
    } catch (e) {
      if (!(e instanceof SysError) || e.code !== 'EFAULT') throw e;
    }
    this.writeMemForce(addr, data);
  }

  writeMemForce(addr: bigint, data: Buffer): void {
    if (this.memFd < 0) this.memFd = fs.openSync(`/proc/${this.tid}/mem`, 'r+');
    let off = 0;
    while (off < data.length) {
      off += fs.writeSync(this.memFd, data, off, data.length - off, Number(addr) + off);
    }
  }

  /**
   * Put the (process of the) stopped tracee into a job-control stop, as if `sig` had been
   * delivered, without running any of its code: after the next detach it stays stopped.
   * Call with every other signal blocked, so that no handler runs first.
   */
  enterGroupStop(tgid: number, sig: number): void {
    this.regsKnown = false;
    // SIGSTOP cannot be blocked, but SIGTSTP, SIGTTIN and SIGTTOU can: it must get through.
    const mask = this.getSigmask();
    const bit = 1n << BigInt(sig - 1);
    if (mask & bit) this.setSigmask(mask & ~bit);
    tgkill(tgid, this.tid, sig);
    ptrace(PTRACE.CONT, this.tid, 0, 0);
    for (;;) {
      const st = this.waitStop();
      if (st.event === 0 && st.sig === sig) break; // the signal-delivery stop
      if (st.event === PTRACE_EVENT.STOP) {
        ptrace(PTRACE.CONT, this.tid, 0, 0);
        continue;
      }
      throw new InjectionError(this.tid, `unexpected ${describe(st.status)} while stopping it with signal ${sig}`);
    }
    ptrace(PTRACE.CONT, this.tid, 0, sig);
    const st = this.waitStop();
    if (st.event !== PTRACE_EVENT.STOP) throw new InjectionError(this.tid, `expected a group stop, got ${describe(st.status)}`);
    if (mask & bit) this.setSigmask(mask);
  }

  cont(sig = 0): void {
    this.regsKnown = false;
    ptrace(PTRACE.CONT, this.tid, 0, sig);
  }
  syscallStep(sig = 0): void {
    this.regsKnown = false;
    ptrace(PTRACE.SYSCALL, this.tid, 0, sig);
  }
  interrupt(): void {
    ptrace(PTRACE.INTERRUPT, this.tid, 0, 0);
  }

  detach(sig = 0): void {
    this.idle();
    this.regsKnown = false;
    this.own = undefined;
    this.release();
    unpinTracee(this.tid, this.home);
    this.home = undefined;
    ptrace(PTRACE.DETACH, this.tid, 0, sig);
  }

  /** Close our handles without touching the tracee. */
  release(): void {
    if (this.memFd >= 0) {
      fs.closeSync(this.memFd);
      this.memFd = -1;
    }
  }
}
