/**
 * Bounds-checked access to guest physical memory.
 *
 * Owns the one rule of guest memory access: every read or write names a range
 * `[addr, addr + len)` that is checked, with overflow, against the guest's RAM
 * before any byte moves. Pure: works on any ArrayBuffer (a plain buffer in
 * tests) or on a {@linkcode RamSource} that views host memory piece by piece
 * (the mmap'd region in production). Must not import KVM or FFI code.
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
 * Guest RAM on host memory is viewed in windows of 2 × this many bytes, one
 * starting every this many bytes, made on first use; so any range up to this
 * long lies in one window. Why not one view of all of RAM: V8 counts every
 * ArrayBuffer's length as external memory, and a view of more than ~64 MiB
 * makes it collect garbage at once (two young-generation collections at 64
 * MiB, a mark-compact at 4 GiB: 0.6–1.6 ms of a run's start), while a run
 * touches only a few windows: the kernel, the boot state, its buffers.
 */
export const WINDOW_STRIDE = 0x20_0000;

/** Guest RAM that lives outside the JavaScript heap, viewed piece by piece. */
export interface RamSource {
  /** Size of guest RAM in bytes. */
  readonly size: number;
  /** An ArrayBuffer of the `length` bytes at `offset` (valid while RAM is mapped). */
  view(offset: number, length: number): ArrayBuffer;
}

/** A view of guest RAM that holds a checked range (see {@linkcode GuestMemory.span}). */
export interface GuestSpan {
  /** The bytes. */
  readonly u8: Uint8Array;
  /** The same bytes as a DataView. */
  readonly view: DataView;
  /** Offset in guest RAM (gpa − base) of `u8[0]`. */
  readonly offset: number;
}

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
  readonly #buffer: ArrayBuffer | SharedArrayBuffer | null;
  readonly #source: RamSource | null;
  /** Window k views RAM offsets [k × WINDOW_STRIDE, (k + 2) × WINDOW_STRIDE), cut at `size`. */
  readonly #windows: (GuestSpan | undefined)[];
  /** Every buffer a span of this memory views → the RAM offset of its first byte. */
  readonly #bufferOffsets = new WeakMap<ArrayBufferLike, number>();
  /** A view of all of RAM, made once a range longer than a window is asked for. */
  #all: GuestSpan | undefined;

  /**
   * Wraps guest RAM starting at guest-physical `base`: a buffer (tests, or
   * any RAM that is already a buffer), or a {@linkcode RamSource} whose
   * windows are made on first use.
   */
  constructor(ram: ArrayBuffer | SharedArrayBuffer | RamSource, base = 0) {
    if (!Number.isSafeInteger(base) || base < 0) {
      throw new RangeError(`Invalid guest memory base: ${base}`);
    }
    this.base = base;
    const isBuffer = ram instanceof ArrayBuffer ||
      (typeof SharedArrayBuffer !== "undefined" && ram instanceof SharedArrayBuffer);
    this.#buffer = isBuffer ? ram : null;
    this.#source = isBuffer ? null : ram as RamSource;
    this.size = isBuffer ? ram.byteLength : (ram as RamSource).size;
    if (!Number.isSafeInteger(this.size) || this.size < 0) {
      throw new RangeError(`Invalid guest memory size: ${this.size}`);
    }
    if (this.#buffer !== null) this.#bufferOffsets.set(this.#buffer, 0);
    this.#windows = new Array(Math.ceil(this.size / WINDOW_STRIDE));
  }

  /**
   * A byte view of all of guest RAM (index = gpa − base), made on first use.
   * On host RAM V8 then counts all of RAM as external memory (see
   * {@linkcode WINDOW_STRIDE}): dhyve's own paths use {@linkcode span} and the
   * methods below; this is for tests and tools.
   */
  get u8(): Uint8Array {
    return this.#whole().u8;
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
   * Checks `[addr, addr + len)` and returns its offset in guest RAM (gpa − base).
   * @throws {GuestMemoryError} if the range is not wholly inside guest RAM.
   */
  offset(addr: number, len: number): number {
    if (!this.contains(addr, len)) throw new GuestMemoryError(addr, len);
    return addr - this.base;
  }

  /**
   * A view that holds the checked range `[addr, addr + len)`: the bytes are
   * at `u8[addr − base − offset]` onwards. Allocates nothing: a range up to
   * {@linkcode WINDOW_STRIDE} bytes lies in a window, a longer one in the view
   * of all of RAM (made on the first such range; V8 then counts all of RAM).
   * @throws {GuestMemoryError} if the range is not wholly inside guest RAM.
   */
  span(addr: number, len: number): GuestSpan {
    return this.#spanOf(this.offset(addr, len), len);
  }

  /** Where `addr` is in `span.u8` (for an `addr` the span was made to hold: no check again). */
  indexIn(span: GuestSpan, addr: number): number {
    return addr - this.base - span.offset;
  }

  /** Reads an unsigned byte. */
  readU8(addr: number): number {
    const o = this.offset(addr, 1);
    const w = this.#window(o);
    return w.view.getUint8(o - w.offset);
  }
  /** Reads a little-endian u16. */
  readU16(addr: number): number {
    const o = this.offset(addr, 2);
    const w = this.#window(o);
    return w.view.getUint16(o - w.offset, true);
  }
  /** Reads a little-endian u32. */
  readU32(addr: number): number {
    const o = this.offset(addr, 4);
    const w = this.#window(o);
    return w.view.getUint32(o - w.offset, true);
  }
  /** Reads a little-endian i32. */
  readI32(addr: number): number {
    const o = this.offset(addr, 4);
    const w = this.#window(o);
    return w.view.getInt32(o - w.offset, true);
  }
  /** Reads a little-endian u64 as a number (exact below 2^53). */
  readU64(addr: number): number {
    const o = this.offset(addr, 8);
    const w = this.#window(o);
    const i = o - w.offset;
    return w.view.getUint32(i, true) + w.view.getUint32(i + 4, true) * TWO_POW_32;
  }
  /** Reads a little-endian i64 as a number (exact within ±2^53). */
  readI64(addr: number): number {
    const o = this.offset(addr, 8);
    const w = this.#window(o);
    const i = o - w.offset;
    return w.view.getUint32(i, true) + w.view.getInt32(i + 4, true) * TWO_POW_32;
  }
  /** Reads a little-endian u64 exactly, as a bigint (not for hot paths). */
  readU64Big(addr: number): bigint {
    const o = this.offset(addr, 8);
    const w = this.#window(o);
    return w.view.getBigUint64(o - w.offset, true);
  }

  /** Writes a byte. */
  writeU8(addr: number, value: number): void {
    const o = this.offset(addr, 1);
    const w = this.#window(o);
    w.view.setUint8(o - w.offset, value);
  }
  /** Writes a little-endian u16. */
  writeU16(addr: number, value: number): void {
    const o = this.offset(addr, 2);
    const w = this.#window(o);
    w.view.setUint16(o - w.offset, value, true);
  }
  /** Writes a little-endian u32. */
  writeU32(addr: number, value: number): void {
    const o = this.offset(addr, 4);
    const w = this.#window(o);
    w.view.setUint32(o - w.offset, value >>> 0, true);
  }
  /** Writes a little-endian i32. */
  writeI32(addr: number, value: number): void {
    const o = this.offset(addr, 4);
    const w = this.#window(o);
    w.view.setInt32(o - w.offset, value | 0, true);
  }
  /**
   * Writes a little-endian 64-bit value given as a number; negative values
   * are written in two's complement (so it serves u64 and i64 alike).
   */
  writeU64(addr: number, value: number): void {
    const o = this.offset(addr, 8);
    const w = this.#window(o);
    const i = o - w.offset;
    const hi = Math.floor(value / TWO_POW_32);
    w.view.setUint32(i, value - hi * TWO_POW_32, true);
    w.view.setUint32(i + 4, hi >>> 0, true);
  }
  /** Writes a little-endian 64-bit value given as a bigint. */
  writeU64Big(addr: number, value: bigint): void {
    const o = this.offset(addr, 8);
    const w = this.#window(o);
    w.view.setBigUint64(o - w.offset, BigInt.asUintN(64, value), true);
  }

  /**
   * Returns a view (not a copy) of `[addr, addr + len)`. Allocates a view, so
   * keep it off the per-exit hot path where {@linkcode span} or a reused
   * buffer will do.
   */
  bytes(addr: number, len: number): Uint8Array {
    const s = this.span(addr, len);
    const i = this.indexIn(s, addr);
    return s.u8.subarray(i, i + len);
  }

  /**
   * Copies `[addr, addr + into.length)` into `into` (no view is made, so it
   * allocates nothing up to {@linkcode WINDOW_STRIDE} bytes).
   */
  readInto(addr: number, into: Uint8Array): void {
    const n = into.length;
    const o = this.offset(addr, n);
    if (n > WINDOW_STRIDE) {
      for (let done = 0; done < n; done += WINDOW_STRIDE) {
        this.readInto(addr + done, into.subarray(done, Math.min(n, done + WINDOW_STRIDE)));
      }
      return;
    }
    const w = this.#window(o);
    const u8 = w.u8;
    const i = o - w.offset;
    if (n > LOOP_COPY_MAX) {
      into.set(u8.subarray(i, i + n));
      return;
    }
    for (let k = 0; k < n; k++) into[k] = u8[i + k]!;
  }

  /**
   * The guest-physical address of the first byte of `view`, a view of guest
   * RAM (from {@linkcode bytes}, {@linkcode span} or {@linkcode u8}).
   * @throws {TypeError} if `view` is not a view of guest RAM.
   */
  addressOf(view: Uint8Array): number {
    const start = this.#bufferOffsets.get(view.buffer);
    const offset = start === undefined ? -1 : start + view.byteOffset;
    if (offset < 0 || offset + view.length > this.size) {
      throw new TypeError("Not a view of guest memory");
    }
    return this.base + offset;
  }

  /** Copies `data` into guest memory at `addr`. */
  write(addr: number, data: Uint8Array): void {
    const n = data.length;
    const o = this.offset(addr, n);
    // From guest RAM itself (through any view of it): copy out first, the ranges may overlap.
    if (this.#bufferOffsets.has(data.buffer)) data = data.slice();
    if (n > WINDOW_STRIDE) {
      for (let done = 0; done < n; done += WINDOW_STRIDE) {
        this.write(addr + done, data.subarray(done, Math.min(n, done + WINDOW_STRIDE)));
      }
      return;
    }
    const w = this.#window(o);
    const u8 = w.u8;
    const i = o - w.offset;
    if (n > LOOP_COPY_MAX) {
      u8.set(data, i);
      return;
    }
    for (let k = 0; k < n; k++) u8[i + k] = data[k]!;
  }

  /** Fills `[addr, addr + len)` with `value` (default 0). */
  fill(addr: number, len: number, value = 0): void {
    const o = this.offset(addr, len);
    for (let done = 0; done < len; done += WINDOW_STRIDE) {
      const n = Math.min(len - done, WINDOW_STRIDE);
      const w = this.#window(o + done);
      const i = o + done - w.offset;
      w.u8.fill(value, i, i + n);
    }
  }

  /**
   * Length of the NUL-terminated string at `addr`, not counting the NUL, or
   * -1 if no NUL occurs within `max` bytes or before the end of guest RAM.
   * @throws {GuestMemoryError} if `addr` itself is outside guest RAM.
   */
  cStringLength(addr: number, max: number): number {
    const start = this.offset(addr, 1);
    const limit = Math.min(this.size, start + Math.max(0, max));
    for (let at = start; at < limit; at += WINDOW_STRIDE) {
      const n = Math.min(limit - at, WINDOW_STRIDE);
      const w = this.#window(at);
      const i = at - w.offset;
      const found = w.u8.subarray(i, i + n).indexOf(0);
      if (found >= 0) return at - start + found;
    }
    return -1;
  }

  /** The window that holds RAM offset `o` and the WINDOW_STRIDE bytes after it (as RAM allows). */
  #window(o: number): GuestSpan {
    const k = Math.floor(o / WINDOW_STRIDE);
    return this.#windows[k] ?? this.#openWindow(k);
  }

  #openWindow(k: number): GuestSpan {
    const offset = k * WINDOW_STRIDE;
    const span = this.#makeSpan(offset, Math.min(this.size - offset, 2 * WINDOW_STRIDE));
    this.#windows[k] = span;
    return span;
  }

  /** A span holding RAM offsets [o, o + len): a window, or all of RAM when longer. */
  #spanOf(o: number, len: number): GuestSpan {
    return len <= WINDOW_STRIDE ? this.#window(o) : this.#whole();
  }

  #whole(): GuestSpan {
    return this.#all ??= this.size <= WINDOW_STRIDE
      ? this.#window(0)
      : this.#makeSpan(0, this.size);
  }

  #makeSpan(offset: number, length: number): GuestSpan {
    if (this.#buffer !== null) {
      // A buffer in the JS heap is one allocation already: windows are views into it.
      return {
        u8: new Uint8Array(this.#buffer, offset, length),
        view: new DataView(this.#buffer, offset, length),
        offset,
      };
    }
    const buffer = this.#source!.view(offset, length);
    this.#bufferOffsets.set(buffer, offset);
    return { u8: new Uint8Array(buffer), view: new DataView(buffer), offset };
  }
}
