/**
 * Bounds-checked access to guest physical memory.
 *
 * Owns the one rule of guest memory access: every read or write names a range
 * `[addr, addr + len)` that is checked, with overflow, against the guest's RAM
 * before any byte moves. Pure: works on any ArrayBuffer (an mmap'd region in
 * production, a plain buffer in tests). Must not import KVM or FFI code.
 * @module
 */

import { hex } from "../hex.ts";

/** Raised when a guest-physical range lies (partly) outside guest RAM. */
export class GuestMemoryError extends RangeError {
  /** First guest-physical address of the rejected range. */
  readonly addr: number;
  /** Length in bytes of the rejected range. */
  readonly len: number;

  /** Builds the error for the range `[addr, addr + len)`. */
  constructor(addr: number, len: number, message?: string) {
    super(
      message ??
        `Guest range ${hex(addr)}+${hex(len)} lies outside guest memory`,
    );
    this.addr = addr;
    this.len = len;
  }
  /** Error name. */
  override name = "GuestMemoryError";
}

const TWO_POW_32 = 0x1_0000_0000;

/** Up to this many bytes a copy loop beats `set()` (the small copies of emulated instructions). */
const LOOP_COPY_MAX = 64;

/**
 * Guest RAM: `size` bytes visible to the guest at physical address `base`.
 *
 * Addresses are JavaScript numbers (exact up to 2^53, far above any guest
 * address). 64-bit values are read and written as numbers through two 32-bit
 * halves, so no BigInt is created on the hot path; values above 2^53 lose
 * precision and must be read with {@linkcode GuestMemory.readU64Big}.
 */
export class GuestMemory {
  /** Guest-physical address of the first byte. */
  readonly base: number;
  /** Size of guest RAM in bytes. */
  readonly size: number;
  /** Byte view of all of guest RAM (index = gpa - base). Check before use. */
  readonly u8: Uint8Array;
  readonly #view: DataView;

  /** Wraps `buffer` as guest RAM starting at guest-physical `base`. */
  constructor(buffer: ArrayBuffer | SharedArrayBuffer, base = 0) {
    if (!Number.isSafeInteger(base) || base < 0) {
      throw new RangeError(`Invalid guest memory base: ${base}`);
    }
    this.base = base;
    this.size = buffer.byteLength;
    this.u8 = new Uint8Array(buffer);
    this.#view = new DataView(buffer);
  }

  /** End of guest RAM (exclusive). */
  get end(): number {
    return this.base + this.size;
  }

  /** True when `[addr, addr + len)` lies wholly inside guest RAM. */
  contains(addr: number, len: number): boolean {
    return Number.isSafeInteger(addr) && Number.isSafeInteger(len) &&
      len >= 0 && addr >= this.base && addr - this.base <= this.size - len;
  }

  /**
   * Checks `[addr, addr + len)` and returns its offset in {@linkcode u8}.
   * @throws {GuestMemoryError} if the range is not wholly inside guest RAM.
   */
  offset(addr: number, len: number): number {
    if (!this.contains(addr, len)) throw new GuestMemoryError(addr, len);
    return addr - this.base;
  }

  /** Reads an unsigned byte. */
  readU8(addr: number): number {
    return this.#view.getUint8(this.offset(addr, 1));
  }
  /** Reads a little-endian u16. */
  readU16(addr: number): number {
    return this.#view.getUint16(this.offset(addr, 2), true);
  }
  /** Reads a little-endian u32. */
  readU32(addr: number): number {
    return this.#view.getUint32(this.offset(addr, 4), true);
  }
  /** Reads a little-endian i32. */
  readI32(addr: number): number {
    return this.#view.getInt32(this.offset(addr, 4), true);
  }
  /** Reads a little-endian u64 as a number (exact below 2^53). */
  readU64(addr: number): number {
    const o = this.offset(addr, 8);
    return this.#view.getUint32(o, true) +
      this.#view.getUint32(o + 4, true) * TWO_POW_32;
  }
  /** Reads a little-endian i64 as a number (exact within ±2^53). */
  readI64(addr: number): number {
    const o = this.offset(addr, 8);
    return this.#view.getUint32(o, true) +
      this.#view.getInt32(o + 4, true) * TWO_POW_32;
  }
  /** Reads a little-endian u64 exactly, as a bigint (not for hot paths). */
  readU64Big(addr: number): bigint {
    return this.#view.getBigUint64(this.offset(addr, 8), true);
  }

  /** Writes a byte. */
  writeU8(addr: number, value: number): void {
    this.#view.setUint8(this.offset(addr, 1), value);
  }
  /** Writes a little-endian u16. */
  writeU16(addr: number, value: number): void {
    this.#view.setUint16(this.offset(addr, 2), value, true);
  }
  /** Writes a little-endian u32. */
  writeU32(addr: number, value: number): void {
    this.#view.setUint32(this.offset(addr, 4), value >>> 0, true);
  }
  /** Writes a little-endian i32. */
  writeI32(addr: number, value: number): void {
    this.#view.setInt32(this.offset(addr, 4), value | 0, true);
  }
  /**
   * Writes a little-endian 64-bit value given as a number; negative values
   * are written in two's complement (so it serves u64 and i64 alike).
   */
  writeU64(addr: number, value: number): void {
    const o = this.offset(addr, 8);
    const hi = Math.floor(value / TWO_POW_32);
    this.#view.setUint32(o, value - hi * TWO_POW_32, true);
    this.#view.setUint32(o + 4, hi >>> 0, true);
  }
  /** Writes a little-endian 64-bit value given as a bigint. */
  writeU64Big(addr: number, value: bigint): void {
    this.#view.setBigUint64(this.offset(addr, 8), BigInt.asUintN(64, value), true);
  }

  /**
   * Returns a view (not a copy) of `[addr, addr + len)`. Allocates a view, so
   * keep it off the per-exit hot path where a reused buffer will do.
   */
  bytes(addr: number, len: number): Uint8Array {
    const o = this.offset(addr, len);
    return this.u8.subarray(o, o + len);
  }

  /**
   * Copies `[addr, addr + into.length)` into `into` (no view is made, so it
   * allocates nothing).
   */
  readInto(addr: number, into: Uint8Array): void {
    const o = this.offset(addr, into.length);
    const u8 = this.u8;
    const n = into.length;
    if (n > LOOP_COPY_MAX) {
      into.set(u8.subarray(o, o + n));
      return;
    }
    for (let i = 0; i < n; i++) into[i] = u8[o + i]!;
  }

  /**
   * The guest-physical address of the first byte of `view`, a view of guest
   * RAM (from {@linkcode bytes} or of {@linkcode u8}'s buffer).
   * @throws {TypeError} if `view` is not a view of guest RAM.
   */
  addressOf(view: Uint8Array): number {
    const offset = view.byteOffset - this.u8.byteOffset;
    if (view.buffer !== this.u8.buffer || offset < 0 || offset + view.length > this.size) {
      throw new TypeError("Not a view of guest memory");
    }
    return this.base + offset;
  }

  /** Copies `data` into guest memory at `addr`. */
  write(addr: number, data: Uint8Array): void {
    const o = this.offset(addr, data.length);
    const n = data.length;
    if (n > LOOP_COPY_MAX || data.buffer === this.u8.buffer) {
      this.u8.set(data, o); // set() also copies overlapping ranges right
      return;
    }
    const u8 = this.u8;
    for (let i = 0; i < n; i++) u8[o + i] = data[i]!;
  }

  /** Fills `[addr, addr + len)` with `value` (default 0). */
  fill(addr: number, len: number, value = 0): void {
    const o = this.offset(addr, len);
    this.u8.fill(value, o, o + len);
  }

  /**
   * Length of the NUL-terminated string at `addr`, not counting the NUL, or
   * -1 if no NUL occurs within `max` bytes or before the end of guest RAM.
   * @throws {GuestMemoryError} if `addr` itself is outside guest RAM.
   */
  cStringLength(addr: number, max: number): number {
    const start = this.offset(addr, 1);
    const limit = Math.min(this.u8.length, start + max);
    return this.u8.subarray(start, limit).indexOf(0);
  }
}
