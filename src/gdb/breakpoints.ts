/**
 * Breakpoint and watchpoint bookkeeping, pure: software breakpoints (an
 * `int3` written over the first byte, the original kept to put back) and the
 * four x86 debug-register slots (DR0-DR3 plus the DR7 bits that arm them).
 * Memory is reached through {@linkcode VirtualMemory}; nothing here talks to
 * KVM.
 * @module
 */

/** Guest-virtual memory as the debugger sees it (translated through the guest's page tables). */
export interface VirtualMemory {
  /** Reads `length` bytes at `addr`, or null when any of them is unmapped. */
  read(addr: number, length: number): Uint8Array | null;
  /** Writes `data` at `addr`; false (and nothing written) when any byte is unmapped. */
  write(addr: number, data: Uint8Array): boolean;
}

/** What a debug-register slot watches. */
export type HardwareKind = "exec" | "write" | "read" | "access";

/** One armed debug-register slot. */
export interface HardwareSlot {
  /** The linear address in DRn. */
  readonly addr: number;
  /** What triggers it. */
  readonly kind: HardwareKind;
  /** Bytes covered: 1 for exec; 1, 2, 4 or 8 for data. */
  readonly length: number;
}

/** The `int3` instruction. */
export const INT3 = 0xcc;

/** Number of x86 address debug registers (DR0-DR3). */
export const HARDWARE_SLOTS = 4;

/** DR7 RW field: what access triggers the slot (read-only does not exist on x86: use access). */
const RW_BITS: Readonly<Record<HardwareKind, number>> = { exec: 0, write: 1, read: 3, access: 3 };
/** DR7 LEN field by length in bytes. */
const LEN_BITS: Readonly<Record<number, number>> = { 1: 0, 2: 1, 4: 3, 8: 2 };
/** DR7 bit 10 reads as one. */
const DR7_RESERVED_ONE = 0x400n;

/** The breakpoints and watchpoints a debugger has set, and how to arm them. */
export class Breakpoints {
  readonly #software = new Map<number, number>();
  readonly #hardware: (HardwareSlot | null)[] = [null, null, null, null];

  /** Addresses of software breakpoints that are in guest memory now. */
  get softwareAddresses(): number[] {
    return [...this.#software.keys()];
  }

  /** The debug-register slots (null = free). */
  get hardwareSlots(): readonly (HardwareSlot | null)[] {
    return this.#hardware;
  }

  /** True when at least one software breakpoint is inserted. */
  get hasSoftware(): boolean {
    return this.#software.size > 0;
  }

  /** True when at least one debug-register slot is armed. */
  get hasHardware(): boolean {
    return this.#hardware.some((s) => s !== null);
  }

  /**
   * Writes `int3` at `addr` and keeps the byte it replaced. Inserting twice
   * is harmless. False when `addr` is not mapped.
   */
  insertSoftware(mem: VirtualMemory, addr: number): boolean {
    if (this.#software.has(addr)) return true;
    const original = mem.read(addr, 1);
    if (original === null) return false;
    if (!mem.write(addr, Uint8Array.of(INT3))) return false;
    this.#software.set(addr, original[0]!);
    return true;
  }

  /** Puts the original byte back. False when no breakpoint is at `addr` or it became unmapped. */
  removeSoftware(mem: VirtualMemory, addr: number): boolean {
    const original = this.#software.get(addr);
    if (original === undefined) return false;
    this.#software.delete(addr);
    return mem.write(addr, Uint8Array.of(original));
  }

  /** Removes every software breakpoint (detach, kill, exit). */
  removeAllSoftware(mem: VirtualMemory): void {
    for (const addr of this.softwareAddresses) this.removeSoftware(mem, addr);
  }

  /**
   * Arms a free debug register. False when all four are in use, or when the
   * length or alignment is one x86 cannot watch (data: 1, 2, 4 or 8 bytes,
   * aligned to the length; exec: length 1 or the instruction length GDB
   * sends, which is ignored).
   */
  insertHardware(kind: HardwareKind, addr: number, length: number): boolean {
    const len = kind === "exec" ? 1 : length;
    if (LEN_BITS[len] === undefined || addr % len !== 0) return false;
    if (this.#find(kind, addr, len) >= 0) return true;
    const free = this.#hardware.indexOf(null);
    if (free < 0) return false;
    this.#hardware[free] = { addr, kind, length: len };
    return true;
  }

  /** Frees the slot that matches. False when none does. */
  removeHardware(kind: HardwareKind, addr: number, length: number): boolean {
    const i = this.#find(kind, addr, kind === "exec" ? 1 : length);
    if (i < 0) return false;
    this.#hardware[i] = null;
    return true;
  }

  /** Frees every slot. */
  removeAllHardware(): void {
    this.#hardware.fill(null);
  }

  /** The exec slot at `addr`, or -1. */
  execSlotAt(addr: number): number {
    return this.#hardware.findIndex((s) => s !== null && s.kind === "exec" && s.addr === addr);
  }

  /** DR0-DR3, DR6 and DR7 for KVM_SET_GUEST_DEBUG; `skipExec` leaves exec slots unarmed. */
  debugRegisters(skipExec = false): bigint[] {
    let dr7 = DR7_RESERVED_ONE;
    const addrs = [0n, 0n, 0n, 0n];
    this.#hardware.forEach((slot, i) => {
      if (slot === null || (skipExec && slot.kind === "exec")) return;
      addrs[i] = BigInt(slot.addr);
      dr7 |= 1n << BigInt(2 * i); // Ln: enabled
      dr7 |= BigInt(RW_BITS[slot.kind]) << BigInt(16 + 4 * i);
      dr7 |= BigInt(LEN_BITS[slot.length]!) << BigInt(18 + 4 * i);
    });
    return [...addrs, 0n, dr7];
  }

  /** The armed slot DR6 says fired (bits B0-B3), or -1. */
  slotFromDr6(dr6: number): number {
    for (let i = 0; i < HARDWARE_SLOTS; i++) {
      if ((dr6 & (1 << i)) !== 0 && this.#hardware[i] !== null) return i;
    }
    return -1;
  }

  #find(kind: HardwareKind, addr: number, length: number): number {
    return this.#hardware.findIndex((s) =>
      s !== null && s.kind === kind && s.addr === addr && s.length === length
    );
  }
}
