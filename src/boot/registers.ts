/**
 * Initial vCPU state (hermit-abi.md §3.3) and the MSRs set at boot (§3.5), as data.
 *
 * Owns the register values; the KVM side encodes them into `kvm_regs`,
 * `kvm_sregs` and `kvm_msrs`. Pure; must not import kvm.ts or libc.ts.
 * @module
 */

import type { MsrEntry } from "../abi/kvm.ts";
import { CODE_SEGMENT, DATA_SEGMENT, type SegmentDescriptor } from "./gdt.ts";
import { PML4_OFFSET } from "./layout.ts";

/** CR0.PE: protected mode. */
export const CR0_PE = 0x1;
/** CR0.ET: extension type. */
export const CR0_ET = 0x10;
/** CR0.NE: native FPU error reporting. */
export const CR0_NE = 0x20;
/** CR0.PG: paging. */
export const CR0_PG = 0x8000_0000;
/** CR0 at boot: PE | ET | NE | PG = 0x80000031 (no WP, MP or TS). */
export const BOOT_CR0 = (CR0_PE | CR0_ET | CR0_NE | CR0_PG) >>> 0;

/** CR4.PAE. */
export const CR4_PAE = 0x20;
/** CR4 at boot: PAE only (the kernel enables the rest). */
export const BOOT_CR4: number = CR4_PAE;

/** EFER.LME: long mode enable. */
export const EFER_LME = 0x100;
/** EFER.LMA: long mode active. */
export const EFER_LMA = 0x400;
/** EFER.NXE: no-execute enable. */
export const EFER_NXE = 0x800;
/** EFER at boot: LME | LMA | NXE = 0xD00. */
export const BOOT_EFER = EFER_LME | EFER_LMA | EFER_NXE;

/** RFLAGS at boot: only the always-one bit 1. */
export const BOOT_RFLAGS = 0x2;

/** MSR IA32_MISC_ENABLE. */
export const IA32_MISC_ENABLE = 0x1a0;
/**
 * MSR IA32_APIC_BASE. uhyve also tries to write 1 here, but KVM rejects that
 * value (reserved bit) and stops at it, so it is never applied (§3.5).
 */
export const IA32_APIC_BASE = 0x1b;

/**
 * The MSRs to set on every vCPU: only IA32_MISC_ENABLE = 1 (fast strings),
 * the only write uhyve 0.8.0 actually gets applied.
 */
export const BOOT_MSRS: readonly MsrEntry[] = Object.freeze([
  Object.freeze({ index: IA32_MISC_ENABLE, data: 1 }),
]);

/** General-purpose registers set at boot; all others are zero. */
export interface InitialRegisters {
  /** Entry point. */
  rip: number;
  /** Lowest address of the boot stack region (`kernel_address - 0x8000`). */
  rsp: number;
  /** Address of the boot info (first argument). */
  rdi: number;
  /** vCPU id (second argument). */
  rsi: number;
  /** 0x2. */
  rflags: number;
}

/** Inputs of {@linkcode initialRegisters}. */
export interface InitialRegistersOptions {
  /** Kernel entry point (guest address). */
  entry: number;
  /** Guest address of the boot info (`guest_address + 0x9000`). */
  bootInfo: number;
  /** This vCPU's id, 0 … n−1. */
  cpuId: number;
  /** Boot stack address: `kernel_address - 0x8000`, the region's bottom. */
  stack: number;
}

/**
 * The general-purpose registers of a vCPU at boot: RIP = entry, RDI = boot
 * info, RSI = cpu id, RSP = the *lowest* address of the 32 KiB boot stack
 * region (the kernel adds the stack size itself), RFLAGS = 0x2.
 */
export function initialRegisters(options: InitialRegistersOptions): InitialRegisters {
  return {
    rip: options.entry,
    rsp: options.stack,
    rdi: options.bootInfo,
    rsi: options.cpuId,
    rflags: BOOT_RFLAGS,
  };
}

/** Special registers set at boot; FS, GS, TR, LDT, IDT and APIC base keep KVM's values. */
export interface InitialSpecialRegisters {
  /** 0x80000031. */
  cr0: number;
  /** The PML4: `guest_address + 0x10000`. */
  cr3: number;
  /** 0x20. */
  cr4: number;
  /** 0xD00. */
  efer: number;
  /** 64-bit code segment, selector 0x08. */
  cs: SegmentDescriptor;
  /** Data segment, selector 0x10. */
  ds: SegmentDescriptor;
  /** Data segment, selector 0x10. */
  es: SegmentDescriptor;
  /** Data segment, selector 0x10. */
  ss: SegmentDescriptor;
  /** GDTR. */
  gdt: { base: number; limit: number };
}

/** Inputs of {@linkcode initialSpecialRegisters}. */
export interface InitialSpecialRegistersOptions {
  /** Guest-physical address of the first byte of RAM. */
  guestAddress: number;
  /** GDTR as returned by `writeGdt`. */
  gdt: { base: number; limit: number };
}

/**
 * The special registers of a vCPU at boot (identical on every vCPU): long
 * mode with paging on, CR3 at the boot PML4, CS/DS/ES/SS from the boot GDT.
 */
export function initialSpecialRegisters(
  options: InitialSpecialRegistersOptions,
): InitialSpecialRegisters {
  return {
    cr0: BOOT_CR0,
    cr3: options.guestAddress + PML4_OFFSET,
    cr4: BOOT_CR4,
    efer: BOOT_EFER,
    cs: CODE_SEGMENT,
    ds: DATA_SEGMENT,
    es: DATA_SEGMENT,
    ss: DATA_SEGMENT,
    gdt: { base: options.gdt.base, limit: options.gdt.limit },
  };
}
