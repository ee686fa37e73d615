/**
 * Split virtqueues (virtio 1.x §2.7) in guest memory, read as untrusted
 * input: every ring and buffer is checked against guest RAM, chains are
 * bounded by the queue size (so a loop ends), indices are range-checked, and
 * a bad queue yields a DEVICE_ERROR code instead of an exception. Nothing is
 * allocated per chain: the caller passes a {@linkcode Chain} made once.
 * Pure: works on any GuestMemory (tests use plain ArrayBuffers).
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import { DEVICE_ERROR, type QueueConfig } from "./net_state.ts";

/** Descriptor flags. */
const DESC_F_NEXT = 1;
const DESC_F_WRITE = 2;
const DESC_F_INDIRECT = 4;
/** Driver-area flag: the driver does not want an interrupt for used buffers. */
const AVAIL_F_NO_INTERRUPT = 1;
/** Largest chain total the device accepts (a 64 KiB frame plus headroom). */
export const MAX_CHAIN_BYTES = 0x1_0000 + 0x1000;

/** Which way a chain's buffers go, seen from the device. */
export type ChainDirection = "device-reads" | "device-writes";

/** One descriptor chain, walked and checked; reused for every chain. */
export class Chain {
  /** Descriptor index of the head (what goes into the used ring). */
  head = 0;
  /** Number of segments. */
  count = 0;
  /** Sum of segment lengths. */
  total = 0;
  /** Guest-physical address of each segment. */
  readonly addrs: Float64Array;
  /** Length of each segment. */
  readonly lens: Uint32Array;
  /** Room for chains up to `maxSegments` long. */
  constructor(maxSegments: number) {
    this.addrs = new Float64Array(maxSegments);
    this.lens = new Uint32Array(maxSegments);
  }
}

/**
 * Checks where the driver put a queue's three areas: inside RAM, aligned as
 * §2.7 requires, size a power of two up to `maxSize`. Returns 0 or a DEVICE_ERROR.
 */
export function checkQueuePlacement(mem: GuestMemory, q: QueueConfig, maxSize: number): number {
  const n = q.size;
  if (n < 1 || n > maxSize || (n & (n - 1)) !== 0) return DEVICE_ERROR.BAD_QUEUE_SIZE;
  if (q.desc % 16 !== 0 || !mem.contains(q.desc, 16 * n)) return DEVICE_ERROR.RING_OUTSIDE_RAM;
  if (q.avail % 2 !== 0 || !mem.contains(q.avail, 6 + 2 * n)) return DEVICE_ERROR.RING_OUTSIDE_RAM;
  if (q.used % 4 !== 0 || !mem.contains(q.used, 6 + 8 * n)) return DEVICE_ERROR.RING_OUTSIDE_RAM;
  return 0;
}

/**
 * The device side of one split virtqueue. Call {@linkcode SplitQueue.attach}
 * with a placement that {@linkcode checkQueuePlacement} accepted.
 */
export class SplitQueue {
  readonly #mem: GuestMemory;
  #size = 0;
  #desc = 0;
  #avail = 0;
  #used = 0;
  /** Next avail-ring slot the device will take (free-running u16). */
  lastAvail = 0;
  /** Next used-ring slot the device will fill (free-running u16). */
  usedIdx = 0;

  /** A queue over `mem`; detached until {@linkcode SplitQueue.attach}. */
  constructor(mem: GuestMemory) {
    this.#mem = mem;
  }

  /** True once attached. */
  get attached(): boolean {
    return this.#size !== 0;
  }

  /** Starts serving a (checked) placement from index 0, as after a reset. */
  attach(q: QueueConfig): void {
    this.#size = q.size;
    this.#desc = q.desc;
    this.#avail = q.avail;
    this.#used = q.used;
    this.lastAvail = 0;
    this.usedIdx = 0;
  }

  /** Stops serving (device reset or error). */
  detach(): void {
    this.#size = 0;
  }

  /**
   * Chains the driver has made available and the device has not taken:
   * 0…size, or -DEVICE_ERROR.AVAIL_INDEX when the driver's index is further
   * ahead than the queue can hold.
   */
  pending(): number {
    const idx = this.#mem.readU16(this.#avail + 2);
    const n = (idx - this.lastAvail) & 0xffff;
    return n > this.#size ? -DEVICE_ERROR.AVAIL_INDEX : n;
  }

  /**
   * Walks the next available chain into `chain` without taking it: each
   * descriptor index below the size, at most `size` descriptors (a loop
   * ends there), every buffer non-empty and inside RAM, all in `direction`,
   * no indirect tables. Returns 0, or a DEVICE_ERROR code. Call only when
   * {@linkcode SplitQueue.pending} is positive.
   */
  peek(chain: Chain, direction: ChainDirection): number {
    const mem = this.#mem;
    const size = this.#size;
    const slot = this.lastAvail & (size - 1);
    let index = mem.readU16(this.#avail + 4 + 2 * slot);
    if (index >= size) return DEVICE_ERROR.DESC_INDEX;
    chain.head = index;
    chain.count = 0;
    chain.total = 0;
    const wantWrite = direction === "device-writes";
    const limit = Math.min(size, chain.lens.length);
    for (;;) {
      if (chain.count >= limit) return DEVICE_ERROR.CHAIN_TOO_LONG;
      const d = this.#desc + 16 * index;
      const addr = mem.readU64(d);
      const len = mem.readU32(d + 8);
      const flags = mem.readU16(d + 12);
      if ((flags & DESC_F_INDIRECT) !== 0) return DEVICE_ERROR.DESC_INDIRECT;
      if (((flags & DESC_F_WRITE) !== 0) !== wantWrite) return DEVICE_ERROR.DESC_DIRECTION;
      if (len === 0) return DEVICE_ERROR.DESC_LENGTH;
      if (!mem.contains(addr, len)) return DEVICE_ERROR.DESC_OUTSIDE_RAM;
      chain.total += len;
      if (chain.total > MAX_CHAIN_BYTES) return DEVICE_ERROR.DESC_LENGTH;
      chain.addrs[chain.count] = addr;
      chain.lens[chain.count] = len;
      chain.count++;
      if ((flags & DESC_F_NEXT) === 0) return 0;
      index = mem.readU16(d + 14);
      if (index >= size) return DEVICE_ERROR.DESC_INDEX;
    }
  }

  /** Takes the chain last peeked (the device now owns it). */
  take(): void {
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
  }

  /** Returns chain `head` to the driver with `len` bytes written, then publishes the index. */
  pushUsed(head: number, len: number): void {
    const slot = this.usedIdx & (this.#size - 1);
    this.#mem.writeU32(this.#used + 4 + 8 * slot, head);
    this.#mem.writeU32(this.#used + 8 + 8 * slot, len);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // The element is written before the index that publishes it (x86 keeps store order).
    this.#mem.writeU16(this.#used + 2, this.usedIdx);
  }

  /** The driver wants an interrupt for used buffers (it did not set VIRTQ_AVAIL_F_NO_INTERRUPT). */
  wantsInterrupt(): boolean {
    return (this.#mem.readU16(this.#avail) & AVAIL_F_NO_INTERRUPT) === 0;
  }
}
