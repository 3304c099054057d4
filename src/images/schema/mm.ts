// Field tables of CRIU's mm, vma, pagemap (proto2).
import type { EnumDef, MessageDef } from '../proto.ts';

export const mmMessages = {
  aio_ring_entry: {
    name: 'aio_ring_entry',
    fields: [
      { no: 1, name: 'id', label: 'req', type: 'uint64' },
      { no: 2, name: 'nr_req', label: 'req', type: 'uint32' },
      { no: 3, name: 'ring_len', label: 'req', type: 'uint32' },
    ],
  },
  mm_entry: {
    name: 'mm_entry',
    fields: [
      { no: 1, name: 'mm_start_code', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'mm_end_code', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 3, name: 'mm_start_data', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 4, name: 'mm_end_data', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 5, name: 'mm_start_stack', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 6, name: 'mm_start_brk', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 7, name: 'mm_brk', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 8, name: 'mm_arg_start', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 9, name: 'mm_arg_end', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 10, name: 'mm_env_start', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 11, name: 'mm_env_end', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 12, name: 'exe_file_id', label: 'req', type: 'uint32' },
      { no: 13, name: 'mm_saved_auxv', label: 'rep', type: 'uint64' },
      { no: 14, name: 'vmas', label: 'rep', type: 'message', ref: 'vma_entry' },
      { no: 15, name: 'dumpable', label: 'opt', type: 'int32' },
      { no: 16, name: 'aios', label: 'rep', type: 'message', ref: 'aio_ring_entry' },
      { no: 17, name: 'thp_disabled', label: 'opt', type: 'bool' },
      // criu-ts extension: the auxv words past mm_saved_auxv's AT_VECTOR_SIZE, without AT_NULL.
      { no: 100, name: 'mm_saved_auxv_tail', label: 'rep', type: 'uint64' },
    ],
  },
  vma_entry: {
    name: 'vma_entry',
    fields: [
      { no: 1, name: 'start', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'end', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 3, name: 'pgoff', label: 'req', type: 'uint64' },
      { no: 4, name: 'shmid', label: 'req', type: 'uint64' },
      { no: 5, name: 'prot', label: 'req', type: 'uint32', opts: { flags: 'mmap.prot' } },
      { no: 6, name: 'flags', label: 'req', type: 'uint32', opts: { flags: 'mmap.flags' } },
      { no: 7, name: 'status', label: 'req', type: 'uint32', opts: { flags: 'mmap.status' } },
      { no: 8, name: 'fd', label: 'req', type: 'sint64' },
      { no: 9, name: 'madv', label: 'opt', type: 'uint64', opts: { hex: true } },
      { no: 10, name: 'fdflags', label: 'opt', type: 'uint32', opts: { hex: true } },
    ],
  },
  pagemap_head: {
    name: 'pagemap_head',
    fields: [{ no: 1, name: 'pages_id', label: 'req', type: 'uint32' }],
  },
  pagemap_entry: {
    name: 'pagemap_entry',
    fields: [
      { no: 1, name: 'vaddr', label: 'req', type: 'uint64', opts: { hex: true } },
      { no: 2, name: 'compat_nr_pages', label: 'req', type: 'uint32' },
      { no: 3, name: 'in_parent', label: 'opt', type: 'bool' },
      { no: 4, name: 'flags', label: 'opt', type: 'uint32', opts: { flags: 'pmap.flags' } },
      { no: 5, name: 'nr_pages', label: 'opt', type: 'uint64' },
    ],
  },
} as const satisfies Record<string, MessageDef>;

export const mmEnums = {} as const satisfies Record<string, EnumDef>;
