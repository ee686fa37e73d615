/**
 * The IOAPIC's registers, for a VM whose interrupt controller is split
 * (`src/machine/irqchip.ts`): KVM keeps the LAPICs and dhyve answers the
 * IOAPIC's MMIO window at 0xFEC00000. Current Hermit kernels program it at
 * boot (they read its version and mask or route all 24 pins); no device of
 * such a run raises a pin, so this is its register file only, answering as
 * KVM's in-kernel IOAPIC does (`arch/x86/kvm/ioapic.c`): version 0x11 with 24
 * pins, ID 0, every pin masked at reset, the read-only status bits clear,
 * and all ones from a register that does not exist.
 *
 * One IOAPIC per VM: the state lives in a SharedArrayBuffer that every vCPU
 * thread's device wraps (SMP Workers included). Pure: no KVM, no FFI.
 * @module
 */

import type { BusDevice, DeviceResult } from "../bus/bus.ts";
import { RESUME } from "../hypercall/context.ts";

/** The IOAPIC's MMIO window (KVM's `IOAPIC_DEFAULT_BASE_ADDRESS`, `IOAPIC_MEM_LENGTH`). */
export const IOAPIC_MMIO = { start: 0xfec0_0000, length: 0x100 } as const;

/** Its pins (redirection entries); also the routes a split irqchip reserves for it. */
export const IOAPIC_PINS = 24;

/** The version register: version 0x11, highest entry 23. */
export const IOAPIC_VERSION = ((IOAPIC_PINS - 1) << 16) | 0x11;

/** Offsets in the window: the register select and the data window. */
const SELECT = 0x00;
const WINDOW = 0x10;

/** Indirect registers. */
const REG_ID = 0x00;
const REG_VERSION = 0x01;
const REG_ARBITRATION = 0x02;
const REG_TABLE = 0x10;

/** Low dword of a redirection entry: the mask bit, and the bits only the IOAPIC sets. */
const MASKED = 1 << 16;
const READ_ONLY_LOW = (1 << 12) | (1 << 14); // delivery status, remote IRR

/** Words of the shared state: the select register, the ID register, two per pin. */
const WORD = { SELECT: 0, ID: 1, TABLE: 2 } as const;
const WORDS = WORD.TABLE + 2 * IOAPIC_PINS;

/** A fresh IOAPIC's state (every pin masked), to share among the vCPU threads. */
export function newIoapicState(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(WORDS * 4);
  const words = new Int32Array(buffer);
  for (let pin = 0; pin < IOAPIC_PINS; pin++) words[WORD.TABLE + 2 * pin] = MASKED;
  return buffer;
}

/** The MMIO window over one VM's IOAPIC state. */
export class Ioapic implements BusDevice {
  /** Bus device name. */
  readonly name = "ioapic";
  readonly #words: Int32Array;

  /** Wraps `state` (from {@linkcode newIoapicState}). */
  constructor(state: SharedArrayBuffer) {
    if (state.byteLength !== WORDS * 4) throw new RangeError("Not an IOAPIC state");
    this.#words = new Int32Array(state);
  }

  /** A read of `size` bytes at `addr` (as KVM: the aligned dword's low bytes). */
  read(addr: number, size: number, n: number, data: Uint8Array, at: number): DeviceResult {
    const offset = addr - IOAPIC_MMIO.start;
    const value = offset === SELECT
      ? Atomics.load(this.#words, WORD.SELECT)
      : offset === WINDOW
      ? this.#readRegister(Atomics.load(this.#words, WORD.SELECT))
      : 0;
    // Little-endian, as the write below reads it; an 8-byte read gets zeroes above the dword.
    for (let i = 0; i < n; i++) data[at + i] = i < 4 && i < size ? (value >>> (8 * i)) & 0xff : 0;
    return RESUME;
  }

  /** A write of `size` bytes at `addr`: the select register or the selected register. */
  write(addr: number, size: number, data: Uint8Array, at: number): DeviceResult {
    const offset = addr - IOAPIC_MMIO.start;
    let value = 0;
    for (let i = Math.min(size, 4) - 1; i >= 0; i--) value = (value << 8) | data[at + i]!;
    if (offset === SELECT) Atomics.store(this.#words, WORD.SELECT, value & 0xff);
    else if (offset === WINDOW) this.#writeRegister(Atomics.load(this.#words, WORD.SELECT), value);
    return RESUME; // the EOI register (0x40) and the rest: nothing to do without pins raised
  }

  #readRegister(register: number): number {
    switch (register) {
      case REG_ID:
      case REG_ARBITRATION:
        return (Atomics.load(this.#words, WORD.ID) & 0xf) << 24;
      case REG_VERSION:
        return IOAPIC_VERSION;
      default: {
        const word = this.#tableWord(register);
        return word === null ? -1 : Atomics.load(this.#words, word);
      }
    }
  }

  #writeRegister(register: number, value: number): void {
    if (register === REG_ID) {
      Atomics.store(this.#words, WORD.ID, (value >>> 24) & 0xf);
      return;
    }
    const word = this.#tableWord(register);
    if (word === null) return; // the version and arbitration registers are read-only
    const low = (register - REG_TABLE) % 2 === 0;
    Atomics.store(this.#words, word, low ? value & ~READ_ONLY_LOW : value);
  }

  /** The state word of a redirection-table register, or null for any other register. */
  #tableWord(register: number): number | null {
    const index = register - REG_TABLE;
    return index >= 0 && index < 2 * IOAPIC_PINS ? WORD.TABLE + index : null;
  }
}
