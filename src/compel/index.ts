export {
  Tracee,
  InjectionError,
  RemoteSysError,
  INJECTION_SIGMASK,
  unsafeWindow,
  type SysArg,
  type StopInfo,
  type HealSlot,
} from './tracee.ts';
export { healFrame, type HealState } from './heal.ts';
export { InjectionArea, findSyscallInsn, vdsoSyscallInsn, isInjectionArea, AREA_SIZE } from './area.ts';
export { xsaveOffsets, cpuid, type CpuidRegs } from './cpuid.ts';
export { colocate, endColocation, tracerAffinity } from './colocate.ts';
