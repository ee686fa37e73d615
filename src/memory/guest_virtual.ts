/**
 * Guest-virtual memory accesses with the CPU's checks, for instructions
 * executed in userspace: the 4-level walk over the whole 48-bit canonical
 * space (upper half included), present/writable/user bits (CR0.WP honoured),
 * and the page-fault error code and faulting address the CPU would report.
 * A non-canonical address is a #GP. Accesses are all or nothing.
 * Pure: reads page tables through {@linkcode GuestMemory}; no KVM imports.
 * @module
 */

import type { GuestMemory } from "./guest_memory.ts";
import { type AccessMode, PageWalk, walkPage } from "./paging.ts";

/** A failed guest-virtual access, as the CPU would report it. */
export type MemoryFault =
  /** #PF: the faulting address (for CR2) and the error code. */
  | { readonly pageFault: bigint; readonly errorCode: number }
  /** #GP: a non-canonical address. */
  | { readonly gp: true }
  /** The address maps to something other than RAM (a device): not emulated. */
  | { readonly notRam: bigint };

/** Guest-virtual memory as an instruction sees it. */
export interface VirtualMemory {
  /** Reads `into.length` bytes at `address`; null on success. */
  read(address: bigint, into: Uint8Array): MemoryFault | null;
  /** Writes `data` at `address`, all or nothing; null on success. */
  write(address: bigint, data: Uint8Array): MemoryFault | null;
}

/** True when `vaddr` (64-bit) is canonical for 48-bit linear addresses. */
export function isCanonical(vaddr: bigint): boolean {
  const top = vaddr >> 47n;
  return top === 0n || top === 0x1_ffffn;
}

const MASK64 = (1n << 64n) - 1n;
const LINEAR_MASK = 0xffff_ffff_ffffn;

const TLB_SLOTS = 64;
const PAGE = 0x1000;

/**
 * {@linkcode VirtualMemory} over guest RAM through the guest's page tables. Set
 * `cr3`, `user` and `wp` from the vCPU, and call {@linkcode flush} whenever
 * the guest may have run since the last access (it may have changed its page
 * tables). Translations are cached per 4 KiB page in a small TLB; a write by
 * this accessor into a page-table frame it walked flushes the TLB.
 */
export class GuestVirtualMemory implements VirtualMemory {
  readonly #mem: GuestMemory;
  readonly #pieces: number[] = [];
  readonly #walk = new PageWalk();
  #mode: AccessMode = { write: false, user: false, wp: true };
  #modeWrite: AccessMode = { write: true, user: false, wp: true };
  #cr3 = 0;
  /** Virtual page number per slot, or -1. */
  readonly #tag = new Float64Array(TLB_SLOTS).fill(-1);
  /** Guest-physical address of the page per slot. */
  readonly #gpa = new Float64Array(TLB_SLOTS);
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
    return this.#mode.user;
  }
  set user(value: boolean) {
    if (value !== this.#mode.user) this.#setMode(value, this.#mode.wp);
  }
  /** CR0.WP. */
  get wp(): boolean {
    return this.#mode.wp;
  }
  set wp(value: boolean) {
    if (value !== this.#mode.wp) this.#setMode(this.#mode.user, value);
  }

  #setMode(user: boolean, wp: boolean): void {
    this.flush();
    this.#mode = { write: false, user, wp };
    this.#modeWrite = { write: true, user, wp };
  }

  /** Forgets every cached translation. */
  flush(): void {
    this.#tag.fill(-1);
    this.#tables.clear();
  }

  /** Reads `into.length` bytes at `address`. */
  read(address: bigint, into: Uint8Array): MemoryFault | null {
    const gpa = this.#hit(address, into.length, false);
    if (gpa >= 0) {
      this.#mem.readInto(gpa, into);
      return null;
    }
    const fault = this.#map(address, into.length, false);
    if (fault !== null) return fault;
    let done = 0;
    for (let i = 0; i < this.#pieces.length; i += 2) {
      const len = this.#pieces[i + 1]!;
      this.#mem.readInto(this.#pieces[i]!, into.subarray(done, done + len));
      done += len;
    }
    return null;
  }

  /** Writes `data` at `address`, all or nothing. */
  write(address: bigint, data: Uint8Array): MemoryFault | null {
    const n = data.length;
    const gpa = this.#hit(address, n, true);
    if (gpa >= 0) {
      this.#mem.write(gpa, data);
      this.#written(gpa, n);
      return null;
    }
    const fault = this.#map(address, n, true);
    if (fault !== null) return fault;
    let done = 0;
    for (let i = 0; i < this.#pieces.length; i += 2) {
      const at = this.#pieces[i]!;
      const len = this.#pieces[i + 1]!;
      this.#mem.write(at, data.subarray(done, done + len));
      this.#written(at, len);
      done += len;
    }
    return null;
  }

  /**
   * Checks that `len` bytes at `address` could be read (or written) without
   * touching them: the fault the access would raise, or null.
   */
  probe(address: bigint, len: number, write: boolean): MemoryFault | null {
    return this.#hit(address, len, write) >= 0 ? null : this.#map(address, len, write);
  }

  /** The guest-physical address for an access within one cached page, or -1. */
  #hit(address: bigint, len: number, write: boolean): number {
    const page = Number(address >> 12n);
    const slot = page % TLB_SLOTS;
    if (this.#tag[slot] !== page || (write && this.#writable[slot] === 0)) return -1;
    const inPage = Number(address & 0xfffn);
    if (inPage + len > PAGE) return -1;
    return this.#gpa[slot]! + inPage;
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
  #map(address: bigint, len: number, write: boolean): MemoryFault | null {
    this.#pieces.length = 0;
    const last = (address + BigInt(Math.max(len, 1) - 1)) & MASK64;
    if (!isCanonical(address) || !isCanonical(last)) return { gp: true };
    const mode = write ? this.#modeWrite : this.#mode;
    const walk = this.#walk;
    let va = address;
    let left = len;
    while (left > 0) {
      const linear = Number(va & LINEAR_MASK);
      if (!walkPage(this.#mem, this.#cr3, linear, mode, walk, this.#tables)) {
        return { pageFault: va, errorCode: walk.errorCode };
      }
      const n = Math.min(walk.pageSize - (linear % walk.pageSize), left);
      if (!this.#mem.contains(walk.gpa, n)) return { notRam: va };
      this.#pieces.push(walk.gpa, n);
      const pageStart = walk.gpa - (linear % PAGE);
      if (this.#mem.contains(pageStart, PAGE)) {
        const page = Number(va >> 12n);
        const slot = page % TLB_SLOTS;
        this.#tag[slot] = page;
        this.#gpa[slot] = pageStart;
        this.#writable[slot] = write ? 1 : 0;
      }
      va = (va + BigInt(n)) & MASK64;
      left -= n;
    }
    return null;
  }
}
