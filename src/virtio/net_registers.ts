/**
 * The virtio-net function's registers as the guest reads and writes them,
 * through PCI configuration cycles (0xCF8/0xCFC) or MMIO in BAR 0: the same
 * 256-byte space either way (uhyve's layout). Every thread that handles exits
 * makes its own `NetRegisters` over the one shared state. Status changes
 * follow the virtio 1.x initialisation order; anything else puts the device
 * into NEEDS_RESET. Pure: the side effects (waking the net Worker, raising
 * the interrupt, a notification) are callbacks.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  CAP_TYPE,
  COMMON,
  LINK_UP,
  NET_BAR_SIZE,
  NET_CFG,
  NET_IRQ_LINE,
  NET_MMIO_BASE,
  NET_MMIO_SIZE,
  NO_VECTOR,
  NOTIFY_OFF_MULTIPLIER,
  NUM_QUEUES,
  OFFERED_FEATURES,
  PCI_HEADER,
  PCI_ID,
  QUEUE_SIZE,
  REGION,
  STATUS,
} from "./layout.ts";
import {
  DEVICE_ERROR,
  failDevice,
  lock,
  type QueueConfig,
  queueWord,
  QWORD,
  readQueueConfig,
  resetDevice,
  unlock,
  WORD,
} from "./net_state.ts";
import { checkQueuePlacement } from "./virtqueue.ts";

/** Side effects of register writes. */
export interface NetRegisterEffects {
  /** The device state changed (DRIVER_OK, reset, error): wake the net Worker. */
  wake(): void;
  /** Raise the device's interrupt line (ISR already updated). */
  interrupt(): void;
  /** The driver notified queue `queue` by writing the notify area (when no ioeventfd took it). */
  notify(queue: number): void;
}

/** The constant bytes of the register space: PCI header fields and the capability list. */
function template(): Uint8Array {
  const t = new Uint8Array(256);
  const v = new DataView(t.buffer);
  v.setUint16(PCI_HEADER.VENDOR_ID, PCI_ID.VENDOR, true);
  v.setUint16(PCI_HEADER.DEVICE_ID, PCI_ID.DEVICE, true);
  v.setUint16(PCI_HEADER.STATUS, PCI_ID.STATUS_CAPABILITIES, true);
  t[PCI_HEADER.REVISION] = PCI_ID.REVISION;
  t[PCI_HEADER.CLASS] = PCI_ID.CLASS;
  v.setUint16(PCI_HEADER.SUBSYSTEM_VENDOR_ID, PCI_ID.SUBSYSTEM_VENDOR, true);
  v.setUint16(PCI_HEADER.SUBSYSTEM_ID, PCI_ID.SUBSYSTEM, true);
  t[PCI_HEADER.CAPABILITIES_PTR] = REGION.COMMON_CAP;
  t[PCI_HEADER.INTERRUPT_LINE] = NET_IRQ_LINE;
  t[PCI_HEADER.INTERRUPT_PIN] = PCI_ID.INTERRUPT_PIN;
  const cap = (at: number, next: number, type: number, offset: number, length: number): void => {
    t[at] = 0x09; // vendor-specific capability
    t[at + 1] = next;
    t[at + 2] = type === CAP_TYPE.NOTIFY ? 20 : 16;
    t[at + 3] = type;
    t[at + 4] = 0; // BAR 0
    v.setUint32(at + 8, offset, true);
    v.setUint32(at + 12, length, true);
  };
  cap(REGION.COMMON_CAP, REGION.ISR_CAP, CAP_TYPE.COMMON, REGION.COMMON_CFG, 64);
  cap(REGION.ISR_CAP, REGION.NOTIFY_CAP, CAP_TYPE.ISR, REGION.ISR, 1);
  cap(REGION.NOTIFY_CAP, REGION.DEVICE_CAP, CAP_TYPE.NOTIFY, REGION.NOTIFY, REGION.NOTIFY_SIZE);
  v.setUint32(REGION.NOTIFY_CAP + 16, NOTIFY_OFF_MULTIPLIER, true);
  cap(REGION.DEVICE_CAP, 0, CAP_TYPE.DEVICE, REGION.DEVICE_CFG, REGION.DEVICE_CFG_SIZE);
  const c = REGION.COMMON_CFG;
  v.setUint16(c + COMMON.CONFIG_MSIX_VECTOR, NO_VECTOR, true);
  v.setUint16(c + COMMON.NUM_QUEUES, NUM_QUEUES, true);
  v.setUint16(c + COMMON.QUEUE_MSIX_VECTOR, NO_VECTOR, true);
  return t;
}

const TEMPLATE = template();

/** The register file of the virtio-net function, over the shared device state. */
export class NetRegisters {
  readonly #state: Int32Array;
  readonly #mem: GuestMemory;
  readonly #effects: NetRegisterEffects;
  readonly #bytes = new Uint8Array(256);
  readonly #view = new DataView(this.#bytes.buffer);
  readonly #queue: QueueConfig = { size: 0, enabled: false, desc: 0, avail: 0, used: 0 };

  /** Registers over `state` (see net_state.ts); `mem` is guest RAM, for checking ring placement. */
  constructor(state: Int32Array, mem: GuestMemory, effects: NetRegisterEffects) {
    this.#state = state;
    this.#mem = mem;
    this.#effects = effects;
  }

  /** The shared state (for tests and diagnostics). */
  get state(): Int32Array {
    return this.#state;
  }

  /**
   * Reads `size` bytes at `offset` into `out[at…]`. Offsets past the defined
   * registers read as zero; reading the ISR byte clears it.
   */
  read(offset: number, size: number, out: Uint8Array, at: number): void {
    const s = this.#state;
    const b = this.#bytes;
    const v = this.#view;
    b.set(TEMPLATE);
    v.setUint16(PCI_HEADER.COMMAND, Atomics.load(s, WORD.PCI_COMMAND), true);
    v.setUint32(PCI_HEADER.BAR0, Atomics.load(s, WORD.BAR0_LOW) | PCI_ID.BAR_FLAGS, true);
    v.setUint32(PCI_HEADER.BAR1, Atomics.load(s, WORD.BAR0_HIGH), true);
    const c = REGION.COMMON_CFG;
    const dfs = Atomics.load(s, WORD.DEVICE_FEATURE_SELECT) >>> 0;
    const drs = Atomics.load(s, WORD.DRIVER_FEATURE_SELECT) >>> 0;
    v.setUint32(c + COMMON.DEVICE_FEATURE_SELECT, dfs, true);
    const offered = dfs === 0
      ? Atomics.load(s, WORD.OFFERED_LOW)
      : dfs === 1
      ? OFFERED_FEATURES[1]
      : 0;
    v.setUint32(c + COMMON.DEVICE_FEATURE, offered, true);
    v.setUint32(c + COMMON.DRIVER_FEATURE_SELECT, drs, true);
    v.setUint32(
      c + COMMON.DRIVER_FEATURE,
      drs < 2 ? Atomics.load(s, WORD.DRIVER_FEATURES_LOW + drs) : 0,
      true,
    );
    b[c + COMMON.DEVICE_STATUS] = Atomics.load(s, WORD.STATUS);
    b[c + COMMON.CONFIG_GENERATION] = Atomics.load(s, WORD.CONFIG_GENERATION);
    const q = Atomics.load(s, WORD.QUEUE_SELECT);
    v.setUint16(c + COMMON.QUEUE_SELECT, q, true);
    if (q < NUM_QUEUES) {
      v.setUint16(c + COMMON.QUEUE_SIZE, Atomics.load(s, queueWord(q, QWORD.SIZE)), true);
      v.setUint16(c + COMMON.QUEUE_ENABLE, Atomics.load(s, queueWord(q, QWORD.ENABLE)), true);
      v.setUint16(c + COMMON.QUEUE_NOTIFY_OFF, q, true);
      for (
        const [reg, word] of [
          [COMMON.QUEUE_DESC, QWORD.DESC_LOW],
          [COMMON.QUEUE_DRIVER, QWORD.DRIVER_LOW],
          [COMMON.QUEUE_DEVICE, QWORD.DEVICE_LOW],
        ] as const
      ) {
        v.setUint32(c + reg, Atomics.load(s, queueWord(q, word)), true);
        v.setUint32(c + reg + 4, Atomics.load(s, queueWord(q, word + 1)), true);
      }
    } else {
      v.setUint16(c + COMMON.QUEUE_MSIX_VECTOR, 0, true); // no such queue: all zero
    }
    const d = REGION.DEVICE_CFG;
    v.setUint32(d + NET_CFG.MAC, Atomics.load(s, WORD.MAC_LOW), true);
    v.setUint16(d + NET_CFG.MAC + 4, Atomics.load(s, WORD.MAC_HIGH), true);
    v.setUint16(d + NET_CFG.STATUS, Atomics.load(s, WORD.LINK) !== 0 ? LINK_UP : 0, true);
    v.setUint16(d + NET_CFG.MTU, Atomics.load(s, WORD.MTU), true);
    if (offset <= REGION.ISR && REGION.ISR < offset + size) {
      b[REGION.ISR] = Atomics.exchange(s, WORD.ISR, 0);
    }
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      out[at + i] = o >= 0 && o < 256 ? b[o]! : 0;
    }
  }

  /** Writes `size` bytes from `src[at…]` at `offset`. Writes to read-only or unknown registers are ignored. */
  write(offset: number, size: number, src: Uint8Array, at: number): void {
    let value = 0;
    for (let i = Math.min(size, 4) - 1; i >= 0; i--) value = value * 256 + src[at + i]!;
    let high = 0;
    for (let i = size - 1; i >= 4; i--) high = high * 256 + src[at + i]!;
    const s = this.#state;
    const c = REGION.COMMON_CFG;
    if (offset >= REGION.NOTIFY && offset < REGION.NOTIFY + REGION.NOTIFY_SIZE) {
      this.#effects.notify((offset - REGION.NOTIFY) / NOTIFY_OFF_MULTIPLIER | 0);
      return;
    }
    let raise = false;
    let wake = false;
    lock(s);
    try {
      switch (offset) {
        case PCI_HEADER.COMMAND:
          if (size >= 2) Atomics.store(s, WORD.PCI_COMMAND, value & 0xffff);
          break;
        case PCI_HEADER.BAR0:
          // Sizing writes all ones and reads back the size mask. The window itself stays
          // at NET_MMIO_BASE: dhyve routes only that range to the device.
          if (size === 4) Atomics.store(s, WORD.BAR0_LOW, value & ~(NET_BAR_SIZE - 1));
          break;
        case PCI_HEADER.BAR1:
          if (size === 4) Atomics.store(s, WORD.BAR0_HIGH, value | 0);
          break;
        case c + COMMON.DEVICE_FEATURE_SELECT:
          if (size === 4) Atomics.store(s, WORD.DEVICE_FEATURE_SELECT, value | 0);
          break;
        case c + COMMON.DRIVER_FEATURE_SELECT:
          if (size === 4) Atomics.store(s, WORD.DRIVER_FEATURE_SELECT, value | 0);
          break;
        case c + COMMON.DRIVER_FEATURE: {
          const status = Atomics.load(s, WORD.STATUS);
          const sel = Atomics.load(s, WORD.DRIVER_FEATURE_SELECT);
          const open = (status & STATUS.DRIVER) !== 0 && (status & STATUS.FEATURES_OK) === 0;
          if (size === 4 && open && sel >= 0 && sel < 2) {
            Atomics.store(s, WORD.DRIVER_FEATURES_LOW + sel, value | 0);
          }
          break;
        }
        case c + COMMON.DEVICE_STATUS:
          if (size === 1) ({ raise, wake } = this.#writeStatus(value));
          break;
        case c + COMMON.QUEUE_SELECT:
          if (size === 2) Atomics.store(s, WORD.QUEUE_SELECT, value);
          break;
        case c + COMMON.QUEUE_SIZE:
        case c + COMMON.QUEUE_ENABLE:
        case c + COMMON.QUEUE_DESC:
        case c + COMMON.QUEUE_DESC + 4:
        case c + COMMON.QUEUE_DRIVER:
        case c + COMMON.QUEUE_DRIVER + 4:
        case c + COMMON.QUEUE_DEVICE:
        case c + COMMON.QUEUE_DEVICE + 4:
          raise = this.#writeQueue(offset - c, size, value, high);
          break;
        default:
          break; // read-only, MSI-X vectors (no MSI-X), or nothing there
      }
    } finally {
      unlock(s);
    }
    if (raise) {
      this.#effects.interrupt();
      wake = true;
    }
    if (wake) this.#effects.wake();
  }

  /** A device-status write; the lock is held. */
  #writeStatus(value: number): { raise: boolean; wake: boolean } {
    const s = this.#state;
    if (value === 0) {
      resetDevice(s);
      return { raise: false, wake: true };
    }
    const current = Atomics.load(s, WORD.STATUS);
    if ((current & (STATUS.NEEDS_RESET | STATUS.FAILED)) !== 0) {
      return { raise: false, wake: false }; // only a reset helps now
    }
    if ((value & STATUS.FAILED) !== 0) {
      Atomics.or(s, WORD.STATUS, STATUS.FAILED);
      Atomics.add(s, WORD.EPOCH, 1);
      return { raise: false, wake: true };
    }
    if (value === current) return { raise: false, wake: false };
    const added = value & ~current;
    const order = [STATUS.ACKNOWLEDGE, STATUS.DRIVER, STATUS.FEATURES_OK, STATUS.DRIVER_OK];
    const step = order.indexOf(added as (typeof order)[number]);
    const before = order.slice(0, step).reduce((a, b) => a | b, 0);
    if ((value & current) !== current || step < 0 || current !== before) {
      return { raise: failDevice(s, DEVICE_ERROR.BAD_STATUS), wake: false };
    }
    if (added === STATUS.FEATURES_OK) {
      const low = Atomics.load(s, WORD.DRIVER_FEATURES_LOW) >>> 0;
      const high = Atomics.load(s, WORD.DRIVER_FEATURES_HIGH) >>> 0;
      const acceptable = (low & ~Atomics.load(s, WORD.OFFERED_LOW)) === 0 &&
        (high & ~OFFERED_FEATURES[1]) === 0 && (high & OFFERED_FEATURES[1]) !== 0;
      // A driver without VERSION_1 or asking for more than offered: FEATURES_OK stays clear (§3.1.1).
      if (!acceptable) return { raise: false, wake: false };
    }
    if (added === STATUS.DRIVER_OK) {
      for (let q = 0; q < NUM_QUEUES; q++) {
        const cfg = readQueueConfig(s, q, this.#queue);
        if (cfg.enabled && checkQueuePlacement(this.#mem, cfg, QUEUE_SIZE) !== 0) {
          return { raise: failDevice(s, DEVICE_ERROR.RING_OUTSIDE_RAM), wake: false };
        }
      }
      Atomics.add(s, WORD.EPOCH, 1);
    }
    Atomics.or(s, WORD.STATUS, added);
    return { raise: false, wake: added === STATUS.DRIVER_OK };
  }

  /** A write to the selected queue's size, enable or addresses; the lock is held. */
  #writeQueue(reg: number, size: number, value: number, high: number): boolean {
    const s = this.#state;
    const q = Atomics.load(s, WORD.QUEUE_SELECT);
    if (q >= NUM_QUEUES) return false; // no such queue: ignored
    const status = Atomics.load(s, WORD.STATUS);
    if ((status & (STATUS.NEEDS_RESET | STATUS.FAILED)) !== 0) return false;
    const enabled = Atomics.load(s, queueWord(q, QWORD.ENABLE)) !== 0;
    if (enabled || (status & STATUS.DRIVER_OK) !== 0) {
      return failDevice(s, DEVICE_ERROR.QUEUE_CONFIG_LATE);
    }
    if (reg === COMMON.QUEUE_SIZE) {
      if (size !== 2) return false;
      if (value < 1 || value > QUEUE_SIZE || (value & (value - 1)) !== 0) {
        return failDevice(s, DEVICE_ERROR.BAD_QUEUE_SIZE);
      }
      Atomics.store(s, queueWord(q, QWORD.SIZE), value);
      return false;
    }
    if (reg === COMMON.QUEUE_ENABLE) {
      if (size !== 2 || value !== 1) return false; // only 1 means anything (§4.1.4.3)
      const cfg = readQueueConfig(s, q, this.#queue);
      const bad = checkQueuePlacement(this.#mem, cfg, QUEUE_SIZE);
      if (bad !== 0) return failDevice(s, bad);
      Atomics.store(s, queueWord(q, QWORD.ENABLE), 1);
      return false;
    }
    // An address: 4 bytes at either half, or 8 bytes at the low half.
    const base = reg === COMMON.QUEUE_DESC || reg === COMMON.QUEUE_DESC + 4
      ? QWORD.DESC_LOW
      : reg === COMMON.QUEUE_DRIVER || reg === COMMON.QUEUE_DRIVER + 4
      ? QWORD.DRIVER_LOW
      : QWORD.DEVICE_LOW;
    const upper = (reg & 4) !== 0;
    if (size === 4) {
      Atomics.store(s, queueWord(q, base + (upper ? 1 : 0)), value | 0);
    } else if (size === 8 && !upper) {
      Atomics.store(s, queueWord(q, base), value | 0);
      Atomics.store(s, queueWord(q, base + 1), high | 0);
    }
    return false;
  }
}

/** Whether a guest-physical address falls in the device's MMIO window. */
export function inNetWindow(addr: number): boolean {
  return addr >= NET_MMIO_BASE && addr < NET_MMIO_BASE + NET_MMIO_SIZE;
}
