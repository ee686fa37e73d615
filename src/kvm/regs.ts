/**
 * Reusable `struct kvm_regs` and `struct kvm_sregs` buffers with typed
 * accessors. Pure: no FFI.
 * @module
 */

import { KVM_REGS_SIZE, KVM_SREGS_SIZE, type RegName, REGS, SEGMENT } from "../abi/kvm.ts";

/** A segment register as `struct kvm_segment` holds it. */
export interface Segment {
  /** Base address. */
  base: number;
  /** Limit. */
  limit: number;
  /** Selector. */
  selector: number;
  /** Type field. */
  type: number;
  /** Present bit. */
  present: number;
  /** Privilege level. */
  dpl: number;
  /** Default operand size. */
  db: number;
  /** Code/data (1) or system (0). */
  s: number;
  /** 64-bit code. */
  l: number;
  /** Granularity. */
  g: number;
  /** Available bit. */
  avl: number;
}

/** A reusable `struct kvm_regs` buffer. */
export class Regs {
  /** The raw bytes passed to KVM. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_REGS_SIZE);
  readonly #view = new DataView(this.bytes.buffer);

  /** A register as a number (exact below 2^53). */
  get(name: RegName): number {
    const o = REGS[name];
    return this.#view.getUint32(o, true) + this.#view.getUint32(o + 4, true) * 0x1_0000_0000;
  }
  /** A register exactly, as a bigint. */
  getBig(name: RegName): bigint {
    return this.#view.getBigUint64(REGS[name], true);
  }
  /** Sets a register from a number (negative values in two's complement). */
  set(name: RegName, value: number): void {
    this.#view.setBigUint64(REGS[name], BigInt.asUintN(64, BigInt(value)), true);
  }
  /** Sets a register from a bigint. */
  setBig(name: RegName, value: bigint): void {
    this.#view.setBigUint64(REGS[name], BigInt.asUintN(64, value), true);
  }
}

/** A reusable `struct kvm_sregs` buffer. */
export class Sregs {
  /** The raw bytes passed to KVM. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_SREGS_SIZE);
  readonly #view = new DataView(this.bytes.buffer);

  /** A 64-bit field at `offset` (see `SREGS`) as a number. */
  getU64(offset: number): number {
    return Number(this.#view.getBigUint64(offset, true));
  }
  /** Sets a 64-bit field at `offset`. */
  setU64(offset: number, value: number): void {
    this.#view.setBigUint64(offset, BigInt(value), true);
  }
  /** A descriptor table register (`kvm_dtable`) at `offset`. */
  getDtable(offset: number): { base: number; limit: number } {
    return { base: this.getU64(offset), limit: this.#view.getUint16(offset + 8, true) };
  }
  /** Sets a descriptor table register at `offset`. */
  setDtable(offset: number, table: { base: number; limit: number }): void {
    this.setU64(offset, table.base);
    this.#view.setUint16(offset + 8, table.limit, true);
  }
  /** Sets a segment register at `offset`. */
  setSegment(offset: number, seg: Segment): void {
    const v = this.#view;
    this.setU64(offset + SEGMENT.base, seg.base);
    v.setUint32(offset + SEGMENT.limit, seg.limit >>> 0, true);
    v.setUint16(offset + SEGMENT.selector, seg.selector, true);
    v.setUint8(offset + SEGMENT.type, seg.type);
    v.setUint8(offset + SEGMENT.present, seg.present);
    v.setUint8(offset + SEGMENT.dpl, seg.dpl);
    v.setUint8(offset + SEGMENT.db, seg.db);
    v.setUint8(offset + SEGMENT.s, seg.s);
    v.setUint8(offset + SEGMENT.l, seg.l);
    v.setUint8(offset + SEGMENT.g, seg.g);
    v.setUint8(offset + SEGMENT.avl, seg.avl);
    v.setUint8(offset + SEGMENT.unusable, 0);
  }
}
