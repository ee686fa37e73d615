/**
 * Split virtqueues over a plain ArrayBuffer: ring placement checks, chain
 * walking (loops, bad indices, buffers outside RAM, zero and huge lengths,
 * direction, indirect), avail-index sanity with wrap-around, and the used ring.
 * @module
 */

import assert from "node:assert/strict";
import { GuestMemory } from "../../../src/memory/guest_memory.ts";
import { DEVICE_ERROR, type QueueConfig } from "../../../src/virtio/net_state.ts";
import {
  Chain,
  checkQueuePlacement,
  MAX_CHAIN_BYTES,
  SplitQueue,
} from "../../../src/virtio/virtqueue.ts";

const BASE = 0x10_0000;
const RAM = 0x4_0000; // 256 KiB
const SIZE = 8;
const DESC = BASE + 0x1000;
const AVAIL = BASE + 0x2000;
const USED = BASE + 0x3000;
const NEXT = 1;
const WRITE = 2;
const INDIRECT = 4;

function setup(size = SIZE): { mem: GuestMemory; q: SplitQueue; cfg: QueueConfig } {
  const mem = new GuestMemory(new ArrayBuffer(RAM), BASE);
  const cfg = { size, enabled: true, desc: DESC, avail: AVAIL, used: USED };
  const q = new SplitQueue(mem);
  q.attach(cfg);
  return { mem, q, cfg };
}

function desc(mem: GuestMemory, i: number, addr: number, len: number, flags = 0, next = 0): void {
  mem.writeU32(DESC + 16 * i, addr % 0x1_0000_0000);
  mem.writeU32(DESC + 16 * i + 4, Math.floor(addr / 0x1_0000_0000));
  mem.writeU32(DESC + 16 * i + 8, len);
  mem.writeU16(DESC + 16 * i + 12, flags);
  mem.writeU16(DESC + 16 * i + 14, next);
}

/** Makes head `head` available in slot `slot` and sets the avail index to `idx`. */
function offer(mem: GuestMemory, slot: number, head: number, idx: number): void {
  mem.writeU16(AVAIL + 4 + 2 * slot, head);
  mem.writeU16(AVAIL + 2, idx);
}

Deno.test("checkQueuePlacement() accepts aligned rings inside RAM", () => {
  const { mem, cfg } = setup();
  assert.equal(checkQueuePlacement(mem, cfg, 256), 0);
});

Deno.test("checkQueuePlacement() rejects rings outside RAM, misaligned or crossing its end", () => {
  const { mem, cfg } = setup();
  const bad = (patch: Partial<QueueConfig>): number =>
    checkQueuePlacement(mem, { ...cfg, ...patch }, 256);
  assert.equal(bad({ desc: 0 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ desc: DESC + 8 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ avail: AVAIL + 1 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ used: USED + 2 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ used: BASE + RAM - 8 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ desc: 2 ** 64 - 16 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
  assert.equal(bad({ desc: 0x100_0000_0000 }), DEVICE_ERROR.RING_OUTSIDE_RAM);
});

Deno.test("checkQueuePlacement() rejects sizes that are zero, not a power of two, or too big", () => {
  const { mem, cfg } = setup();
  for (const size of [0, 3, 12, 512, 65535]) {
    assert.equal(checkQueuePlacement(mem, { ...cfg, size }, 256), DEVICE_ERROR.BAD_QUEUE_SIZE);
  }
});

Deno.test("SplitQueue.peek() walks a chain into its segments without taking it", () => {
  const { mem, q } = setup();
  desc(mem, 3, BASE + 0x8000, 12, NEXT, 5);
  desc(mem, 5, BASE + 0x9000, 1500);
  offer(mem, 0, 3, 1);
  assert.equal(q.pending(), 1);
  const chain = new Chain(SIZE);
  assert.equal(q.peek(chain, "device-reads"), 0);
  assert.equal(chain.head, 3);
  assert.equal(chain.count, 2);
  assert.equal(chain.total, 1512);
  assert.deepEqual([...chain.addrs.subarray(0, 2)], [BASE + 0x8000, BASE + 0x9000]);
  assert.equal(q.pending(), 1, "peek does not take the chain");
  q.take();
  assert.equal(q.pending(), 0);
});

Deno.test("SplitQueue.peek() ends a looping chain with CHAIN_TOO_LONG", () => {
  const { mem, q } = setup();
  desc(mem, 0, BASE + 0x8000, 64, NEXT, 1);
  desc(mem, 1, BASE + 0x8000, 64, NEXT, 0);
  offer(mem, 0, 0, 1);
  assert.equal(q.peek(new Chain(256), "device-reads"), DEVICE_ERROR.CHAIN_TOO_LONG);
});

Deno.test("SplitQueue.peek() ends a self-loop after at most size descriptors", () => {
  const { mem, q } = setup();
  desc(mem, 2, BASE + 0x8000, 64, NEXT, 2);
  offer(mem, 0, 2, 1);
  const chain = new Chain(256);
  assert.equal(q.peek(chain, "device-reads"), DEVICE_ERROR.CHAIN_TOO_LONG);
  assert.ok(chain.count <= SIZE);
});

Deno.test("SplitQueue.peek() rejects head and next indices at or past the queue size", () => {
  const { mem, q } = setup();
  offer(mem, 0, SIZE, 1);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_INDEX);
  desc(mem, 0, BASE + 0x8000, 64, NEXT, SIZE);
  offer(mem, 0, 0, 1);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_INDEX);
  desc(mem, 0, BASE + 0x8000, 64, NEXT, 0xffff);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_INDEX);
});

Deno.test("SplitQueue.peek() rejects buffers outside RAM, across its end, and huge lengths", () => {
  const { mem, q } = setup();
  offer(mem, 0, 0, 1);
  const cases: [number, number][] = [
    [0, 64], // below RAM
    [BASE + RAM, 1], // just past the end
    [BASE + RAM - 10, 11], // crosses the end
    [BASE + 0x8000, 0xffff_ffff], // huge length
    [2 ** 64 - 4096, 64], // an address past 2^53
    [0xffff_ffff_0000, 16],
  ];
  for (const [addr, len] of cases) {
    desc(mem, 0, addr, len);
    assert.equal(
      q.peek(new Chain(SIZE), "device-reads"),
      DEVICE_ERROR.DESC_OUTSIDE_RAM,
      `addr 0x${addr.toString(16)} len ${len}`,
    );
  }
  desc(mem, 0, BASE + RAM - 10, 10);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), 0, "the last bytes of RAM are fine");
});

Deno.test("SplitQueue.peek() rejects zero-length buffers and chains over MAX_CHAIN_BYTES", () => {
  const { mem, q } = setup();
  offer(mem, 0, 0, 1);
  desc(mem, 0, BASE + 0x8000, 0);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_LENGTH);
  const half = Math.ceil((MAX_CHAIN_BYTES + 1) / 2);
  desc(mem, 0, BASE + 0x10000, half, NEXT, 1);
  desc(mem, 1, BASE + 0x10000, half);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_LENGTH);
});

Deno.test("SplitQueue.peek() checks the direction of every buffer and refuses indirect tables", () => {
  const { mem, q } = setup();
  offer(mem, 0, 0, 1);
  desc(mem, 0, BASE + 0x8000, 64, WRITE);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_DIRECTION);
  assert.equal(q.peek(new Chain(SIZE), "device-writes"), 0);
  desc(mem, 0, BASE + 0x8000, 64, WRITE | NEXT, 1);
  desc(mem, 1, BASE + 0x9000, 64, 0);
  assert.equal(q.peek(new Chain(SIZE), "device-writes"), DEVICE_ERROR.DESC_DIRECTION);
  desc(mem, 0, BASE + 0x8000, 64, INDIRECT);
  assert.equal(q.peek(new Chain(SIZE), "device-reads"), DEVICE_ERROR.DESC_INDIRECT);
});

Deno.test("SplitQueue.pending() wraps at 2^16 and rejects an index too far ahead", () => {
  const { mem, q } = setup();
  q.lastAvail = 0xfffe;
  mem.writeU16(AVAIL + 2, 0x0002);
  assert.equal(q.pending(), 4);
  mem.writeU16(AVAIL + 2, 0xfffe + SIZE + 1 - 0x10000);
  assert.equal(q.pending(), -DEVICE_ERROR.AVAIL_INDEX);
  mem.writeU16(AVAIL + 2, 0xfffd); // behind the device: also "too far ahead" mod 2^16
  assert.equal(q.pending(), -DEVICE_ERROR.AVAIL_INDEX);
});

Deno.test("SplitQueue.pushUsed() fills the used ring in order, wraps, and publishes the index", () => {
  const { mem, q } = setup();
  for (let i = 0; i < SIZE + 2; i++) q.pushUsed(i % SIZE, 100 + i);
  assert.equal(mem.readU16(USED + 2), SIZE + 2);
  assert.equal(mem.readU32(USED + 4), 8 % SIZE, "slot 0 was overwritten by the 9th element");
  assert.equal(mem.readU32(USED + 8), 100 + SIZE);
  assert.equal(mem.readU32(USED + 4 + 8 * 2), 2);
  assert.equal(mem.readU32(USED + 8 + 8 * 2), 102);
});

Deno.test("SplitQueue.wantsInterrupt() follows VIRTQ_AVAIL_F_NO_INTERRUPT", () => {
  const { mem, q } = setup();
  assert.equal(q.wantsInterrupt(), true);
  mem.writeU16(AVAIL, 1);
  assert.equal(q.wantsInterrupt(), false);
});
