/**
 * PCI configuration mechanism #1: the guest latches a configuration address
 * at port 0xCF8 and then reads or writes the selected function's registers
 * through 0xCFC–0xCFF. The latched address is this device's state: it lives
 * as long as the vCPU's run loop (not one call of it), so a guest that is
 * interrupted between the two accesses still reads its function. Only bus 0
 * exists; a slot with no function reads as all ones, as on real hardware.
 * Pure: no KVM, no FFI.
 * @module
 */

import type { BusDevice, DeviceResult } from "../bus/bus.ts";
import { RESUME } from "../hypercall/context.ts";

/** Port of the CONFIG_ADDRESS register. */
export const PCI_CONFIG_ADDRESS = 0xcf8;
/** First port of the CONFIG_DATA window (four bytes). */
export const PCI_CONFIG_DATA = 0xcfc;
/** Ports the device answers: 0xCF8–0xCFF. */
export const PCI_CONFIG_PORTS = { start: PCI_CONFIG_ADDRESS, length: 8 } as const;

/** The enable bit of a configuration address. */
const ENABLE = 0x8000_0000;

/** A function's 256-byte configuration space, as a device model exposes it. */
export interface PciFunction {
  /** Reads `size` bytes at register `offset` into `out[at…]`. */
  read(offset: number, size: number, out: Uint8Array, at: number): void;
  /** Writes `size` bytes from `src[at…]` at register `offset`. */
  write(offset: number, size: number, src: Uint8Array, at: number): void;
}

/**
 * The host bridge's configuration ports with the functions of bus 0. One per
 * thread that handles exits, kept for the whole run.
 */
export class PciConfigSpace implements BusDevice {
  /** Bus device name. */
  readonly name = "pci-config";
  /** Functions by `device << 3 | function` on bus 0. */
  readonly #functions: (PciFunction | undefined)[] = new Array(256).fill(undefined);
  #address = 0;

  /** Puts `fn` at bus 0, `device`, `func` (0–31, 0–7). */
  attach(device: number, func: number, fn: PciFunction): void {
    if (!(device >= 0 && device < 32 && func >= 0 && func < 8)) {
      throw new RangeError(`No PCI slot ${device}.${func} on bus 0`);
    }
    this.#functions[device << 3 | func] = fn;
  }

  /** The latched CONFIG_ADDRESS value. */
  get address(): number {
    return this.#address;
  }

  /**
   * An OUT to 0xCF8–0xCFF of `size` bytes from `src[at…]`. A 32-bit write to
   * 0xCF8 latches the address; other sizes there are ignored (legacy
   * mechanism #2 is not offered).
   */
  write(port: number, size: number, src: Uint8Array, at: number): DeviceResult {
    if (port === PCI_CONFIG_ADDRESS) {
      if (size === 4) {
        this.#address = (src[at]! | src[at + 1]! << 8 | src[at + 2]! << 16 | src[at + 3]! << 24) >>>
          0;
      }
      return RESUME;
    }
    if (port < PCI_CONFIG_DATA) return RESUME;
    const fn = this.#selected();
    if (fn !== undefined) fn.write((this.#address & 0xfc) + port - PCI_CONFIG_DATA, size, src, at);
    return RESUME;
  }

  /**
   * An IN from 0xCF8–0xCFF: `n` bytes (size × count) into `out[at…]`. The
   * address register reads back as latched; data reads of an empty slot or a
   * disabled address give all ones.
   */
  read(port: number, size: number, n: number, out: Uint8Array, at: number): DeviceResult {
    if (port === PCI_CONFIG_ADDRESS && size === 4) {
      const a = this.#address;
      out[at] = a & 0xff;
      out[at + 1] = a >>> 8 & 0xff;
      out[at + 2] = a >>> 16 & 0xff;
      out[at + 3] = a >>> 24;
      return RESUME;
    }
    const fn = port >= PCI_CONFIG_DATA ? this.#selected() : undefined;
    if (fn === undefined) out.fill(0xff, at, at + n);
    else fn.read((this.#address & 0xfc) + port - PCI_CONFIG_DATA, n, out, at);
    return RESUME;
  }

  /** The function the latched address selects, if enabled, on bus 0 and present. */
  #selected(): PciFunction | undefined {
    const a = this.#address;
    if ((a & ENABLE) === 0 || (a & 0x00ff_0000) !== 0) return undefined;
    return this.#functions[a >>> 8 & 0xff];
  }
}

/** Bus 0 as dhyve presents it: the virtio-net function (with `--net`) at device 0, function 0. */
export function busZero(net: PciFunction | null): PciConfigSpace {
  const pci = new PciConfigSpace();
  if (net !== null) pci.attach(0, 0, net);
  return pci;
}
