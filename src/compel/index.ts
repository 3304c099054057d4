export { Tracee, InjectionError, RemoteSysError, INJECTION_SIGMASK, type SysArg, type StopInfo } from './tracee.ts';
export { InjectionArea, findSyscallInsn, vdsoSyscallInsn, AREA_SIZE } from './area.ts';
export { xsaveOffsets } from './cpuid.ts';
export { colocate, endColocation, tracerAffinity } from './colocate.ts';
