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
import { drainEventFd } from "../../src/net/host_io.ts";
import { ISR, STATUS } from "../../src/virtio/layout.ts";
import { DEVICE_ERROR, WORD } from "../../src/virtio/net_state.ts";
import { BASE, NEXT, QSIZE, RAM, type Rig, rings, withRig, WRITE } from "../_helpers/net_rig.ts";

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
