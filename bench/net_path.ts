/**
 * The virtio-net data path alone, without KVM, a guest or a TAP: this
 * process plays the driver (it fills real split virtqueues in an mmap'd
 * "guest RAM" at a 4 GiB guest-physical base), and eventfds stand in for the
 * TAP (a frame of 8 bytes: writev adds to the counter, readv reads it back).
 * Each round queues one transmit and one receive chain and runs one
 * `NetDataPath.service()`, i.e. one writev, two readv (a frame, then the
 * empty "TAP"), the ring walks and checks, the used-ring updates and one
 * irqfd write, plus a non-waiting poll and an eventfd drain. Reports µs per round
 * (two frames) and V8's allocated bytes per round, from
 * `total_allocated_bytes` over a short and a long run (the difference
 * cancels set-up and compilation; the smallest of 5 runs is used).
 *
 * Usage: `deno run --allow-ffi bench/net_path.ts` (prints JSON), or through
 * `deno task bench`.
 * @module
 */

import v8 from "node:v8";
import { mapGuestMemory } from "../src/kvm.ts";
import { GuestMemory } from "../src/memory/guest_memory.ts";
import { closeFd, createEventFd, drainEventFd, FdIo } from "../src/net/host_io.ts";
import { NetDataPath } from "../src/net/net_data_path.ts";
import { COMMON, REGION, STATUS } from "../src/virtio/layout.ts";
import { NetRegisters } from "../src/virtio/net_registers.ts";
import { createNetState } from "../src/virtio/net_state.ts";

const BASE = 0x1_0000_0000;
const RAM = 0x10_0000;
const QSIZE = 256;
const FEW = 2_000;
const MANY = 22_000;
const REPEATS = 5;
/** Receive buffers the driver keeps posted beyond the current frame. */
const RX_AHEAD = 16;

/** What the data-path probe measured. */
export interface NetPathResult {
  /** Wall µs per round (one frame each way), from the long run. */
  usPerRound: number;
  /** V8 bytes allocated per round (smallest long run minus smallest short run). */
  bytesPerRound: number;
}

interface Harness {
  round(): void;
  close(): void;
}

function harness(): Harness {
  const mapping = mapGuestMemory(RAM);
  const mem = new GuestMemory(mapping, BASE);
  const fds = [0, 1, 2, 3, 4].map(() => createEventFd());
  const [tapFd, rxNotifyFd, txNotifyFd, wakeFd, irqFd] = fds as [
    number,
    number,
    number,
    number,
    number,
  ];
  const state = createNetState(new Uint8Array([2, 0, 0, 0, 0, 1]));
  const none = (): void => {};
  const regs = new NetRegisters(state, mem, { wake: none, interrupt: none, notify: none });
  const buf = new Uint8Array(8);
  const view = new DataView(buf.buffer);
  const w = (off: number, size: number, value: number): void => {
    view.setUint32(0, value % 2 ** 32, true);
    view.setUint32(4, Math.floor(value / 2 ** 32), true);
    regs.write(off, size, buf, 0);
  };
  const C = REGION.COMMON_CFG;
  const ring = (q: number): { desc: number; avail: number; used: number } => ({
    desc: BASE + 0x1_0000 + q * 0x1_0000,
    avail: BASE + 0x1_1000 + q * 0x1_0000,
    used: BASE + 0x1_2000 + q * 0x1_0000,
  });
  w(C + COMMON.DEVICE_STATUS, 1, STATUS.ACKNOWLEDGE);
  w(C + COMMON.DEVICE_STATUS, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
  w(C + COMMON.DRIVER_FEATURE_SELECT, 4, 1);
  w(C + COMMON.DRIVER_FEATURE, 4, 1);
  w(C + COMMON.DEVICE_STATUS, 1, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
  for (const q of [0, 1]) {
    const r = ring(q);
    w(C + COMMON.QUEUE_SELECT, 2, q);
    w(C + COMMON.QUEUE_DESC, 8, r.desc);
    w(C + COMMON.QUEUE_DRIVER, 8, r.avail);
    w(C + COMMON.QUEUE_DEVICE, 8, r.used);
    w(C + COMMON.QUEUE_ENABLE, 2, 1);
    if (q === 0) {
      for (let i = 0; i < RX_AHEAD; i++) mem.writeU16(r.avail + 4 + 2 * i, i);
      mem.writeU16(r.avail + 2, RX_AHEAD);
    }
    // Every descriptor i: a 20-byte buffer (12-byte header + an 8-byte "frame").
    for (let i = 0; i < QSIZE; i++) {
      const d = r.desc + 16 * i;
      mem.writeU64(d, BASE + 0x8_0000 + q * 0x4_0000 + 32 * i);
      mem.writeU32(d + 8, 20);
      mem.writeU16(d + 12, q === 0 ? 2 : 0); // receive buffers are device-writable
    }
    // Transmit frames carry the value 1 (what an eventfd "TAP" accepts).
    if (q === 1) { for (let i = 0; i < QSIZE; i++) mem.writeU8(BASE + 0xc_0000 + 32 * i + 12, 1); }
  }
  w(C + COMMON.DEVICE_STATUS, 1, 15);
  const path = new NetDataPath(
    {
      state: state.buffer as SharedArrayBuffer,
      memAddress: mapping.address,
      memSize: RAM,
      guestAddress: BASE,
      tapFd,
      rxNotifyFd,
      txNotifyFd,
      wakeFd,
      irqFd,
    },
    mem,
    mapping.address,
  );
  let idx = 0;
  const io = new FdIo(4, 4);
  return {
    round(): void {
      const slot = idx % QSIZE;
      idx = (idx + 1) & 0xffff;
      // Transmit: one new chain. Receive: the driver keeps RX_AHEAD buffers posted, as a real
      // one does, so each round also meets an empty TAP (EAGAIN) after its frame.
      const tx = ring(1);
      mem.writeU16(tx.avail + 4 + 2 * slot, slot);
      mem.writeU16(tx.avail + 2, idx);
      const rx = ring(0);
      const rxSlot = (idx + RX_AHEAD) % QSIZE;
      mem.writeU16(rx.avail + 4 + 2 * rxSlot, rxSlot);
      mem.writeU16(rx.avail + 2, (idx + RX_AHEAD) & 0xffff);
      path.service(true, true, true);
      drainEventFd(irqFd);
      // What a wake-up adds: poll (here without waiting) and an eventfd drain.
      io.setPoll(0, irqFd);
      io.setPoll(1, wakeFd);
      io.poll(2, 0);
      io.ready(0);
      drainEventFd(wakeFd);
    },
    close(): void {
      for (const fd of fds) closeFd(fd);
      mapping.unmap();
    },
  };
}

function measure(rounds: number): { bytes: number; ms: number } {
  const h = harness();
  try {
    for (let i = 0; i < 500; i++) h.round(); // warm up the JIT
    const a0 = v8.getHeapStatistics().total_allocated_bytes;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) h.round();
    const ms = performance.now() - t0;
    return { bytes: v8.getHeapStatistics().total_allocated_bytes - a0, ms };
  } finally {
    h.close();
  }
}

/** Runs the probe. */
export function netPathBenchmark(): NetPathResult {
  const few: number[] = [];
  const many: { bytes: number; ms: number }[] = [];
  for (let i = 0; i < REPEATS; i++) {
    few.push(measure(FEW).bytes);
    many.push(measure(MANY));
  }
  const bytesFew = Math.min(...few);
  const bytesMany = Math.min(...many.map((m) => m.bytes));
  const ms = Math.min(...many.map((m) => m.ms));
  return {
    usPerRound: (ms * 1000) / MANY,
    bytesPerRound: Math.max(0, bytesMany - bytesFew) / (MANY - FEW),
  };
}

if (import.meta.main) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify(netPathBenchmark()));
}
