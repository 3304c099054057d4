export * from './constants.ts';
export * from './syscalls.ts';
export * from './socket.ts';
export { SysError, errnoName, errnoCode } from './errors.ts';
export { posixSpawn, addressOf, catchSignalOnce, signalCaught, defaultSignal, type SpawnFd } from './ffi.ts';
export { arch, sysnr, type Arch, type SyscallName } from './arch/index.ts';
export { X86, X86_REG_NAMES, type X86Reg } from './arch/x86_64.ts';
export { A64, FPSIMD_SIZE } from './arch/aarch64.ts';
export { zeroPagePfn } from './zeropage.ts';
export { withThreadFsIds, withMappedOwner } from './fsids.ts';
export { spawnTethered, endTethered, type Tethered } from './tether.ts';
export { UFFD_USER_MODE_ONLY, uffdApiWpAsync, uffdRegisterWp, uffdWriteProtect, memTrackWorks } from './uffd.ts';
export { preadFully, openBeneath } from './io.ts';
export {
  seqpacketListen,
  seqpacketConnect,
  seqpacketPair,
  acceptConn,
  setRecvTimeout,
  socketType,
  peerCred,
  recvDatagram,
  sendDatagram,
  peerGone,
} from './seqpacket.ts';
export * from './structs.ts';
export * as sock from './inet.ts';
export * as tcp from './tcpstream.ts';
export { inNamespaces, inNetNsFd } from './ns.ts';
export * as sysv from './sysvipc.ts';
export * from './tun.ts';
export { runProgram, programPath, type ProgramResult } from './spawn.ts';
