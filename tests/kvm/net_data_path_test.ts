/**
 * The net Worker's data path without KVM or a TAP: the test plays the driver
 * on real rings in mmap'd memory (guest-physical base 4 GiB) and an eventfd
 * stands in for the TAP (a frame is 8 bytes: writev adds it to the counter,
 * readv reads the counter back). Checks the bytes that reach the "TAP" and
 * the guest, the virtio-net header, used lengths, interrupt suppression, and
 * that broken chains and stray notifications put the device into
 * NEEDS_RESET without touching the rings again. Needs `--allow-ffi` (no
 * /dev/kvm).
 * @module
 */

import assert from "node:assert/strict";
import { type HostMapping, mapGuestMemory } from "../../src/kvm.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { closeFd, createEventFd, drainEventFd } from "../../src/net/host_io.ts";
import { NetDataPath } from "../../src/net/net_data_path.ts";
import { COMMON, ISR, REGION, STATUS } from "../../src/virtio/layout.ts";
import { NetRegisters } from "../../src/virtio/net_registers.ts";
import { createNetState, DEVICE_ERROR, WORD } from "../../src/virtio/net_state.ts";

const BASE = 0x1_0000_0000;
const RAM = 0x10_0000;
const NEXT = 1;
const WRITE = 2;
const QSIZE = 16;

/** Where queue q's rings live. */
function rings(q: number): { desc: number; avail: number; used: number } {
  return {
    desc: BASE + 0x1_0000 * (q + 1),
    avail: BASE + 0x1_0000 * (q + 1) + 0x1000,
    used: BASE + 0x1_0000 * (q + 1) + 0x2000,
  };
}

class Rig {
  readonly mapping: HostMapping;
  readonly mem: GuestMemory;
  readonly state: Int32Array;
  readonly regs: NetRegisters;
  readonly path: NetDataPath;
  readonly tapFd: number;
  readonly irqFd: number;
  readonly #fds: number[];
  readonly #buf = new Uint8Array(8);

  constructor() {
    this.mapping = mapGuestMemory(RAM);
    this.mem = new GuestMemory(this.mapping.buffer, BASE);
    this.#fds = [0, 1, 2, 3, 4].map(() => createEventFd());
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
        rxNotifyFd,
        txNotifyFd,
        wakeFd,
        irqFd,
      },
      this.mem,
      this.mapping.address,
    );
  }

  write(off: number, size: number, value: number): void {
    const v = new DataView(this.#buf.buffer);
    v.setUint32(0, value % 2 ** 32, true);
    v.setUint32(4, Math.floor(value / 2 ** 32), true);
    this.regs.write(off, size, this.#buf, 0);
  }

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

  close(): void {
    for (const fd of this.#fds) closeFd(fd);
    this.mapping.unmap();
  }
}

function withRig(fn: (rig: Rig) => void): void {
  const rig = new Rig();
  try {
    fn(rig);
  } finally {
    rig.close();
  }
}

Deno.test("NetDataPath: a frame goes out without its header and comes back in behind a fresh one", () => {
  withRig((rig) => {
    rig.setUp();
    // Transmit: header split 5 + 7 over two descriptors, then the 8-byte frame (value 0x1234).
    rig.desc(1, 3, BASE + 0x8_0000, 5, NEXT, 4);
    rig.desc(1, 4, BASE + 0x8_0100, 7, NEXT, 5);
    rig.desc(1, 5, BASE + 0x8_0200, 8, 0);
    rig.mem.writeU64(BASE + 0x8_0200, 0x1234);
    for (let i = 0; i < 12; i++) {
      rig.mem.writeU8(BASE + (i < 5 ? 0x8_0000 + i : 0x8_00f9 + i), 0xee);
    }
    rig.offer(1, 0, 3);
    // Receive: header split 6 + 6, then room for the frame; poisoned so the writes show.
    rig.desc(0, 7, BASE + 0x9_0000, 6, WRITE | NEXT, 8);
    rig.desc(0, 8, BASE + 0x9_0100, 6, WRITE | NEXT, 9);
    rig.desc(0, 9, BASE + 0x9_0200, 64, WRITE);
    for (const a of [0x9_0000, 0x9_0100]) {
      for (let i = 0; i < 6; i++) rig.mem.writeU8(BASE + a + i, 0xee);
    }
    rig.offer(0, 0, 7);

    rig.path.service(true, true, true);

    assert.deepEqual(rig.used(1), { idx: 1, id: 3, len: 0 });
    assert.deepEqual(rig.used(0), { idx: 1, id: 7, len: 12 + 8 });
    assert.equal(
      rig.mem.readU64(BASE + 0x9_0200),
      0x1234,
      "the frame, without the sender's header",
    );
    const header = [
      ...rig.mem.bytes(BASE + 0x9_0000, 6),
      ...rig.mem.bytes(BASE + 0x9_0100, 6),
    ];
    assert.deepEqual(header, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], "num_buffers = 1, no offloads");
    assert.equal(Atomics.load(rig.state, WORD.TX_PACKETS), 1);
    assert.equal(Atomics.load(rig.state, WORD.RX_PACKETS), 1);
    assert.equal(drainEventFd(rig.irqFd), true, "an interrupt");
    assert.equal(Atomics.load(rig.state, WORD.ISR) & ISR.QUEUE, ISR.QUEUE);
  });
});

Deno.test("NetDataPath: no interrupt where the driver suppressed it", () => {
  withRig((rig) => {
    rig.setUp();
    rig.mem.writeU16(rings(1).avail, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT on the transmit queue
    rig.desc(1, 0, BASE + 0x8_0000, 20, 0);
    rig.mem.writeU64(BASE + 0x8_0000 + 12, 7);
    rig.offer(1, 0, 0);
    rig.path.service(false, true, false);
    assert.equal(rig.used(1).idx, 1);
    assert.equal(drainEventFd(rig.irqFd), false);
    assert.equal(Atomics.load(rig.state, WORD.ISR), 0);
  });
});

Deno.test("NetDataPath: with no receive buffer a frame waits in the TAP", () => {
  withRig((rig) => {
    rig.setUp();
    rig.desc(1, 0, BASE + 0x8_0000, 20, 0);
    rig.mem.writeU64(BASE + 0x8_0000 + 12, 9);
    rig.offer(1, 0, 0);
    rig.path.service(false, true, true);
    assert.equal(rig.used(0).idx, 0);
    rig.desc(0, 2, BASE + 0x9_0000, 64, WRITE);
    rig.offer(0, 0, 2);
    rig.path.service(true, false, false);
    assert.deepEqual(rig.used(0), { idx: 1, id: 2, len: 20 });
    assert.equal(rig.mem.readU64(BASE + 0x9_0000 + 12), 9);
  });
});

Deno.test("NetDataPath: broken chains mean NEEDS_RESET, an interrupt, and no more ring writes", () => {
  const cases: [string, (rig: Rig) => void, number][] = [
    ["loop", (r) => {
      r.desc(1, 0, BASE + 0x8_0000, 20, NEXT, 1);
      r.desc(1, 1, BASE + 0x8_0000, 20, NEXT, 0);
    }, DEVICE_ERROR.CHAIN_TOO_LONG],
    ["outside RAM", (r) => r.desc(1, 0, BASE + RAM, 20, 0), DEVICE_ERROR.DESC_OUTSIDE_RAM],
    ["huge", (r) => r.desc(1, 0, BASE + 0x8_0000, 0xffff_ffff, 0), DEVICE_ERROR.DESC_OUTSIDE_RAM],
    ["zero", (r) => r.desc(1, 0, BASE + 0x8_0000, 0, 0), DEVICE_ERROR.DESC_LENGTH],
    ["short", (r) => r.desc(1, 0, BASE + 0x8_0000, 11, 0), DEVICE_ERROR.CHAIN_TOO_SHORT],
    ["writable", (r) => r.desc(1, 0, BASE + 0x8_0000, 20, WRITE), DEVICE_ERROR.DESC_DIRECTION],
    ["next index", (r) => r.desc(1, 0, BASE + 0x8_0000, 20, NEXT, QSIZE), DEVICE_ERROR.DESC_INDEX],
  ];
  for (const [name, breakIt, reason] of cases) {
    withRig((rig) => {
      rig.setUp();
      breakIt(rig);
      rig.offer(1, 0, 0);
      rig.path.service(false, true, false);
      const status = Atomics.load(rig.state, WORD.STATUS);
      assert.equal(status & STATUS.NEEDS_RESET, STATUS.NEEDS_RESET, name);
      assert.equal(Atomics.load(rig.state, WORD.ERROR), reason, name);
      assert.equal(Atomics.load(rig.state, WORD.ISR) & ISR.CONFIG, ISR.CONFIG, name);
      assert.equal(drainEventFd(rig.irqFd), true, `${name}: the driver is told`);
      assert.equal(rig.used(1).idx, 0, name);
      // The driver queues a good chain anyway: the device must not touch it.
      rig.desc(1, 1, BASE + 0x8_0000, 20, 0);
      rig.offer(1, 1, 1);
      rig.path.service(false, true, false);
      assert.equal(rig.used(1).idx, 0, `${name}: nothing after the error`);
    });
  }
});

Deno.test("NetDataPath: notifying a never-enabled queue is an error; an enabled one early is not", () => {
  withRig((rig) => {
    rig.status(STATUS.ACKNOWLEDGE);
    rig.status(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    rig.path.service(false, true, false);
    assert.equal(Atomics.load(rig.state, WORD.ERROR), DEVICE_ERROR.NOTIFY_NOT_READY);
  });
  withRig((rig) => {
    rig.setUp(false);
    rig.path.service(true, false, false); // receive queue enabled, DRIVER_OK not yet
    assert.equal(Atomics.load(rig.state, WORD.STATUS) & STATUS.NEEDS_RESET, 0);
    rig.status(15);
    rig.desc(0, 0, BASE + 0x9_0000, 64, WRITE);
    rig.offer(0, 0, 0);
    rig.desc(1, 0, BASE + 0x8_0000, 20, 0);
    rig.mem.writeU64(BASE + 0x8_0000 + 12, 3);
    rig.offer(1, 0, 0);
    rig.path.service(true, true, true);
    assert.deepEqual(rig.used(0), { idx: 1, id: 0, len: 20 });
  });
});

Deno.test("NetDataPath: after a reset the device serves the new rings from index 0", () => {
  withRig((rig) => {
    rig.setUp();
    rig.desc(1, 0, BASE + 0x8_0000, 20, 0);
    rig.mem.writeU64(BASE + 0x8_0000 + 12, 4);
    rig.offer(1, 0, 0);
    rig.path.service(false, true, false);
    assert.equal(rig.used(1).idx, 1);
    rig.status(0);
    // Fresh rings: clear the old indices, set up again, send once more.
    for (const q of [0, 1]) {
      rig.mem.writeU16(rings(q).avail + 2, 0);
      rig.mem.writeU16(rings(q).used + 2, 0);
    }
    rig.setUp();
    rig.offer(1, 0, 0);
    rig.path.service(false, true, false);
    assert.deepEqual(rig.used(1), { idx: 1, id: 0, len: 0 });
    assert.equal(Atomics.load(rig.state, WORD.TX_PACKETS), 2);
  });
});
