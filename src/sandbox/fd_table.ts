/**
 * Guest file descriptors: small integers from dhyve's own table, never host
 * fds. Owns numbering (from 3 up, lowest free number first) and the per-guest
 * limit on open files (EMFILE). Pure; like all of `sandbox/`, it never imports
 * KVM, FFI (`src/kvm.ts`, `src/host/libc.ts`) or `src/hypercall/`.
 * @module
 */

import { ERRNO } from "../errno.ts";

/** Default limit on files one guest may hold open at once (as Linux's soft RLIMIT_NOFILE). */
export const DEFAULT_MAX_OPEN_FILES = 1024;

/** The first guest fd the table hands out; 0–2 are the guest's stdio. */
export const FIRST_GUEST_FD = 3;

/** Options of {@linkcode FdTable}. */
export interface FdTableOptions {
  /** Most entries at once (default {@linkcode DEFAULT_MAX_OPEN_FILES}); a positive integer. */
  limit?: number;
  /** The lowest fd handed out (default {@linkcode FIRST_GUEST_FD}); a non-negative integer. */
  first?: number;
}

/**
 * A table from guest fd to `T`.
 *
 * Numbers are reused, lowest free first, as POSIX `open` does (uhyve counts up
 * forever instead): fds stay small and bounded by `first + limit`, so a guest
 * that opens and closes in a loop never runs the numbers out. A stale fd that
 * the guest closed may later name another file, exactly as on Linux.
 */
export class FdTable<T extends object> {
  readonly #first: number;
  readonly #limit: number;
  /** Slot `i` holds fd `first + i`; `undefined` marks a free number. */
  readonly #slots: (T | undefined)[] = [];
  #size = 0;
  /** No free number is below `first + #lowestFree`. */
  #lowestFree = 0;

  /** Makes an empty table. Throws RangeError for a bad `limit` or `first`. */
  constructor(options: FdTableOptions = {}) {
    const { limit = DEFAULT_MAX_OPEN_FILES, first = FIRST_GUEST_FD } = options;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(
        `Cannot create fd table: limit must be a positive integer, got ${limit}`,
      );
    }
    if (!Number.isSafeInteger(first) || first < 0) {
      throw new RangeError(
        `Cannot create fd table: first fd must be a non-negative integer, got ${first}`,
      );
    }
    this.#first = first;
    this.#limit = limit;
  }

  /** The most entries the table holds at once. */
  get limit(): number {
    return this.#limit;
  }

  /** How many fds are in use. */
  get size(): number {
    return this.#size;
  }

  /** Stores `value` under the lowest free fd and returns that fd, or −EMFILE when full. */
  insert(value: T): number {
    if (this.#size >= this.#limit) return -ERRNO.EMFILE;
    let i = this.#lowestFree;
    while (i < this.#slots.length && this.#slots[i] !== undefined) i++;
    if (i === this.#slots.length) this.#slots.push(value);
    else this.#slots[i] = value;
    this.#size++;
    this.#lowestFree = i + 1;
    return this.#first + i;
  }

  /** The value behind `fd`, or `undefined` for a number not in use (or not an fd at all). */
  get(fd: number): T | undefined {
    return this.#slots[fd - this.#first];
  }

  /** Frees `fd` and returns what it held, or `undefined` when it was not in use. */
  remove(fd: number): T | undefined {
    const i = fd - this.#first;
    if (!Number.isInteger(i) || i < 0) return undefined;
    const value = this.#slots[i];
    if (value === undefined) return undefined;
    this.#slots[i] = undefined;
    this.#size--;
    if (i < this.#lowestFree) this.#lowestFree = i;
    while (this.#slots.length > 0 && this.#slots[this.#slots.length - 1] === undefined) {
      this.#slots.pop();
    }
    return value;
  }

  /** A snapshot of every `[fd, value]` in use, lowest fd first (safe to remove while iterating). */
  entries(): [number, T][] {
    const out: [number, T][] = [];
    for (let i = 0; i < this.#slots.length; i++) {
      const value = this.#slots[i];
      if (value !== undefined) out.push([this.#first + i, value]);
    }
    return out;
  }

  /** Frees every fd (the caller closes what they held first). */
  clear(): void {
    this.#slots.length = 0;
    this.#size = 0;
    this.#lowestFree = 0;
  }
}
