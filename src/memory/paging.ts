/**
 * x86_64 4-level paging over guest RAM: the boot identity map (hermit-abi.md
 * §3.2) and the guest-virtual → guest-physical walk used for v1 buffers (§5.4).
 *
 * Pure: reads and writes page tables through {@linkcode GuestMemory} only;
 * must not import kvm.ts or libc.ts. Addresses are numbers (exact below 2^53;
 * physical addresses are below 2^52), entries are read as two 32-bit halves,
 * and the walk allocates nothing.
 * @module
 */

import type { GuestMemory } from "./guest_memory.ts";
import { KERNEL_OFFSET, PAGE_TABLES_END, PAGE_TABLES_OFFSET, PML4_OFFSET } from "../boot/layout.ts";
import { hex } from "../hex.ts";

/** Size of a 4 KiB page and of a page-table frame. */
export const PAGE_SIZE_4K = 0x1000;
/** Size of a 2 MiB (PD-level) page. */
export const PAGE_SIZE_2M = 0x20_0000;
/** Size of a 1 GiB (PDPT-level) page. */
export const PAGE_SIZE_1G = 0x4000_0000;

/** Entry bit 0: present. */
export const PTE_PRESENT = 0x1;
/** Entry bit 1: writable. */
export const PTE_WRITABLE = 0x2;
/** Entry bit 7 in a PDPT or PD entry: maps a 1 GiB or 2 MiB page. */
export const PTE_HUGE = 0x80;

/** Flags of the boot map's table entries (PML4, PDPT): present | writable. */
export const TABLE_ENTRY_FLAGS = PTE_PRESENT | PTE_WRITABLE;
/** Flags of the boot map's 2 MiB page entries: present | writable | huge (0x83). */
export const PAGE_2M_ENTRY_FLAGS = PTE_PRESENT | PTE_WRITABLE | PTE_HUGE;

/** Index of the recursive (self-referencing) PML4 entry. */
export const RECURSIVE_INDEX = 511;

/** First virtual address past the lower canonical half (2^47). */
export const LOWER_HALF_END = 0x8000_0000_0000;

const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_64 = 2 ** 64;
const TWO_POW_39 = 0x80_0000_0000;
/** Bits 32–51 of an entry's address field, as a mask on the high half. */
const HIGH_ADDRESS_MASK = 0x000f_ffff;

/** Options of {@linkcode buildIdentityMap}. */
export interface IdentityMapOptions {
  /** Guest-physical address of the first byte of RAM; a multiple of 2 MiB. */
  guestAddress: number;
  /** Guest-physical end of the loaded kernel (`kernel_address + mem_size`). */
  kernelEnd: number;
  /**
   * Legacy mapping (no GNU version note, or Hermit < 0.10.0): map up to the
   * last 2 MiB page of the 1 GiB region containing `guestAddress + 0x40000`.
   */
  legacy: boolean;
}

/** What {@linkcode buildIdentityMap} built. */
export interface IdentityMap {
  /** Guest-physical address of the PML4 (the value for CR3). */
  pml4: number;
  /** Number of 2 MiB pages mapped. */
  pages2m: number;
  /** Number of 4 KiB table frames taken from guest+0x11000 onwards. */
  framesUsed: number;
}

/**
 * Builds the boot page tables: a zeroed PML4 at guest+0x10000 whose entry 511
 * points at itself, and an identity map of 2 MiB pages (entry `addr | 0x83`)
 * for every 2 MiB-stepped address `a` with `guestAddress <= a <= end`
 * (inclusive). `end` is `kernelEnd`, or for a legacy kernel the larger of
 * `kernelEnd` and the last 2 MiB page of the 1 GiB region that contains
 * `guestAddress + 0x40000`.
 *
 * PDPT and PD frames are bump-allocated from guest+0x11000, zeroed when
 * taken, and linked with `frame | 0x3`. Mapped pages may lie past the end of
 * RAM (a legacy map covers a whole GiB); only the tables must be in RAM.
 *
 * @throws {RangeError} if `guestAddress` is not 2 MiB aligned, `kernelEnd`
 *   lies below it, the range leaves the lower canonical half, RAM does not
 *   hold `[guest+0x10000, guest+0x30000)` (checked before anything is
 *   written), or the 31 table frames run out (uhyve panics there; the partial
 *   tables are left behind and the VM must not be started)
 */
export function buildIdentityMap(mem: GuestMemory, options: IdentityMapOptions): IdentityMap {
  const { guestAddress, kernelEnd, legacy } = options;
  if (!Number.isSafeInteger(guestAddress) || guestAddress < 0 || guestAddress % PAGE_SIZE_2M) {
    throw new RangeError(
      `Cannot build page tables: guest address ${hex(guestAddress)} is not 2 MiB aligned`,
    );
  }
  if (!Number.isSafeInteger(kernelEnd) || kernelEnd < guestAddress) {
    throw new RangeError(
      `Cannot build page tables: kernel end ${hex(kernelEnd)} lies below guest address ${
        hex(guestAddress)
      }`,
    );
  }
  let end = kernelEnd;
  if (legacy) {
    const kernelStart = guestAddress + KERNEL_OFFSET;
    const lastPageOfGiB = Math.floor(kernelStart / PAGE_SIZE_1G) * PAGE_SIZE_1G +
      511 * PAGE_SIZE_2M;
    end = Math.max(end, lastPageOfGiB);
  }
  // PML4 index 511 is the recursive entry; identity-mapped addresses must stay
  // in the lower canonical half (indices 0–255) so they never collide with it.
  if (end >= LOWER_HALF_END) {
    throw new RangeError(
      `Cannot build page tables: mapping end ${hex(end)} is outside the lower canonical half`,
    );
  }
  const pml4 = guestAddress + PML4_OFFSET;
  const framesStart = guestAddress + PAGE_TABLES_OFFSET;
  const framesEnd = guestAddress + PAGE_TABLES_END;
  if (!mem.contains(pml4, framesEnd - pml4)) {
    throw new RangeError(
      `Cannot build page tables: guest RAM does not hold ${hex(pml4)}..${hex(framesEnd)}`,
    );
  }

  mem.fill(pml4, PAGE_SIZE_4K);
  writeEntry(mem, pml4 + RECURSIVE_INDEX * 8, pml4, TABLE_ENTRY_FLAGS);

  let nextFrame = framesStart;
  function tableAt(table: number, index: number): number {
    const slot = table + index * 8;
    const low = mem.readU32(slot);
    if (low & PTE_PRESENT) {
      return entryAddress(low, mem.readU32(slot + 4));
    }
    if (nextFrame >= framesEnd) {
      throw new RangeError(
        `Cannot build page tables: out of table frames (${
          (framesEnd - framesStart) / PAGE_SIZE_4K
        } frames at guest+${hex(PAGE_TABLES_OFFSET)}..${hex(PAGE_TABLES_END)}) while mapping ${
          hex(guestAddress)
        }..${hex(end)}`,
      );
    }
    const frame = nextFrame;
    nextFrame += PAGE_SIZE_4K;
    mem.fill(frame, PAGE_SIZE_4K);
    writeEntry(mem, slot, frame, TABLE_ENTRY_FLAGS);
    return frame;
  }

  // By 2 MiB page number (< 2^26 in the lower half), one page directory at a time: the
  // numbers stay small integers, where addresses above 2^30 made V8's interpreter box each
  // intermediate result (~300 KB of heap and ~2 ms for a kernel placed near 4 GiB).
  const firstPage = guestAddress / PAGE_SIZE_2M;
  const lastPage = Math.floor(end / PAGE_SIZE_2M);
  for (let page = firstPage; page <= lastPage;) {
    const pdpt = tableAt(pml4, page >>> 18); // PML4 index: address bits 39-47
    const pd = tableAt(pdpt, (page >>> 9) & 511); // PDPT index: bits 30-38
    const last = Math.min(lastPage, page | 511); // the last page this directory maps
    write2mEntries(mem, pd, page, last);
    page = last + 1;
  }
  return {
    pml4,
    pages2m: lastPage - firstPage + 1,
    framesUsed: (nextFrame - framesStart) / PAGE_SIZE_4K,
  };
}

/** Writes the entry `address | flags` (address page aligned, below 2^52). */
function writeEntry(mem: GuestMemory, slot: number, address: number, flags: number): void {
  const high = Math.floor(address / TWO_POW_32);
  mem.writeU32(slot, ((address - high * TWO_POW_32) | flags) >>> 0);
  mem.writeU32(slot + 4, high);
}

/**
 * Writes the entries of 2 MiB pages `first..last` (page numbers: address / 2 MiB, all in
 * the page directory at `pd`), each `address | PAGE_2M_ENTRY_FLAGS`, as 16-bit pieces
 * (small integers: no boxed numbers), through a native-order view: dhyve runs on x86-64
 * only, little-endian as the guest.
 */
function write2mEntries(mem: GuestMemory, pd: number, first: number, last: number): void {
  const span = mem.span(pd, PAGE_SIZE_4K);
  const words = new Uint16Array(span.u8.buffer, span.u8.byteOffset + mem.indexIn(span, pd), 2048);
  for (let page = first; page <= last; page++) {
    const at = (page & 511) * 4;
    words[at] = PAGE_2M_ENTRY_FLAGS; // address bits 12-20 are zero
    words[at + 1] = (page & 0x7ff) << 5; // address bits 21-31
    words[at + 2] = page >>> 11; // bits 32-47 (page < 2^26)
    words[at + 3] = 0;
  }
}

/** The 4 KiB-aligned address field (bits 12–51) of an entry given as halves. */
function entryAddress(low: number, high: number): number {
  return (high & HIGH_ADDRESS_MASK) * TWO_POW_32 + ((low & 0xffff_f000) >>> 0);
}

/** #PF error code bits, as {@linkcode walkPage} reports them. */
export const PF_ERROR = {
  /** The page was present (a protection violation). */
  PRESENT: 1,
  /** The access was a write. */
  WRITE: 2,
  /** The access came from user mode (CPL 3). */
  USER: 4,
} as const;

/** Entry bit 2: user-accessible. */
const PTE_USER = 0x4;

/** How an access is checked by {@linkcode walkPage}. */
export interface AccessMode {
  /** A write (needs R/W at every level when CR0.WP or user mode). */
  readonly write: boolean;
  /** From user mode (CPL 3: needs U/S at every level). */
  readonly user: boolean;
  /** CR0.WP: supervisor writes honour read-only pages. */
  readonly wp: boolean;
}

/** The outcome of one {@linkcode walkPage}; made once by the caller and refilled. */
export class PageWalk {
  /** Guest-physical address (when the walk succeeded). */
  gpa = 0;
  /** Size of the page that maps it: 4 KiB, 2 MiB or 1 GiB (when the walk succeeded). */
  pageSize = 0;
  /** The #PF error code the CPU would report (when the walk failed). */
  errorCode = 0;
}

/**
 * The one page walker: translates the 48-bit linear address `linear` (an
 * integer in [0, 2^48): the low 48 bits of a canonical address, so the upper
 * half is reachable) through the 4-level tables at `cr3`, honouring 1 GiB
 * pages at the PDPT and 2 MiB pages at the PD. With a `mode`, the present,
 * writable and user bits of every level are checked as the CPU checks them
 * (CR0.WP honoured); with null only presence. A table outside guest RAM
 * counts as not present. Fills `out` and returns true, or sets
 * `out.errorCode` to the CPU's #PF error code and returns false. The frames
 * of the tables read (gpa / 4 KiB) are added to `tables` when given. The
 * result is not checked against RAM (a mapping may point past it).
 * Allocates nothing.
 */
export function walkPage(
  mem: GuestMemory,
  cr3: number,
  linear: number,
  mode: AccessMode | null,
  out: PageWalk,
  tables?: Set<number>,
): boolean {
  // CR3 bits 12–51 (PCID, PWT and PCD below bit 12 are dropped).
  let table = (Math.floor(cr3 / TWO_POW_32) & HIGH_ADDRESS_MASK) * TWO_POW_32 +
    ((cr3 & 0xffff_f000) >>> 0);
  let writable = true;
  let user = true;
  let shift = TWO_POW_39;
  const baseCode = mode === null
    ? 0
    : (mode.write ? PF_ERROR.WRITE : 0) | (mode.user ? PF_ERROR.USER : 0);
  out.errorCode = baseCode;
  for (let level = 4; level >= 1; level--) {
    const slot = table + (Math.floor(linear / shift) % 512) * 8;
    if (!mem.contains(slot, 8)) return false;
    tables?.add(Math.floor(table / PAGE_SIZE_4K));
    const low = mem.readU32(slot);
    if ((low & PTE_PRESENT) === 0) return false;
    const high = mem.readU32(slot + 4);
    writable &&= (low & PTE_WRITABLE) !== 0;
    user &&= (low & PTE_USER) !== 0;
    let pageSize = 0;
    let frameLow = 0;
    if (level === 1) {
      pageSize = PAGE_SIZE_4K;
      frameLow = (low & 0xffff_f000) >>> 0;
    } else if ((level === 3 || level === 2) && (low & PTE_HUGE) !== 0) {
      // Bits below the page size in a huge entry are PAT/reserved, not address.
      pageSize = shift;
      frameLow = (low & (level === 3 ? 0xc000_0000 : 0xffe0_0000)) >>> 0;
    }
    if (pageSize !== 0) {
      if (
        mode !== null &&
        ((mode.user && !user) || (mode.write && !writable && (mode.user || mode.wp)))
      ) {
        out.errorCode = baseCode | PF_ERROR.PRESENT;
        return false;
      }
      out.gpa = (high & HIGH_ADDRESS_MASK) * TWO_POW_32 + frameLow + (linear % pageSize);
      out.pageSize = pageSize;
      return true;
    }
    table = entryAddress(low, high);
    shift /= 512;
  }
  return false; // unreachable: level 1 always returns
}

/** The walk of {@linkcode translate} and {@linkcode translateRange}. */
const walked = new PageWalk();

/** {@linkcode walkPage} without access checks for a lower-half `vaddr`; the gpa or -1. */
function walk(mem: GuestMemory, cr3: number, vaddr: number): number {
  if (!(vaddr >= 0 && vaddr < LOWER_HALF_END) || !Number.isInteger(vaddr)) return -1;
  if (!(cr3 >= 0 && cr3 < TWO_POW_64) || !Number.isInteger(cr3)) return -1;
  return walkPage(mem, cr3, vaddr, null, walked) ? walked.gpa : -1;
}

/**
 * Translates the guest-virtual `vaddr` through the guest's page tables rooted
 * at `cr3` (4 levels, honouring 1 GiB pages at the PDPT and 2 MiB pages at the
 * PD; table bases are `entry & 0x000F_FFFF_FFFF_F000`).
 *
 * Meant for untrusted guest pointers: never throws for a guest-caused problem.
 * Returns -1 when an entry is not present, a table lies (partly) outside guest
 * RAM, or `vaddr` is not in the lower canonical half. Upper-half addresses
 * (≥ 0xFFFF_8000_0000_0000) are above 2^53 and cannot be held exactly in a
 * number, so they return -1 too; Hermit's buffers all live in the lower half.
 * Access rights (W, U, NX) and reserved bits are not checked. The result is
 * not checked against RAM: a mapping may point past it, so access the result
 * through {@linkcode GuestMemory}, which checks, or use
 * {@linkcode translateRange}.
 *
 * @param mem guest RAM
 * @param cr3 the vCPU's CR3
 * @param vaddr guest-virtual address
 * @returns guest-physical address, or -1
 */
export function translate(mem: GuestMemory, cr3: number, vaddr: number): number {
  return walk(mem, cr3, vaddr);
}

/**
 * Checks or visits `[vaddr, vaddr + len)` page by page (each page split at
 * its own mapping's size), merging physically contiguous pages; with
 * `visit === null` only checks. Returns false on the first failure.
 */
function walkRange(
  mem: GuestMemory,
  cr3: number,
  vaddr: number,
  len: number,
  visit: ((gpa: number, len: number) => void) | null,
): boolean {
  let runStart = -1;
  let runLen = 0;
  let va = vaddr;
  const end = vaddr + len;
  while (va < end) {
    const gpa = walk(mem, cr3, va);
    if (gpa < 0) return false;
    const pieceLen = Math.min(walked.pageSize - (va % walked.pageSize), end - va);
    if (!mem.contains(gpa, pieceLen)) return false;
    if (runStart >= 0 && runStart + runLen === gpa) {
      runLen += pieceLen;
    } else {
      if (runStart >= 0 && visit !== null) visit(runStart, runLen);
      runStart = gpa;
      runLen = pieceLen;
    }
    va += pieceLen;
  }
  if (runStart >= 0 && visit !== null) visit(runStart, runLen);
  return true;
}

/**
 * Translates the guest-virtual range `[vaddr, vaddr + len)` and calls
 * `visit(gpa, len)` for each physically contiguous piece, in order. Pages are
 * split at the size of their own mapping (4 KiB, 2 MiB or 1 GiB) and
 * neighbouring pages that are also physically adjacent are merged into one
 * piece. Every piece lies wholly inside guest RAM.
 *
 * All-or-nothing: the whole range is checked first and `visit` is only called
 * once every page is mapped and in RAM, so a failure has no side effects.
 * (Only if another vCPU rewrites the tables between the check and the visit
 * can the second walk fail part-way; then false is returned after some
 * visits, each of them still inside RAM.)
 *
 * `len === 0` succeeds without calling `visit`. A range that is not made of
 * non-negative integers or that ends past the lower canonical half (2^47,
 * which also catches `vaddr + len` overflow) fails.
 *
 * @returns true when every byte was translated (and visited), else false
 */
export function translateRange(
  mem: GuestMemory,
  cr3: number,
  vaddr: number,
  len: number,
  visit: (gpa: number, len: number) => void,
): boolean {
  if (!Number.isSafeInteger(vaddr) || !Number.isSafeInteger(len) || vaddr < 0 || len < 0) {
    return false;
  }
  if (len === 0) return true;
  if (vaddr >= LOWER_HALF_END || len > LOWER_HALF_END - vaddr) return false;
  if (!walkRange(mem, cr3, vaddr, len, null)) return false;
  return walkRange(mem, cr3, vaddr, len, visit);
}
