/**
 * The virtio-net device's state, shared by every thread that touches it: the
 * vCPUs (register reads and writes, from any vCPU) and the net Worker (the
 * data path). It lives in one SharedArrayBuffer of Int32 words; each word is
 * read and written with Atomics, and changes that span several words (reset,
 * queue set-up, a packet's ring update) hold the lock word. Pure: no FFI.
 * @module
 */

import { ISR, NET_MMIO_BASE, NET_MTU, OFFERED_FEATURES, QUEUE_SIZE, STATUS } from "./layout.ts";

/** Word indices in the shared state. */
export const WORD = {
  /** 0 free, 1 held. */
  LOCK: 0,
  /** Device status byte (STATUS bits). */
  STATUS: 1,
  DEVICE_FEATURE_SELECT: 2,
  DRIVER_FEATURE_SELECT: 3,
  DRIVER_FEATURES_LOW: 4,
  DRIVER_FEATURES_HIGH: 5,
  QUEUE_SELECT: 6,
  /** ISR bits; reading the ISR register clears them. */
  ISR: 7,
  CONFIG_GENERATION: 8,
  PCI_COMMAND: 9,
  BAR0_LOW: 10,
  BAR0_HIGH: 11,
  /** Net status (link up). */
  LINK: 12,
  /** MAC bytes 0–3 and 4–5, little-endian. */
  MAC_LOW: 13,
  MAC_HIGH: 14,
  /** Why the device last entered NEEDS_RESET (a DEVICE_ERROR value), 0 if never. */
  ERROR: 15,
  /** Counts resets and DRIVER_OKs: the net Worker re-reads the queues when it changes. */
  EPOCH: 16,
  /** Set when the VM ends: the net Worker returns. */
  STOP: 17,
  RX_PACKETS: 18,
  TX_PACKETS: 19,
  RX_BYTES: 20,
  TX_BYTES: 21,
  /** Frames the host sent that were lost: no guest buffer fit, or a TAP write failed. */
  DROPPED: 22,
  /** Interrupts raised through the irqfd. */
  INTERRUPTS: 23,
  /** Microseconds the net Worker spent serving the device (its busy time, not its waits). */
  SERVICE_US: 24,
  /** Low word of the features the device offers (the high word is always VERSION_1). */
  OFFERED_LOW: 25,
  /** MTU in the device configuration (the backend's). */
  MTU: 26,
  /**
   * Frames from a stream backend (passt) dropped for their length prefix: longer than the MTU,
   * shorter than an Ethernet header, or a corrupt length (the connection is then closed).
   */
  BAD_LENGTH: 27,
  /** First queue's words; each queue has QUEUE_WORDS. */
  QUEUES: 28,
} as const;

/** Word offsets inside one queue's block. */
export const QWORD = {
  SIZE: 0,
  ENABLE: 1,
  DESC_LOW: 2,
  DESC_HIGH: 3,
  DRIVER_LOW: 4,
  DRIVER_HIGH: 5,
  DEVICE_LOW: 6,
  DEVICE_HIGH: 7,
} as const;

/** Words per queue block. */
export const QUEUE_WORDS = 8;
/** Total words. */
export const STATE_WORDS = WORD.QUEUES + 2 * QUEUE_WORDS;

/** Why the device stopped with NEEDS_RESET; kept in `WORD.ERROR` for diagnostics and tests. */
export const DEVICE_ERROR = {
  /** The driver wrote a status that skips or undoes a step. */
  BAD_STATUS: 1,
  /** A ring (descriptor table, driver or device area) lies outside guest RAM or is misaligned. */
  RING_OUTSIDE_RAM: 2,
  /** Queue size, address or enable written after the queue was enabled or the driver was ready. */
  QUEUE_CONFIG_LATE: 3,
  /** Queue size not a power of two in 1..256. */
  BAD_QUEUE_SIZE: 4,
  /** A notification for a queue that was never enabled (or does not exist). */
  NOTIFY_NOT_READY: 5,
  /** The driver's avail index ran more than a queue's size ahead. */
  AVAIL_INDEX: 6,
  /** A chain head or `next` index is not below the queue size. */
  DESC_INDEX: 7,
  /** A chain is longer than the queue (a loop) . */
  CHAIN_TOO_LONG: 8,
  /** A descriptor's buffer lies outside guest RAM. */
  DESC_OUTSIDE_RAM: 9,
  /** A descriptor of length zero, or a chain whose total is out of bounds. */
  DESC_LENGTH: 10,
  /** A receive buffer the device may not write, or a transmit buffer it should write. */
  DESC_DIRECTION: 11,
  /** An indirect descriptor (VIRTIO_F_INDIRECT_DESC was not offered). */
  DESC_INDIRECT: 12,
  /** A chain too short for the 12-byte virtio-net header. */
  CHAIN_TOO_SHORT: 13,
} as const;

/** What a backend lets the device offer. */
export interface NetDeviceConfig {
  /** Low feature word to offer (default: {@linkcode OFFERED_FEATURES}, no offloads). */
  offeredLow?: number;
  /** MTU to report (default {@linkcode NET_MTU}). */
  mtu?: number;
}

/** Allocates the shared state of a fresh device with `mac`. */
export function createNetState(mac: Uint8Array, config: NetDeviceConfig = {}): Int32Array {
  const state = new Int32Array(new SharedArrayBuffer(STATE_WORDS * 4));
  state[WORD.OFFERED_LOW] = config.offeredLow ?? OFFERED_FEATURES[0];
  state[WORD.MTU] = config.mtu ?? NET_MTU;
  state[WORD.MAC_LOW] = mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24);
  state[WORD.MAC_HIGH] = mac[4]! | (mac[5]! << 8);
  state[WORD.BAR0_LOW] = NET_MMIO_BASE | 0;
  resetDevice(state);
  return state;
}

/** Word index of queue `q`'s field `field`. */
export function queueWord(q: number, field: number): number {
  return WORD.QUEUES + q * QUEUE_WORDS + field;
}

/** Takes the lock word (short critical sections only). */
export function lock(state: Int32Array): void {
  while (Atomics.compareExchange(state, WORD.LOCK, 0, 1) !== 0) {
    Atomics.wait(state, WORD.LOCK, 1, 1);
  }
}

/** Releases the lock word. */
export function unlock(state: Int32Array): void {
  Atomics.store(state, WORD.LOCK, 0);
  Atomics.notify(state, WORD.LOCK, 1);
}

/** Device reset (status 0 written): everything the driver set up is forgotten; MAC and link stay. */
export function resetDevice(state: Int32Array): void {
  for (
    const w of [
      WORD.STATUS,
      WORD.DEVICE_FEATURE_SELECT,
      WORD.DRIVER_FEATURE_SELECT,
      WORD.DRIVER_FEATURES_LOW,
      WORD.DRIVER_FEATURES_HIGH,
      WORD.QUEUE_SELECT,
      WORD.ISR,
    ]
  ) Atomics.store(state, w, 0);
  for (let q = 0; q < 2; q++) {
    for (let f = 0; f < QUEUE_WORDS; f++) Atomics.store(state, queueWord(q, f), 0);
    Atomics.store(state, queueWord(q, QWORD.SIZE), QUEUE_SIZE);
  }
  Atomics.add(state, WORD.EPOCH, 1);
}

/** The device can move packets: DRIVER_OK set, no error, not failed. */
export function deviceLive(state: Int32Array): boolean {
  const s = Atomics.load(state, WORD.STATUS);
  return (s & (STATUS.DRIVER_OK | STATUS.NEEDS_RESET | STATUS.FAILED)) === STATUS.DRIVER_OK;
}

/**
 * Puts the device into NEEDS_RESET for `reason` (a DEVICE_ERROR): it stops
 * moving packets until the driver resets it, and the driver is told through
 * the configuration-change ISR bit and an interrupt. Returns true when this
 * call changed the state (the caller then raises the interrupt).
 */
export function failDevice(state: Int32Array, reason: number): boolean {
  const before = Atomics.or(state, WORD.STATUS, STATUS.NEEDS_RESET);
  if ((before & STATUS.NEEDS_RESET) !== 0) return false;
  Atomics.store(state, WORD.ERROR, reason);
  Atomics.or(state, WORD.ISR, ISR.CONFIG);
  Atomics.add(state, WORD.CONFIG_GENERATION, 1);
  Atomics.add(state, WORD.EPOCH, 1);
  return true;
}

/** A queue's configuration as numbers, read from the shared state. */
export interface QueueConfig {
  /** Entries. */
  size: number;
  /** The driver enabled it. */
  enabled: boolean;
  /** Descriptor table (guest-physical). */
  desc: number;
  /** Driver (avail) ring. */
  avail: number;
  /** Device (used) ring. */
  used: number;
}

/** Reads queue `q`'s configuration into `into`. */
export function readQueueConfig(state: Int32Array, q: number, into: QueueConfig): QueueConfig {
  const w = (f: number): number => Atomics.load(state, queueWord(q, f)) >>> 0;
  into.size = w(QWORD.SIZE);
  into.enabled = w(QWORD.ENABLE) !== 0;
  into.desc = w(QWORD.DESC_LOW) + w(QWORD.DESC_HIGH) * 0x1_0000_0000;
  into.avail = w(QWORD.DRIVER_LOW) + w(QWORD.DRIVER_HIGH) * 0x1_0000_0000;
  into.used = w(QWORD.DEVICE_LOW) + w(QWORD.DEVICE_HIGH) * 0x1_0000_0000;
  return into;
}
