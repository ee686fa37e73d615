/**
 * KVM structure layouts and constants (linux/kvm.h, x86_64), declared once.
 *
 * Offsets are byte offsets into the C structs; sizes are pinned by unit tests.
 * Pure data: nothing here touches FFI.
 * @module
 */

/** `sizeof(struct kvm_regs)`. */
export const KVM_REGS_SIZE = 144;
/** `sizeof(struct kvm_sregs)`. */
export const KVM_SREGS_SIZE = 312;
/** `sizeof(struct kvm_segment)`. */
export const KVM_SEGMENT_SIZE = 24;
/** `sizeof(struct kvm_userspace_memory_region)`. */
export const KVM_USERSPACE_MEMORY_REGION_SIZE = 32;
/** `sizeof(struct kvm_enable_cap)`. */
export const KVM_ENABLE_CAP_SIZE = 104;
/** `sizeof(struct kvm_pit_config)`. */
export const KVM_PIT_CONFIG_SIZE = 64;
/** `sizeof(struct kvm_mp_state)`. */
export const KVM_MP_STATE_SIZE = 4;
/** `sizeof(struct kvm_vcpu_events)`. */
export const KVM_VCPU_EVENTS_SIZE = 64;
/** `sizeof(struct kvm_xcrs)`: nr_xcrs, flags, 16 × {xcr, pad, value}, 16 × u64 padding. */
export const KVM_XCRS_SIZE = 392;
/** `sizeof(struct kvm_xsave)`: a 4 KiB XSAVE image in standard format. */
export const KVM_XSAVE_SIZE = 4096;
/** `sizeof(struct kvm_guest_debug)`: control, pad, then `debugreg[8]` (u64 each). */
export const KVM_GUEST_DEBUG_SIZE = 72;
/** Header of `struct kvm_cpuid2` (nent, padding). */
export const KVM_CPUID2_HEADER_SIZE = 8;
/** `sizeof(struct kvm_cpuid_entry2)`. */
export const KVM_CPUID_ENTRY2_SIZE = 40;
/** Header of `struct kvm_msrs` (nmsrs, pad). */
export const KVM_MSRS_HEADER_SIZE = 8;
/** `sizeof(struct kvm_msr_entry)`. */
export const KVM_MSR_ENTRY_SIZE = 16;
/** Header of `struct kvm_msr_list` (nmsrs). */
export const KVM_MSR_LIST_HEADER_SIZE = 4;

/** Byte offsets of the general registers in `struct kvm_regs`. */
export const REGS = {
  rax: 0,
  rbx: 8,
  rcx: 16,
  rdx: 24,
  rsi: 32,
  rdi: 40,
  rsp: 48,
  rbp: 56,
  r8: 64,
  r9: 72,
  r10: 80,
  r11: 88,
  r12: 96,
  r13: 104,
  r14: 112,
  r15: 120,
  rip: 128,
  rflags: 136,
} as const;

/** Names of the general registers, in `struct kvm_regs` order. */
export type RegName = keyof typeof REGS;

/** Byte offsets in `struct kvm_sregs`. */
export const SREGS = {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apicBase: 272,
  interruptBitmap: 280,
} as const;

/** Byte offsets in `struct kvm_segment`. */
export const SEGMENT = {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
  unusable: 22,
} as const;

/** Byte offsets in the mmap'd `struct kvm_run`. */
export const RUN = {
  requestInterruptWindow: 0,
  immediateExit: 1,
  exitReason: 8,
  ioDirection: 32,
  ioSize: 33,
  ioPort: 34,
  ioCount: 36,
  ioDataOffset: 40,
  mmioPhysAddr: 32,
  mmioData: 40,
  mmioLen: 48,
  mmioIsWrite: 52,
  failEntryReason: 32,
  failEntryCpu: 40,
  internalSuberror: 32,
  internalNdata: 36,
  internalData: 40,
  /** Emulation failure (suberror 1): u64 flags, then insn_size and up to 15 bytes. */
  emulationFlags: 40,
  emulationInsnSize: 48,
  emulationInsnBytes: 49,
  systemEventType: 32,
  /** `kvm_debug_exit_arch` (KVM_EXIT_DEBUG): u32 exception, u32 pad, u64 pc, dr6, dr7. */
  debugException: 32,
  debugPc: 40,
  debugDr6: 48,
  debugDr7: 56,
  validRegs: 288,
  dirtyRegs: 296,
  syncRegs: 304,
} as const;

/** Offset of `struct kvm_sregs` inside the sync-regs area of `kvm_run`. */
export const RUN_SYNC_SREGS = RUN.syncRegs + KVM_REGS_SIZE;

/** KVM exit reasons dhyve distinguishes. */
export const EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

let exitNames: Readonly<Record<number, string>> | undefined;

/**
 * The name of a KVM exit reason, for messages and stats: `exitName(8)` is
 * `"SHUTDOWN"`; undefined for a reason dhyve does not know.
 */
export function exitName(reason: number): string | undefined {
  // Built on first use, not at every start (only the --stats report asks).
  exitNames ??= Object.fromEntries(Object.entries(EXIT).map(([name, code]) => [code, name]));
  return exitNames[reason];
}

/** `kvm_run.io.direction` values. */
export const IO_IN = 0;
/** `kvm_run.io.direction` value for OUT. */
export const IO_OUT = 1;

/** KVM internal-error suberrors. */
export const INTERNAL_ERROR = {
  EMULATION: 1,
  SIMUL_EX: 2,
  DELIVERY_EV: 3,
  UNEXPECTED_EXIT_REASON: 4,
} as const;

/** `emulation_failure.flags` bit: instruction bytes are valid. */
export const EMULATION_FLAG_INSTRUCTION_BYTES = 1;

/** `kvm_valid_regs` / `kvm_dirty_regs` bits. */
export const SYNC_REGS = { REGS: 1, SREGS: 2, EVENTS: 4 } as const;

/** `kvm_guest_debug.control` flags (linux/kvm.h and asm/kvm.h, x86). */
export const GUESTDBG = {
  ENABLE: 0x1,
  SINGLESTEP: 0x2,
  USE_SW_BP: 0x10000,
  USE_HW_BP: 0x20000,
} as const;

/** Exception vectors a KVM_EXIT_DEBUG reports: #DB (debug registers, single step), #BP (int3). */
export const DEBUG_VECTOR = { DB: 1, BP: 3 } as const;

/** KVM capabilities dhyve checks or enables. */
export const CAP = {
  IRQCHIP: 0,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  MP_STATE: 14,
  PIT2: 33,
  SYNC_REGS: 74,
  SET_GUEST_DEBUG: 23,
  TSC_DEADLINE_TIMER: 72,
  IRQFD: 32,
  X2APIC_API: 129,
  SPLIT_IRQCHIP: 121,
  IMMEDIATE_EXIT: 136,
  X86_DISABLE_EXITS: 143,
  MAX_VCPUS: 66,
} as const;

/** KVM_CAP_X2APIC_API flags. */
export const X2APIC_API = { USE_32BIT_IDS: 1, DISABLE_BROADCAST_QUIRK: 2 } as const;

/** KVM_CAP_X86_DISABLE_EXITS flags. */
export const DISABLE_EXITS = { MWAIT: 1, HLT: 2, PAUSE: 4, CSTATE: 8 } as const;

/** `kvm_mp_state.mp_state` value for a runnable vCPU. */
export const MP_STATE_RUNNABLE = 0;
/** `kvm_mp_state.mp_state` of a vCPU that executed HLT and waits for an interrupt. */
export const MP_STATE_HALTED = 3;

/**
 * Byte offsets in `struct kvm_vcpu_events` of the "injected" and "pending"
 * flags of each event kind (exception, interrupt, NMI, SMI).
 */
export const VCPU_EVENTS = {
  exceptionInjected: 0,
  exceptionPending: 3,
  interruptInjected: 8,
  nmiInjected: 12,
  nmiPending: 13,
  smiPending: 25,
} as const;

/** The KVM API version every modern kernel reports. */
export const KVM_API_VERSION = 12;

/** One CPUID entry, as in KVM's `kvm_cpuid_entry2` (all fields unsigned 32-bit). */
export interface CpuidEntry {
  /** Leaf (EAX input). */
  function: number;
  /** Sub-leaf (ECX input), meaningful when `flags` says so. */
  index: number;
  /** KVM_CPUID_FLAG_* bits. */
  flags: number;
  /** EAX output. */
  eax: number;
  /** EBX output. */
  ebx: number;
  /** ECX output. */
  ecx: number;
  /** EDX output. */
  edx: number;
}

/** One MSR write. */
export interface MsrEntry {
  /** MSR index. */
  readonly index: number;
  /** Value to write. */
  readonly data: number;
}
