/**
 * The boot GDT (hermit-abi.md §3.1) and the matching segment registers (§3.3).
 *
 * Owns the three descriptors written at guest+0x1000 and the segment values
 * loaded into CS/DS/ES/SS. Pure: writes through {@linkcode GuestMemory} only;
 * must not import kvm.ts or libc.ts.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { GDT_OFFSET } from "./layout.ts";

/** Number of GDT entries: null, code, data. */
export const GDT_ENTRIES = 3;

/** GDTR limit: size of the table minus one (23). */
export const GDT_LIMIT = GDT_ENTRIES * 8 - 1;

/** Selector of the 64-bit code segment (GDT index 1). */
export const CODE_SELECTOR = 0x08;

/** Selector of the data segment (GDT index 2). */
export const DATA_SELECTOR = 0x10;

/** Access byte and flags nibble of the code descriptor (L=1, G=1, P, S, type 0xB). */
export const CODE_DESCRIPTOR_FLAGS = 0xa09b;

/** Access byte and flags nibble of the data descriptor (D/B=1, G=1, P, S, type 0x3). */
export const DATA_DESCRIPTOR_FLAGS = 0xc093;

/**
 * A segment register as KVM's `kvm_segment` holds it (the hidden part too).
 * `unusable` and padding are always zero and left to the encoder.
 */
export interface SegmentDescriptor {
  /** Segment base. */
  readonly base: number;
  /** Segment limit in bytes (already scaled by the granularity). */
  readonly limit: number;
  /** Selector (GDT index × 8, TI=0, RPL=0). */
  readonly selector: number;
  /** Type field (11 = execute/read accessed code, 3 = read/write accessed data). */
  readonly type: number;
  /** Present bit. */
  readonly present: number;
  /** Descriptor privilege level. */
  readonly dpl: number;
  /** Default operation size (D/B) bit. */
  readonly db: number;
  /** Descriptor type: 1 = code or data. */
  readonly s: number;
  /** 64-bit code segment (L) bit. */
  readonly l: number;
  /** Granularity bit. */
  readonly g: number;
  /** Available-for-software bit. */
  readonly avl: number;
}

/** CS at boot: selector 0x08, 64-bit code, DPL 0, D/B=0 (§3.3). */
export const CODE_SEGMENT: SegmentDescriptor = Object.freeze({
  base: 0,
  limit: 0xffff_ffff,
  selector: CODE_SELECTOR,
  type: 11,
  present: 1,
  dpl: 0,
  db: 0,
  s: 1,
  l: 1,
  g: 1,
  avl: 0,
});

/** DS, ES and SS at boot: selector 0x10, read/write data, DPL 0, L=0, D/B=0 (§3.3). */
export const DATA_SEGMENT: SegmentDescriptor = Object.freeze({
  base: 0,
  limit: 0xffff_ffff,
  selector: DATA_SELECTOR,
  type: 3,
  present: 1,
  dpl: 0,
  db: 0,
  s: 1,
  l: 0,
  g: 1,
  avl: 0,
});

/**
 * Writes one legacy 8-byte segment descriptor at `addr`.
 *
 * `flags` carries the access byte in bits 0–7 and the G/D/L/AVL nibble in
 * bits 12–15 (bits 8–11 are ignored), as in the usual `flags 0xA09B` notation.
 */
function writeDescriptor(
  mem: GuestMemory,
  addr: number,
  flags: number,
  base: number,
  limit: number,
): void {
  const low = (((base & 0xffff) << 16) | (limit & 0xffff)) >>> 0;
  const high = ((base & 0xff00_0000) | ((flags & 0xf0ff) << 8) | (limit & 0xf_0000) |
    ((base >>> 16) & 0xff)) >>> 0;
  mem.writeU32(addr, low);
  mem.writeU32(addr + 4, high);
}

/**
 * Writes the 3-entry boot GDT at `guestAddress + 0x1000`: null, 64-bit code
 * (raw `0x00AF9B000000FFFF`) and data (raw `0x00CF93000000FFFF`).
 *
 * @param mem guest RAM
 * @param guestAddress guest-physical address of the first byte of guest RAM
 * @returns the GDTR value: `{ base: guestAddress + 0x1000, limit: 23 }`
 * @throws {GuestMemoryError} if the table does not fit in guest RAM
 */
export function writeGdt(mem: GuestMemory, guestAddress: number): { base: number; limit: number } {
  const base = guestAddress + GDT_OFFSET;
  mem.offset(base, GDT_ENTRIES * 8); // whole table in RAM before any byte moves
  writeDescriptor(mem, base, 0, 0, 0);
  writeDescriptor(mem, base + 8, CODE_DESCRIPTOR_FLAGS, 0, 0xf_ffff);
  writeDescriptor(mem, base + 16, DATA_DESCRIPTOR_FLAGS, 0, 0xf_ffff);
  return { base, limit: GDT_LIMIT };
}
