/**
 * A test rig for the net data path without KVM: guest RAM mapped at
 * guest-physical 4 GiB, both virtqueues set up through the real register
 * file, and a {@linkcode NetDataPath} over a host fd of the test's choosing
 * (an eventfd standing in for a TAP by default). Needs `--allow-ffi`.
 * @module
 */

import { type HostMapping, mapGuestMemory } from "../../src/kvm.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { closeFd, createEventFd } from "../../src/net/host_io.ts";
import { NetDataPath, type NetWorkerInit } from "../../src/net/net_data_path.ts";
import { COMMON, REGION, STATUS } from "../../src/virtio/layout.ts";
import { NetRegisters } from "../../src/virtio/net_registers.ts";
import { createNetState, WORD } from "../../src/virtio/net_state.ts";

/** Guest-physical base of the rig's RAM. */
export const BASE = 0x1_0000_0000;
/** Size of the rig's RAM. */
export const RAM = 0x10_0000;
/** Descriptor flag: chained. */
export const NEXT = 1;
/** Descriptor flag: the device writes. */
export const WRITE = 2;
/** Entries per queue. */
export const QSIZE = 16;

/** Where queue q's rings live. */
export function rings(q: number): { desc: number; avail: number; used: number } {
  return {
    desc: BASE + 0x1_0000 * (q + 1),
    avail: BASE + 0x1_0000 * (q + 1) + 0x1000,
    used: BASE + 0x1_0000 * (q + 1) + 0x2000,
  };
}

/** RAM, registers and a data path; `hostFd` is what the data path reads and writes. */
export class Rig {
  readonly mapping: HostMapping;
  readonly mem: GuestMemory;
  readonly state: Int32Array;
  readonly regs: NetRegisters;
  readonly path: NetDataPath;
  /** The data path's host end (an eventfd unless the test gave its own). */
  readonly tapFd: number;
  readonly irqFd: number;
  readonly #fds: number[];
  readonly #buf = new Uint8Array(8);

  /** A rig whose data path uses `host` (default: a fresh eventfd, "tap" backend). */
  constructor(host: { fd?: number; backend?: NetWorkerInit["backend"] } = {}) {
    this.mapping = mapGuestMemory(RAM);
    this.mem = new GuestMemory(this.mapping, BASE);
    this.#fds = [0, 1, 2, 3, 4].map((i) =>
      i === 0 && host.fd !== undefined ? host.fd : createEventFd()
    );
    const [tapFd, rxNotifyFd, txNotifyFd, wakeFd, irqFd] = this.#fds as [
      number,
      number,
      number,
      number,
      number,
    ];
    this.tapFd = tapFd;
    this.irqFd = irqFd;
    this.state = createNetState(new Uint8Array([2, 0, 0, 0, 0, 1]));
    Atomics.store(this.state, WORD.LINK, 1); // the host end is open, as NetDevice does
    const none = (): void => {};
    this.regs = new NetRegisters(this.state, this.mem, {
      wake: none,
      interrupt: none,
      notify: none,
    });
    this.path = new NetDataPath(
      {
        state: this.state.buffer as SharedArrayBuffer,
        memAddress: this.mapping.address,
        memSize: RAM,
        guestAddress: BASE,
        tapFd,
        ...(host.backend === undefined ? {} : { backend: host.backend }),
        rxNotifyFd,
        txNotifyFd,
        wakeFd,
        irqFd,
      },
      this.mem,
      this.mapping.address,
    );
  }

  /** A register write of `size` bytes at `off`. */
  write(off: number, size: number, value: number): void {
    const v = new DataView(this.#buf.buffer);
    v.setUint32(0, value % 2 ** 32, true);
    v.setUint32(4, Math.floor(value / 2 ** 32), true);
    this.regs.write(off, size, this.#buf, 0);
  }

  /** Writes the device status. */
  status(v: number): void {
    this.write(REGION.COMMON_CFG + COMMON.DEVICE_STATUS, 1, v);
  }

  /** Negotiates and sets up both queues with QSIZE entries; DRIVER_OK unless `ready` is false. */
  setUp(ready = true): void {
    const C = REGION.COMMON_CFG;
    this.status(STATUS.ACKNOWLEDGE);
    this.status(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    this.write(C + COMMON.DRIVER_FEATURE_SELECT, 4, 1);
    this.write(C + COMMON.DRIVER_FEATURE, 4, 1);
    this.status(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    for (const q of [0, 1]) {
      const r = rings(q);
      this.write(C + COMMON.QUEUE_SELECT, 2, q);
      this.write(C + COMMON.QUEUE_SIZE, 2, QSIZE);
      this.write(C + COMMON.QUEUE_DESC, 8, r.desc);
      this.write(C + COMMON.QUEUE_DRIVER, 8, r.avail);
      this.write(C + COMMON.QUEUE_DEVICE, 8, r.used);
      this.write(C + COMMON.QUEUE_ENABLE, 2, 1);
    }
    if (ready) this.status(15);
  }

  /** Writes descriptor `i` of queue `q`. */
  desc(q: number, i: number, addr: number, len: number, flags: number, next = 0): void {
    const d = rings(q).desc + 16 * i;
    this.mem.writeU64(d, addr);
    this.mem.writeU32(d + 8, len);
    this.mem.writeU16(d + 12, flags);
    this.mem.writeU16(d + 14, next);
  }

  /** Makes chain `head` available on queue q as the n-th (0-based) entry. */
  offer(q: number, n: number, head: number): void {
    const r = rings(q);
    this.mem.writeU16(r.avail + 4 + 2 * (n % QSIZE), head);
    this.mem.writeU16(r.avail + 2, n + 1);
  }

  /** The used ring's index and its last entry. */
  used(q: number): { idx: number; id: number; len: number } {
    const r = rings(q);
    const idx = this.mem.readU16(r.used + 2);
    const slot = (idx - 1) % QSIZE;
    return {
      idx,
      id: this.mem.readU32(r.used + 4 + 8 * slot),
      len: this.mem.readU32(r.used + 8 + 8 * slot),
    };
  }

  /** Closes the fds (the host fd too) and unmaps RAM. */
  close(): void {
    for (const fd of this.#fds) closeFd(fd);
    this.mapping.unmap();
  }
}

/** Runs `fn` with a fresh default rig, closed afterwards. */
export function withRig(fn: (rig: Rig) => void): void {
  const rig = new Rig();
  try {
    fn(rig);
  } finally {
    rig.close();
  }
}
