/**
 * The virtio-net register file on a plain ArrayBuffer: PCI header and
 * capability list as uhyve 0.8 lays them out, BAR sizing, feature
 * negotiation, the status state machine (NEEDS_RESET for a driver that skips
 * or undoes steps), queue set-up checks, ISR read-to-clear and notifications.
 * @module
 */

import assert from "node:assert/strict";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { COMMON, NET_MMIO_BASE, QUEUE_SIZE, REGION, STATUS } from "../../../src/virtio/layout.ts";
import { inNetWindow, NetRegisters } from "../../../src/virtio/net_registers.ts";
import { createNetState, DEVICE_ERROR, WORD } from "../../../src/virtio/net_state.ts";

const BASE = 0x20_0000;
const MAC = new Uint8Array([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

function device(): {
  regs: NetRegisters;
  events: string[];
  read: (off: number, size: number) => number;
  write: (off: number, size: number, value: number) => void;
} {
  const mem = new GuestMemory(new ArrayBuffer(0x10_0000), BASE);
  const events: string[] = [];
  const regs = new NetRegisters(createNetState(MAC), mem, {
    wake: () => events.push("wake"),
    interrupt: () => events.push("interrupt"),
    notify: (q) => events.push(`notify ${q}`),
  });
  const buf = new Uint8Array(8);
  const view = new DataView(buf.buffer);
  return {
    regs,
    events,
    read(off: number, size: number): number {
      buf.fill(0xaa);
      regs.read(off, size, buf, 0);
      return size === 8
        ? view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32
        : size === 4
        ? view.getUint32(0, true)
        : size === 2
        ? view.getUint16(0, true)
        : buf[0]!;
    },
    write(off: number, size: number, value: number): void {
      view.setUint32(0, value % 2 ** 32, true);
      view.setUint32(4, Math.floor(value / 2 ** 32), true);
      regs.write(off, size, buf, 0);
    },
  };
}

const C = REGION.COMMON_CFG;
const status = (d: ReturnType<typeof device>): number => d.read(C + COMMON.DEVICE_STATUS, 1);
const setStatus = (d: ReturnType<typeof device>, v: number): void =>
  d.write(C + COMMON.DEVICE_STATUS, 1, v);

/** ACK, DRIVER, features VERSION_1 + MAC, FEATURES_OK. */
function negotiate(d: ReturnType<typeof device>): void {
  setStatus(d, STATUS.ACKNOWLEDGE);
  setStatus(d, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  d.write(C + COMMON.DRIVER_FEATURE_SELECT, 4, 0);
  d.write(C + COMMON.DRIVER_FEATURE, 4, 1 << 5);
  d.write(C + COMMON.DRIVER_FEATURE_SELECT, 4, 1);
  d.write(C + COMMON.DRIVER_FEATURE, 4, 1);
  setStatus(d, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
}

/** Sets queue q up with 16 entries at valid addresses and enables it. */
function setUpQueue(d: ReturnType<typeof device>, q: number, at = BASE + 0x1_0000 * (q + 1)): void {
  d.write(C + COMMON.QUEUE_SELECT, 2, q);
  d.write(C + COMMON.QUEUE_SIZE, 2, 16);
  d.write(C + COMMON.QUEUE_DESC, 8, at);
  d.write(C + COMMON.QUEUE_DRIVER, 4, at + 0x1000);
  d.write(C + COMMON.QUEUE_DRIVER + 4, 4, 0);
  d.write(C + COMMON.QUEUE_DEVICE, 4, at + 0x2000);
  d.write(C + COMMON.QUEUE_ENABLE, 2, 1);
}

Deno.test("NetRegisters: the PCI header names a virtio 1.x network device on IRQ 11", () => {
  const d = device();
  assert.equal(d.read(0x00, 4), 0x1041_1af4);
  assert.equal(d.read(0x06, 2) & 0x10, 0x10, "capability list present");
  assert.equal(d.read(0x08, 4) >>> 8, 0x02_00_00, "class: network / Ethernet");
  assert.equal(d.read(0x0e, 1), 0, "header type 0");
  assert.equal(
    d.read(0x10, 4),
    (NET_MMIO_BASE | 0b1100) >>> 0,
    "64-bit prefetchable BAR at 0xFE000000",
  );
  assert.equal(d.read(0x14, 4), 0);
  assert.equal(d.read(0x34, 1), 0x40);
  assert.equal(d.read(0x3c, 1), 11);
  assert.equal(d.read(0x3d, 1), 1);
});

Deno.test("NetRegisters: the capability list has common, ISR, notify and device config in BAR 0", () => {
  const d = device();
  const caps: number[][] = [];
  for (let at = d.read(0x34, 1); at !== 0; at = d.read(at + 1, 1)) {
    assert.equal(d.read(at, 1), 0x09, "vendor-specific capability");
    caps.push([d.read(at + 3, 1), d.read(at + 4, 1), d.read(at + 8, 4), d.read(at + 12, 4)]);
    assert.ok(caps.length < 8, "the list ends");
  }
  assert.deepEqual(caps, [
    [1, 0, 0x88, 64],
    [3, 0, 0xc8, 1],
    [2, 0, 0xd0, 8],
    [4, 0, 0xd8, 24],
  ]);
  assert.equal(d.read(REGION.NOTIFY_CAP + 16, 4), 4, "notify_off_multiplier");
});

Deno.test("NetRegisters: BAR 0 answers a sizing write with a 4 KiB mask", () => {
  const d = device();
  d.write(0x10, 4, 0xffff_ffff);
  assert.equal(d.read(0x10, 4), 0xffff_f00c);
  d.write(0x10, 4, NET_MMIO_BASE);
  assert.equal(d.read(0x10, 4), (NET_MMIO_BASE | 0b1100) >>> 0);
});

Deno.test("NetRegisters: device config holds the MAC, link up and MTU 1500", () => {
  const d = device();
  Atomics.store(d.regs.state, WORD.LINK, 1);
  const mac = [0, 1, 2, 3, 4, 5].map((i) => d.read(REGION.DEVICE_CFG + i, 1));
  assert.deepEqual(mac, [...MAC]);
  assert.equal(d.read(REGION.DEVICE_CFG + 6, 2), 1);
  assert.equal(d.read(REGION.DEVICE_CFG + 10, 2), 1500);
});

Deno.test("NetRegisters: offers MAC, STATUS, MTU and VERSION_1 and nothing else", () => {
  const d = device();
  d.write(C + COMMON.DEVICE_FEATURE_SELECT, 4, 0);
  assert.equal(d.read(C + COMMON.DEVICE_FEATURE, 4), (1 << 3) | (1 << 5) | (1 << 16));
  d.write(C + COMMON.DEVICE_FEATURE_SELECT, 4, 1);
  assert.equal(d.read(C + COMMON.DEVICE_FEATURE, 4), 1);
  d.write(C + COMMON.DEVICE_FEATURE_SELECT, 4, 7);
  assert.equal(d.read(C + COMMON.DEVICE_FEATURE, 4), 0);
  assert.equal(d.read(C + COMMON.NUM_QUEUES, 2), 2);
});

Deno.test("NetRegisters: FEATURES_OK is accepted for VERSION_1 + MAC", () => {
  const d = device();
  negotiate(d);
  assert.equal(status(d), STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
});

Deno.test("NetRegisters: FEATURES_OK stays clear without VERSION_1 or with unoffered bits", () => {
  for (const [low, high] of [[1 << 5, 0], [(1 << 5) | (1 << 0), 1], [0, 1 | 2]]) {
    const d = device();
    setStatus(d, STATUS.ACKNOWLEDGE);
    setStatus(d, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    d.write(C + COMMON.DRIVER_FEATURE_SELECT, 4, 0);
    d.write(C + COMMON.DRIVER_FEATURE, 4, low!);
    d.write(C + COMMON.DRIVER_FEATURE_SELECT, 4, 1);
    d.write(C + COMMON.DRIVER_FEATURE, 4, high!);
    setStatus(d, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    assert.equal(status(d), STATUS.ACKNOWLEDGE | STATUS.DRIVER, `features ${low}/${high}`);
  }
});

Deno.test("NetRegisters: DRIVER_OK with good queues wakes the data path", () => {
  const d = device();
  negotiate(d);
  setUpQueue(d, 0);
  setUpQueue(d, 1);
  d.events.length = 0;
  setStatus(d, 15);
  assert.equal(status(d), 15);
  assert.deepEqual(d.events, ["wake"]);
  d.write(C + COMMON.QUEUE_SELECT, 2, 1);
  assert.equal(d.read(C + COMMON.QUEUE_SIZE, 2), 16);
  assert.equal(d.read(C + COMMON.QUEUE_ENABLE, 2), 1);
  assert.equal(d.read(C + COMMON.QUEUE_NOTIFY_OFF, 2), 1);
  assert.equal(d.read(C + COMMON.QUEUE_DESC, 8), BASE + 0x2_0000);
});

Deno.test("NetRegisters: a status that skips, undoes or repeats out of order means NEEDS_RESET", () => {
  const sequences = [
    [STATUS.DRIVER], // DRIVER before ACKNOWLEDGE
    [STATUS.ACKNOWLEDGE, STATUS.ACKNOWLEDGE | STATUS.DRIVER_OK], // skips two steps
    [STATUS.ACKNOWLEDGE, STATUS.ACKNOWLEDGE | STATUS.DRIVER, STATUS.ACKNOWLEDGE], // undoes one
    [STATUS.ACKNOWLEDGE | STATUS.DRIVER], // two bits at once
  ];
  for (const seq of sequences) {
    const d = device();
    for (const v of seq) setStatus(d, v);
    assert.equal(status(d) & STATUS.NEEDS_RESET, STATUS.NEEDS_RESET, `sequence ${seq}`);
    assert.equal(Atomics.load(d.regs.state, WORD.ERROR), DEVICE_ERROR.BAD_STATUS);
    assert.ok(d.events.includes("interrupt"), "the driver is told");
    assert.equal(d.read(REGION.ISR, 1), 2, "ISR: configuration changed");
    assert.equal(d.read(REGION.ISR, 1), 0, "reading the ISR clears it");
    const stuck = status(d);
    setStatus(d, stuck | STATUS.DRIVER_OK);
    assert.equal(status(d), stuck, "ignored until reset");
    setStatus(d, 0);
    assert.equal(status(d), 0, "reset clears NEEDS_RESET");
    setStatus(d, STATUS.ACKNOWLEDGE);
    assert.equal(status(d), STATUS.ACKNOWLEDGE);
  }
});

Deno.test("NetRegisters: FAILED from the driver sticks until reset", () => {
  const d = device();
  setStatus(d, STATUS.ACKNOWLEDGE);
  setStatus(d, STATUS.FAILED);
  assert.equal(status(d) & STATUS.FAILED, STATUS.FAILED);
  setStatus(d, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  assert.equal(status(d) & STATUS.DRIVER, 0);
  setStatus(d, 0);
  assert.equal(status(d), 0);
});

Deno.test("NetRegisters: enabling a queue whose rings lie outside RAM means NEEDS_RESET", () => {
  const d = device();
  negotiate(d);
  setUpQueue(d, 0, 0x4000_0000);
  assert.equal(status(d) & STATUS.NEEDS_RESET, STATUS.NEEDS_RESET);
  assert.equal(Atomics.load(d.regs.state, WORD.ERROR), DEVICE_ERROR.RING_OUTSIDE_RAM);
  d.write(C + COMMON.QUEUE_SELECT, 2, 0);
  assert.equal(d.read(C + COMMON.QUEUE_ENABLE, 2), 0);
});

Deno.test("NetRegisters: queue size must be a power of two up to 256", () => {
  const d = device();
  negotiate(d);
  d.write(C + COMMON.QUEUE_SELECT, 2, 0);
  assert.equal(d.read(C + COMMON.QUEUE_SIZE, 2), QUEUE_SIZE);
  d.write(C + COMMON.QUEUE_SIZE, 2, 100);
  assert.equal(Atomics.load(d.regs.state, WORD.ERROR), DEVICE_ERROR.BAD_QUEUE_SIZE);
});

Deno.test("NetRegisters: changing a queue after it is enabled or after DRIVER_OK means NEEDS_RESET", () => {
  const d = device();
  negotiate(d);
  setUpQueue(d, 0);
  d.write(C + COMMON.QUEUE_DESC, 4, BASE);
  assert.equal(Atomics.load(d.regs.state, WORD.ERROR), DEVICE_ERROR.QUEUE_CONFIG_LATE);
  const e = device();
  negotiate(e);
  setUpQueue(e, 0);
  setStatus(e, 15);
  e.write(C + COMMON.QUEUE_SELECT, 2, 1);
  e.write(C + COMMON.QUEUE_SIZE, 2, 16);
  assert.equal(Atomics.load(e.regs.state, WORD.ERROR), DEVICE_ERROR.QUEUE_CONFIG_LATE);
});

Deno.test("NetRegisters: a queue index past the last queue reads as absent and ignores writes", () => {
  const d = device();
  negotiate(d);
  d.write(C + COMMON.QUEUE_SELECT, 2, 5);
  assert.equal(d.read(C + COMMON.QUEUE_SIZE, 2), 0);
  d.write(C + COMMON.QUEUE_ENABLE, 2, 1);
  assert.equal(d.read(C + COMMON.QUEUE_ENABLE, 2), 0);
  assert.equal(status(d) & STATUS.NEEDS_RESET, 0);
});

Deno.test("NetRegisters: notify-area writes name the queue; undefined offsets read zero", () => {
  const d = device();
  d.write(REGION.NOTIFY, 2, 0);
  d.write(REGION.NOTIFY + 4, 2, 1);
  assert.deepEqual(d.events, ["notify 0", "notify 1"]);
  assert.equal(d.read(0x800, 4), 0);
  assert.equal(d.read(0xfe, 4), 0);
});

Deno.test("inNetWindow() covers 0xFE000000–0xFEFFFFFF", () => {
  assert.ok(inNetWindow(0xfe00_0000));
  assert.ok(inNetWindow(0xfeff_ffff));
  assert.ok(!inNetWindow(0xfdff_ffff));
  assert.ok(!inNetWindow(0xff00_0000));
});
