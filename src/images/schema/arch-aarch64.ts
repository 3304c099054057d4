// Field tables of CRIU's core-aarch64 (proto2). Fields numbered from 100 are criu-ts's own
// extensions, which CRIU skips as unknown fields.
import type { EnumDef, MessageDef } from '../proto.ts';

export const archAarch64Messages = {
  user_aarch64_regs_entry: {
    name: 'user_aarch64_regs_entry',
    fields: [
      { no: 1, name: 'regs', label: 'rep', type: 'uint64' },
      { no: 2, name: 'sp', label: 'req', type: 'uint64' },
      { no: 3, name: 'pc', label: 'req', type: 'uint64' },
      { no: 4, name: 'pstate', label: 'req', type: 'uint64' },
    ],
  },
  user_aarch64_fpsimd_context_entry: {
    name: 'user_aarch64_fpsimd_context_entry',
    fields: [
      { no: 1, name: 'vregs', label: 'rep', type: 'uint64' },
      { no: 2, name: 'fpsr', label: 'req', type: 'uint32' },
      { no: 3, name: 'fpcr', label: 'req', type: 'uint32' },
    ],
  },
  pac_address_keys: {
    name: 'pac_address_keys',
    fields: [
      { no: 1, name: 'apiakey_lo', label: 'req', type: 'uint64' },
      { no: 2, name: 'apiakey_hi', label: 'req', type: 'uint64' },
      { no: 3, name: 'apibkey_lo', label: 'req', type: 'uint64' },
      { no: 4, name: 'apibkey_hi', label: 'req', type: 'uint64' },
      { no: 5, name: 'apdakey_lo', label: 'req', type: 'uint64' },
      { no: 6, name: 'apdakey_hi', label: 'req', type: 'uint64' },
      { no: 7, name: 'apdbkey_lo', label: 'req', type: 'uint64' },
      { no: 8, name: 'apdbkey_hi', label: 'req', type: 'uint64' },
      { no: 9, name: 'pac_enabled_key', label: 'req', type: 'uint64' },
    ],
  },
  pac_generic_keys: {
    name: 'pac_generic_keys',
    fields: [
      { no: 1, name: 'apgakey_lo', label: 'req', type: 'uint64' },
      { no: 2, name: 'apgakey_hi', label: 'req', type: 'uint64' },
    ],
  },
  pac_keys: {
    name: 'pac_keys',
    fields: [
      { no: 6, name: 'pac_address_keys', label: 'opt', type: 'message', ref: 'pac_address_keys' },
      { no: 7, name: 'pac_generic_keys', label: 'opt', type: 'message', ref: 'pac_generic_keys' },
    ],
  },
  thread_info_aarch64: {
    name: 'thread_info_aarch64',
    fields: [
      { no: 1, name: 'clear_tid_addr', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'tls', label: 'req', type: 'uint64' },
      { no: 3, name: 'gpregs', label: 'req', type: 'message', ref: 'user_aarch64_regs_entry', opts: { hex: true } },
      { no: 4, name: 'fpsimd', label: 'req', type: 'message', ref: 'user_aarch64_fpsimd_context_entry' },
      { no: 5, name: 'pac_keys', label: 'opt', type: 'message', ref: 'pac_keys' },
      { no: 6, name: 'gcs', label: 'opt', type: 'message', ref: 'user_aarch64_gcs_entry' },
      // criu-ts extension: the NT_ARM_SVE regset when the thread's live state was SVE.
      { no: 100, name: 'sve', label: 'opt', type: 'bytes' },
    ],
  },
  user_aarch64_gcs_entry: {
    name: 'user_aarch64_gcs_entry',
    fields: [
      { no: 1, name: 'gcspr_el0', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'features_enabled', label: 'req', type: 'uint64', opts: { hex: true } },
      // criu-ts extension: CRIU's PR #2725 does not keep the locked bits.
      { no: 100, name: 'features_locked', label: 'opt', type: 'uint64', opts: { hex: true } },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const archAarch64Enums = {} as const satisfies Record<string, EnumDef>;
