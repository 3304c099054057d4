// Field tables of CRIU's core-x86 (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const archX86Messages = {
  user_x86_regs_entry: {
    name: 'user_x86_regs_entry',
    fields: [
      { no: 1, name: 'r15', label: 'req', type: 'uint64' },
      { no: 2, name: 'r14', label: 'req', type: 'uint64' },
      { no: 3, name: 'r13', label: 'req', type: 'uint64' },
      { no: 4, name: 'r12', label: 'req', type: 'uint64' },
      { no: 5, name: 'bp', label: 'req', type: 'uint64' },
      { no: 6, name: 'bx', label: 'req', type: 'uint64' },
      { no: 7, name: 'r11', label: 'req', type: 'uint64' },
      { no: 8, name: 'r10', label: 'req', type: 'uint64' },
      { no: 9, name: 'r9', label: 'req', type: 'uint64' },
      { no: 10, name: 'r8', label: 'req', type: 'uint64' },
      { no: 11, name: 'ax', label: 'req', type: 'uint64' },
      { no: 12, name: 'cx', label: 'req', type: 'uint64' },
      { no: 13, name: 'dx', label: 'req', type: 'uint64' },
      { no: 14, name: 'si', label: 'req', type: 'uint64' },
      { no: 15, name: 'di', label: 'req', type: 'uint64' },
      { no: 16, name: 'orig_ax', label: 'req', type: 'uint64' },
      { no: 17, name: 'ip', label: 'req', type: 'uint64' },
      { no: 18, name: 'cs', label: 'req', type: 'uint64' },
      { no: 19, name: 'flags', label: 'req', type: 'uint64' },
      { no: 20, name: 'sp', label: 'req', type: 'uint64' },
      { no: 21, name: 'ss', label: 'req', type: 'uint64' },
      { no: 22, name: 'fs_base', label: 'req', type: 'uint64' },
      { no: 23, name: 'gs_base', label: 'req', type: 'uint64' },
      { no: 24, name: 'ds', label: 'req', type: 'uint64' },
      { no: 25, name: 'es', label: 'req', type: 'uint64' },
      { no: 26, name: 'fs', label: 'req', type: 'uint64' },
      { no: 27, name: 'gs', label: 'req', type: 'uint64' },
      { no: 28, name: 'mode', label: 'opt', type: 'enum', ref: 'user_x86_regs_mode', default: 1 },
    ],
  },
  user_x86_cet_entry: {
    name: 'user_x86_cet_entry',
    fields: [
      { no: 1, name: 'cet', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'ssp', label: 'req', type: 'uint64', opts: { hex: true } },
    ],
  },
  user_x86_xsave_entry: {
    name: 'user_x86_xsave_entry',
    fields: [
      { no: 1, name: 'xstate_bv', label: 'req', type: 'uint64' },
      { no: 2, name: 'ymmh_space', label: 'rep', type: 'uint32' },
      { no: 3, name: 'bndreg_state', label: 'rep', type: 'uint64' },
      { no: 4, name: 'bndcsr_state', label: 'rep', type: 'uint64' },
      { no: 5, name: 'opmask_reg', label: 'rep', type: 'uint64' },
      { no: 6, name: 'zmm_upper', label: 'rep', type: 'uint64' },
      { no: 7, name: 'hi16_zmm', label: 'rep', type: 'uint64' },
      { no: 8, name: 'pkru', label: 'rep', type: 'uint32' },
      { no: 9, name: 'cet', label: 'opt', type: 'message', ref: 'user_x86_cet_entry' },
    ],
  },
  user_x86_fpregs_entry: {
    name: 'user_x86_fpregs_entry',
    fields: [
      { no: 1, name: 'cwd', label: 'req', type: 'uint32' },
      { no: 2, name: 'swd', label: 'req', type: 'uint32' },
      { no: 3, name: 'twd', label: 'req', type: 'uint32' },
      { no: 4, name: 'fop', label: 'req', type: 'uint32' },
      { no: 5, name: 'rip', label: 'req', type: 'uint64' },
      { no: 6, name: 'rdp', label: 'req', type: 'uint64' },
      { no: 7, name: 'mxcsr', label: 'req', type: 'uint32' },
      { no: 8, name: 'mxcsr_mask', label: 'req', type: 'uint32' },
      { no: 9, name: 'st_space', label: 'rep', type: 'uint32' },
      { no: 10, name: 'xmm_space', label: 'rep', type: 'uint32' },
      { no: 11, name: 'padding', label: 'rep', type: 'uint32' },
      { no: 13, name: 'xsave', label: 'opt', type: 'message', ref: 'user_x86_xsave_entry' },
    ],
  },
  user_desc_t: {
    name: 'user_desc_t',
    fields: [
      { no: 1, name: 'entry_number', label: 'req', type: 'uint32' },
      { no: 2, name: 'base_addr', label: 'req', type: 'uint32' },
      { no: 3, name: 'limit', label: 'req', type: 'uint32' },
      { no: 4, name: 'seg_32bit', label: 'req', type: 'bool' },
      { no: 5, name: 'contents_h', label: 'req', type: 'bool' },
      { no: 6, name: 'contents_l', label: 'req', type: 'bool' },
      { no: 7, name: 'read_exec_only', label: 'req', type: 'bool', default: true },
      { no: 8, name: 'limit_in_pages', label: 'req', type: 'bool' },
      { no: 9, name: 'seg_not_present', label: 'req', type: 'bool', default: true },
      { no: 10, name: 'usable', label: 'req', type: 'bool' },
    ],
  },
  thread_info_x86: {
    name: 'thread_info_x86',
    fields: [
      { no: 1, name: 'clear_tid_addr', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'gpregs', label: 'req', type: 'message', ref: 'user_x86_regs_entry', opts: { hex: true } },
      { no: 3, name: 'fpregs', label: 'req', type: 'message', ref: 'user_x86_fpregs_entry' },
      { no: 4, name: 'tls', label: 'rep', type: 'message', ref: 'user_desc_t' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const archX86Enums = {
  user_x86_regs_mode: { name: 'user_x86_regs_mode', values: { NATIVE: 1, COMPAT: 2 } },
} as const satisfies Record<string, EnumDef>;
