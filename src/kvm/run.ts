/**
 * `KvmRun`: the one reader of `struct kvm_run`, the page KVM shares with
 * each vCPU. Exit decoding (reason, port I/O, MMIO, failures, debug), the
 * synced registers (`kvm_valid_regs`/`kvm_dirty_regs`) and `immediate_exit`
 * go through it; nobody else knows an offset. Getters over one DataView, made
 * once per vCPU: nothing is allocated per exit. Pure (tests build one over a
 * plain ArrayBuffer).
 * @module
 */

import {
  KVM_REGS_SIZE,
  type RegName,
  REGS,
  RUN,
  RUN_SYNC_SREGS as SYNC_SREGS,
  SYNC_REGS,
} from "../abi/kvm.ts";
/** Offset of RDI among the synced registers. */
const SYNC_RDI = RUN.syncRegs + REGS.rdi;

/** A view of one vCPU's `kvm_run`. */
export class KvmRun {
  /** The mapped page (and the port I/O data after it) as a DataView. */
  readonly view: DataView;
  /** The same bytes: port I/O and MMIO data live in here. */
  readonly bytes: Uint8Array;
  /** Where the synced special registers are, for code that reads them like a `Sregs` buffer. */
  readonly syncedSregs: { readonly view: DataView; readonly offset: number };

  /** A view over `view` (the mapping, or a plain buffer in tests). */
  constructor(view: DataView) {
    this.view = view;
    this.bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    this.syncedSregs = { view, offset: SYNC_SREGS };
  }

  /** `exit_reason` (see `EXIT`). */
  get exitReason(): number {
    return this.view.getUint32(RUN.exitReason, true);
  }

  // --- KVM_EXIT_IO

  /** The port of a port I/O exit. */
  get ioPort(): number {
    return this.view.getUint16(RUN.ioPort, true);
  }
  /** Bytes per access (1, 2 or 4). */
  get ioSize(): number {
    return this.view.getUint8(RUN.ioSize);
  }
  /** True for OUT, false for IN. */
  get ioIsOut(): boolean {
    return this.view.getUint8(RUN.ioDirection) === 1;
  }
  /** Number of accesses (more than 1 for `rep ins/outs`). */
  get ioCount(): number {
    return this.view.getUint32(RUN.ioCount, true);
  }
  /** Where in {@linkcode bytes} the data is (size × count bytes). */
  get ioDataOffset(): number {
    return this.view.getUint32(RUN.ioDataOffset, true);
  }

  // --- KVM_EXIT_MMIO

  /** The guest-physical address of an MMIO exit. */
  get mmioAddress(): number {
    return this.view.getUint32(RUN.mmioPhysAddr, true) +
      this.view.getUint32(RUN.mmioPhysAddr + 4, true) * 0x1_0000_0000;
  }
  /** Bytes accessed (at most 8). */
  get mmioLength(): number {
    return this.view.getUint32(RUN.mmioLen, true);
  }
  /** True for a write. */
  get mmioIsWrite(): boolean {
    return this.view.getUint8(RUN.mmioIsWrite) !== 0;
  }
  /** Where in {@linkcode bytes} the MMIO data is (8 bytes). */
  readonly mmioDataOffset: number = RUN.mmioData;

  // --- failures

  /** KVM_EXIT_FAIL_ENTRY: the hardware's reason. */
  get failEntryReason(): bigint {
    return this.view.getBigUint64(RUN.failEntryReason, true);
  }
  /** KVM_EXIT_INTERNAL_ERROR: the suberror (see `INTERNAL_ERROR`). */
  get internalSuberror(): number {
    return this.view.getUint32(RUN.internalSuberror, true);
  }
  /** An emulation failure's flags (see `EMULATION_FLAG_INSTRUCTION_BYTES`). */
  get emulationFlags(): number {
    return this.view.getUint32(RUN.emulationFlags, true);
  }
  /** A copy of the instruction bytes KVM reported with an emulation failure, or null. */
  emulationInstruction(validFlag: number): Uint8Array | null {
    const size = this.view.getUint8(RUN.emulationInsnSize);
    if ((this.emulationFlags & validFlag) === 0 || size === 0 || size > 15) return null;
    return this.bytes.slice(RUN.emulationInsnBytes, RUN.emulationInsnBytes + size);
  }

  // --- KVM_EXIT_DEBUG

  /** The exception vector of a debug exit (1 for #DB, 3 for #BP). */
  get debugException(): number {
    return this.view.getUint32(RUN.debugException, true);
  }
  /** DR6 of a debug exit (low 32 bits). */
  get debugDr6(): number {
    return this.view.getUint32(RUN.debugDr6, true);
  }

  // --- synced registers (KVM_CAP_SYNC_REGS)

  /** Asks KVM to copy the general registers (and `sregs` too, when set) out on every exit. */
  syncOut(sregs: boolean): void {
    const valid = this.view.getUint32(RUN.validRegs, true);
    this.view.setUint32(
      RUN.validRegs,
      valid | SYNC_REGS.REGS | (sregs ? SYNC_REGS.SREGS : 0),
      true,
    );
  }

  /** RDI from the synced registers as a signed number (a negative exit code stays negative). */
  rdi(): number {
    return this.view.getUint32(SYNC_RDI, true) +
      this.view.getInt32(SYNC_RDI + 4, true) * 0x1_0000_0000;
  }
  /** A synced general register. */
  reg(name: RegName): bigint {
    return this.view.getBigUint64(RUN.syncRegs + REGS[name], true);
  }
  /** Sets a synced general register; {@linkcode markRegsDirty} makes KVM load them. */
  setReg(name: RegName, value: bigint): void {
    this.view.setBigUint64(RUN.syncRegs + REGS[name], BigInt.asUintN(64, value), true);
  }
  /** The synced `struct kvm_regs` as bytes (a copy goes to KVM_SET_REGS). */
  regsBytes(): Uint8Array {
    return this.bytes.subarray(RUN.syncRegs, RUN.syncRegs + KVM_REGS_SIZE);
  }
  /** True when synced general registers wait for the next KVM_RUN. */
  get regsDirty(): boolean {
    return (this.view.getUint32(RUN.dirtyRegs, true) & SYNC_REGS.REGS) !== 0;
  }
  /** Marks the synced general registers for KVM to load at the next KVM_RUN (or clears that). */
  markRegsDirty(dirty = true): void {
    const d = this.view.getUint32(RUN.dirtyRegs, true);
    this.view.setUint32(RUN.dirtyRegs, dirty ? d | SYNC_REGS.REGS : d & ~SYNC_REGS.REGS, true);
  }

  /** `immediate_exit`: the next (or current) KVM_RUN returns at once with EINTR. */
  setImmediateExit(on: boolean): void {
    this.view.setUint8(RUN.immediateExit, on ? 1 : 0);
  }
}
