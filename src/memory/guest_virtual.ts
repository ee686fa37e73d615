/**
 * Guest-virtual memory accesses with the CPU's checks, for instructions
 * executed in userspace: the 4-level walk over the whole 48-bit canonical
 * space (upper half included), present/writable/user bits (CR0.WP honoured),
 * and the page-fault error code and faulting address the CPU would report.
 * A non-canonical address is a #GP. Accesses are all or nothing.
 * Pure: reads page tables through {@linkcode GuestMemory}; no KVM imports.
 * @module
 */

import type { SseMemory, SseMemoryFault } from "../emulate/sse.ts";
import type { GuestMemory } from "./guest_memory.ts";

/** #PF error code bits. */
export const PF_ERROR = {
  /** The page was present (a protection violation). */
  PRESENT: 1,
  /** The access was a write. */
  WRITE: 2,
  /** The access came from user mode (CPL 3). */
  USER: 4,
} as const;

const PTE_PRESENT = 0x1;
const PTE_WRITABLE = 0x2;
const PTE_USER = 0x4;
const PTE_HUGE = 0x80;
const TWO_POW_32 = 0x1_0000_0000;
const ADDRESS_HIGH_MASK = 0x000f_ffff;

/** How an access is checked. */
export interface AccessMode {
  /** A write (needs R/W at every level when CR0.WP or user mode). */
  write: boolean;
  /** From user mode (CPL 3: needs U/S at every level). */
  user: boolean;
  /** CR0.WP: supervisor writes honour read-only pages. */
  wp: boolean;
}

/** The result of {@linkcode walkAccess}: a physical address and the page's end, or a fault. */
export type WalkResult =
  | { readonly gpa: number; readonly pageSize: number }
  | { readonly errorCode: number };

/** True when `vaddr` (64-bit) is canonical for 48-bit linear addresses. */
export function isCanonical(vaddr: bigint): boolean {
  const top = vaddr >> 47n;
  return top === 0n || top === 0x1_ffffn;
}

/**
 * Translates the canonical `vaddr` through the tables at `cr3` for an access
 * of kind `mode`. A table outside guest RAM counts as not present. The
 * frames of the tables read (gpa / 4 KiB) are added to `tables` when given.
 */
export function walkAccess(
  mem: GuestMemory,
  cr3: number,
  vaddr: bigint,
  mode: AccessMode,
  tables?: Set<number>,
): WalkResult {
  const low48 = Number(vaddr & 0xffff_ffff_ffffn);
  let table = (Math.floor(cr3 / TWO_POW_32) & ADDRESS_HIGH_MASK) * TWO_POW_32 +
    ((cr3 & 0xffff_f000) >>> 0);
  let writable = true;
  let user = true;
  let shift = 2 ** 39;
  const baseCode = (mode.write ? PF_ERROR.WRITE : 0) | (mode.user ? PF_ERROR.USER : 0);
  for (let level = 4; level >= 1; level--) {
    const slot = table + (Math.floor(low48 / shift) % 512) * 8;
    if (!mem.contains(slot, 8)) return { errorCode: baseCode };
    tables?.add(Math.floor(table / 0x1000));
    const lo = mem.readU32(slot);
    const hi = mem.readU32(slot + 4);
    if ((lo & PTE_PRESENT) === 0) return { errorCode: baseCode };
    writable &&= (lo & PTE_WRITABLE) !== 0;
    user &&= (lo & PTE_USER) !== 0;
    const frame = (hi & ADDRESS_HIGH_MASK) * TWO_POW_32;
    let gpa = -1;
    let pageSize = 0;
    if (level === 1) {
      pageSize = 0x1000;
      gpa = frame + ((lo & 0xffff_f000) >>> 0) + (low48 % pageSize);
    } else if ((level === 3 || level === 2) && (lo & PTE_HUGE) !== 0) {
      pageSize = shift;
      const lowMask = level === 3 ? 0xc000_0000 : 0xffe0_0000;
      gpa = frame + ((lo & lowMask) >>> 0) + (low48 % pageSize);
    }
    if (gpa >= 0) {
      const denied = (mode.user && !user) || (mode.write && !writable && (mode.user || mode.wp));
      if (denied) return { errorCode: baseCode | PF_ERROR.PRESENT };
      return { gpa, pageSize };
    }
    table = frame + ((lo & 0xffff_f000) >>> 0);
    shift /= 512;
  }
  return { errorCode: baseCode }; // unreachable: level 1 returns
}

const MASK64 = (1n << 64n) - 1n;

const TLB_SLOTS = 64;
const PAGE = 0x1000;

/**
 * {@linkcode SseMemory} over guest RAM through the guest's page tables. Set
 * `cr3`, `user` and `wp` from the vCPU, and call {@linkcode flush} whenever
 * the guest may have run since the last access (it may have changed its page
 * tables). Translations are cached per 4 KiB page in a small TLB; a write by
 * this accessor into a page-table frame it walked flushes the TLB.
 */
export class GuestVirtualMemory implements SseMemory {
  readonly #mem: GuestMemory;
  readonly #pieces: number[] = [];
  #cr3 = 0;
  #user = false;
  #wp = true;
  /** Virtual page number per slot, or -1. */
  readonly #tag = new Float64Array(TLB_SLOTS).fill(-1);
  /** RAM offset (index into `mem.u8`) of the page per slot. */
  readonly #offset = new Float64Array(TLB_SLOTS);
  /** Per slot: 1 when validated for writes too. */
  readonly #writable = new Uint8Array(TLB_SLOTS);
  /** Page-table frames (gpa / 4 KiB) read by the cached walks. */
  readonly #tables = new Set<number>();

  /** Accesses `mem`. */
  constructor(mem: GuestMemory) {
    this.#mem = mem;
  }

  /** The vCPU's CR3. */
  get cr3(): number {
    return this.#cr3;
  }
  set cr3(value: number) {
    if (value !== this.#cr3) this.flush();
    this.#cr3 = value;
  }
  /** CPL 3. */
  get user(): boolean {
    return this.#user;
  }
  set user(value: boolean) {
    if (value !== this.#user) this.flush();
    this.#user = value;
  }
  /** CR0.WP. */
  get wp(): boolean {
    return this.#wp;
  }
  set wp(value: boolean) {
    if (value !== this.#wp) this.flush();
    this.#wp = value;
  }

  /** Forgets every cached translation. */
  flush(): void {
    this.#tag.fill(-1);
    this.#tables.clear();
  }

  /** Reads `into.length` bytes at `address`. */
  read(address: bigint, into: Uint8Array): SseMemoryFault | null {
    const n = into.length;
    const at = this.#hit(address, n, false);
    if (at >= 0) {
      const u8 = this.#mem.u8;
      for (let i = 0; i < n; i++) into[i] = u8[at + i]!;
      return null;
    }
    const fault = this.#map(address, n, false);
    if (fault !== null) return fault;
    let done = 0;
    for (let i = 0; i < this.#pieces.length; i += 2) {
      const len = this.#pieces[i + 1]!;
      into.set(this.#mem.bytes(this.#pieces[i]!, len), done);
      done += len;
    }
    return null;
  }

  /** Writes `data` at `address`, all or nothing. */
  write(address: bigint, data: Uint8Array): SseMemoryFault | null {
    const n = data.length;
    const at = this.#hit(address, n, true);
    if (at >= 0) {
      const u8 = this.#mem.u8;
      for (let i = 0; i < n; i++) u8[at + i] = data[i]!;
      this.#written(this.#mem.base + at, n);
      return null;
    }
    const fault = this.#map(address, n, true);
    if (fault !== null) return fault;
    let done = 0;
    for (let i = 0; i < this.#pieces.length; i += 2) {
      const gpa = this.#pieces[i]!;
      const len = this.#pieces[i + 1]!;
      this.#mem.write(gpa, data.subarray(done, done + len));
      this.#written(gpa, len);
      done += len;
    }
    return null;
  }

  /** The RAM offset for an access within one cached page, or -1. */
  #hit(address: bigint, len: number, write: boolean): number {
    const page = Number(address >> 12n);
    const slot = page % TLB_SLOTS;
    if (this.#tag[slot] !== page || (write && this.#writable[slot] === 0)) return -1;
    const inPage = Number(address & 0xfffn);
    if (inPage + len > PAGE) return -1;
    return this.#offset[slot]! + inPage;
  }

  /** Flushes the TLB when `[gpa, gpa + len)` touches a page table a cached walk read. */
  #written(gpa: number, len: number): void {
    if (this.#tables.size === 0) return;
    for (let f = Math.floor(gpa / PAGE); f <= Math.floor((gpa + len - 1) / PAGE); f++) {
      if (this.#tables.has(f)) {
        this.flush();
        return;
      }
    }
  }

  /** Translates every page of the access into `#pieces` (gpa, len pairs), caching pages. */
  #map(address: bigint, len: number, write: boolean): SseMemoryFault | null {
    this.#pieces.length = 0;
    const last = (address + BigInt(Math.max(len, 1) - 1)) & MASK64;
    if (!isCanonical(address) || !isCanonical(last)) return { gp: true };
    const mode = { write, user: this.#user, wp: this.#wp };
    let va = address;
    let left = len;
    while (left > 0) {
      const r = walkAccess(this.#mem, this.#cr3, va, mode, this.#tables);
      if ("errorCode" in r) return { pageFault: va, errorCode: r.errorCode };
      const inPage = r.pageSize - Number(va % BigInt(r.pageSize));
      const n = Math.min(inPage, left);
      if (!this.#mem.contains(r.gpa, n)) return { notRam: va };
      this.#pieces.push(r.gpa, n);
      const pageStart = r.gpa - Number(va & 0xfffn);
      if (this.#mem.contains(pageStart, PAGE)) {
        const page = Number(va >> 12n);
        const slot = page % TLB_SLOTS;
        this.#tag[slot] = page;
        this.#offset[slot] = pageStart - this.#mem.base;
        this.#writable[slot] = write ? 1 : 0;
      }
      va = (va + BigInt(n)) & MASK64;
      left -= n;
    }
    return null;
  }
}
