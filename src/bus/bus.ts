/**
 * The port-I/O and MMIO buses: address ranges → the device that answers
 * them, the run loop's only dispatch. A device registers its ranges once
 * (each checked: a whole number start, a non-zero length, no overflow past
 * the bus's end, no overlap with another device); the run loop then looks an
 * exit's address up and hands the access to the device, with the data in
 * `kvm_run` itself. Lookups allocate nothing. Pure.
 * @module
 */

import type { HandlerResult } from "../hypercall/context.ts";

/**
 * What a device returns for one access: `RESUME` (0, done), `WOULD_BLOCK`
 * (1, call again before the guest runs on) or a `VmStop` that ends the run.
 * The same convention as hypercall handlers.
 */
export type DeviceResult = HandlerResult;

/** A device on a bus: one handler signature for port I/O and MMIO (as kvmtool's iotraps). */
export interface BusDevice {
  /** Name for messages, e.g. "pci-config". */
  readonly name: string;
  /**
   * An IN or MMIO read at `addr` (absolute) of `size` bytes × count = `n`
   * bytes: fill `data[at … at+n)`.
   */
  read(addr: number, size: number, n: number, data: Uint8Array, at: number): DeviceResult;
  /** An OUT or MMIO write at `addr` (absolute) of `size` bytes from `data[at…]`. */
  write(addr: number, size: number, data: Uint8Array, at: number): DeviceResult;
}

/** A range that cannot be registered. */
export class BusError extends RangeError {
  /** Error name. */
  override name = "BusError";
}

/** Size of the x86 I/O port space. */
export const PORT_SPACE_END = 0x1_0000;
/** MMIO addresses stay below 2^52 (x86-64 physical addresses; exact as numbers). */
export const MMIO_SPACE_END = 2 ** 52;

/** One address space: port I/O or MMIO. */
export class Bus {
  /** "port" or "mmio", for messages. */
  readonly name: string;
  readonly #end: number;
  #starts: number[] = [];
  #ends: number[] = [];
  #devices: BusDevice[] = [];

  /** An empty bus whose addresses run from 0 to `end` (exclusive). */
  constructor(name: string, end: number) {
    this.name = name;
    this.#end = end;
  }

  /**
   * Routes `[start, start + length)` to `device`.
   * @throws {BusError} for an empty or overflowing range, or one that
   *   overlaps a range already registered.
   */
  register(start: number, length: number, device: BusDevice): void {
    const what = `${device.name} at ${this.name} 0x${start.toString(16)}+0x${length.toString(16)}`;
    if (!Number.isSafeInteger(start) || start < 0) throw new BusError(`${what}: bad start`);
    if (!Number.isSafeInteger(length) || length <= 0) {
      throw new BusError(`${what}: the length must be at least 1`);
    }
    const end = start + length;
    if (end > this.#end) throw new BusError(`${what}: runs past the end of the ${this.name} space`);
    for (let i = 0; i < this.#starts.length; i++) {
      if (start < this.#ends[i]! && this.#starts[i]! < end) {
        throw new BusError(`${what}: overlaps ${this.#devices[i]!.name}`);
      }
    }
    let i = this.#starts.findIndex((s) => s > start);
    if (i < 0) i = this.#starts.length;
    this.#starts.splice(i, 0, start);
    this.#ends.splice(i, 0, end);
    this.#devices.splice(i, 0, device);
  }

  /** The device that answers `addr`, or null. A few ranges: a scan is fastest. */
  find(addr: number): BusDevice | null {
    const starts = this.#starts;
    for (let i = 0; i < starts.length; i++) {
      if (addr < starts[i]!) return null;
      if (addr < this.#ends[i]!) return this.#devices[i]!;
    }
    return null;
  }

  /** The registered ranges, in address order (for diagnostics and tests). */
  ranges(): { start: number; end: number; device: string }[] {
    return this.#starts.map((start, i) => ({
      start,
      end: this.#ends[i]!,
      device: this.#devices[i]!.name,
    }));
  }
}
