/**
 * The net data path on passt's stream protocol, over a real UNIX socket pair
 * (the test plays passt at the other end) and real rings in mmap'd memory,
 * without KVM: frames go out with their length prefix; frames come in whole
 * however the bytes arrive; a frame over the MTU or a runt is skipped and
 * counted; a corrupt length or a peer that closes takes the link down and
 * tells the driver, and later guest frames are dropped, not stuck; a peer
 * that does not read fills the socket without blocking the data path, and
 * the stream stays in step when it drains. Needs `--allow-ffi`.
 * @module
 */

import assert from "node:assert/strict";
import {
  bufferAddress,
  closeFd,
  drainEventFd,
  FdIo,
  streamSocketPair,
} from "../../src/net/host_io.ts";
import { ISR } from "../../src/virtio/layout.ts";
import { WORD } from "../../src/virtio/net_state.ts";
import { BASE, QSIZE, Rig, WRITE } from "../_helpers/net_rig.ts";

const TX_BUF = BASE + 0x8_0000;
const RX_BUF = BASE + 0x9_0000;
const RX_ROOM = 2048;

/** The test's end of the socket pair: plays passt, synchronously (FFI readv/writev). */
class Peer {
  readonly #fd: number;
  readonly #io = new FdIo(1, 1);
  #open = true;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** Writes all of `bytes` (the socket has room: the tests write a few KiB at a time). */
  write(bytes: Uint8Array): Promise<number> {
    const copy = bytes.slice();
    let done = 0;
    while (done < copy.length) {
      this.#io.setIov(0, bufferAddress(copy) + done, copy.length - done);
      const n = this.#io.writev(this.#fd, 1);
      assert.ok(n > 0, `peer write: ${n}`);
      done += n;
    }
    return Promise.resolve(done);
  }

  /** Reads what is there into `into`: the byte count, or null at the end of the stream. */
  read(into: Uint8Array<ArrayBuffer>): Promise<number | null> {
    this.#io.setIov(0, bufferAddress(into), into.length);
    const n = this.#io.readv(this.#fd, 1);
    assert.ok(n >= 0, `peer read: nothing there (${n})`);
    return Promise.resolve(n === 0 ? null : n);
  }

  close(): void {
    if (this.#open) closeFd(this.#fd);
    this.#open = false;
  }
}

/** A rig whose host end is one of a connected socket pair; `peer` is the test's end. */
async function withStreamRig(
  fn: (rig: Rig, peer: Peer) => Promise<void> | void,
): Promise<void> {
  const [fd, other] = streamSocketPair();
  const peer = new Peer(other);
  const rig = new Rig({ fd, backend: "stream" });
  try {
    rig.setUp();
    await fn(rig, peer);
  } finally {
    rig.close();
    peer.close();
  }
}

function frame(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

function prefixed(bytes: Uint8Array, length = bytes.length): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, length, false);
  out.set(bytes, 4);
  return out;
}

/** Gives the device `n` receive buffers (descriptors 0..n-1) as avail entries from `from`. */
function offerRx(rig: Rig, n: number, from = 0): void {
  for (let i = 0; i < n; i++) {
    rig.desc(0, i, RX_BUF + i * RX_ROOM, RX_ROOM, WRITE);
    rig.offer(0, from + i, i);
  }
}

/** The frame in receive buffer `id` (after its 12-byte header), `len` from the used ring. */
function received(rig: Rig, id: number, len: number): Uint8Array {
  return rig.mem.bytes(RX_BUF + id * RX_ROOM + 12, len - 12).slice();
}

/** Queues `data` (behind a zero header) as transmit chain `slot`, avail entry `n`. */
function queueTx(rig: Rig, slot: number, n: number, data: Uint8Array): void {
  const at = TX_BUF + slot * RX_ROOM;
  rig.mem.bytes(at, 12).fill(0);
  rig.mem.bytes(at + 12, data.length).set(data);
  rig.desc(1, slot, at, 12 + data.length, 0);
  rig.offer(1, n, slot);
}

/** Reads exactly `n` bytes from the peer. */
async function readExactly(peer: Peer, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await peer.read(out.subarray(got));
    assert.ok(r !== null, "the stream ended early");
    got += r;
  }
  return out;
}

Deno.test("stream data path: a guest frame goes out behind its big-endian length", async () => {
  await withStreamRig(async (rig, peer) => {
    const data = frame(60, 3);
    queueTx(rig, 0, 0, data);
    rig.path.service(false, true, false);
    assert.deepEqual(rig.used(1), { idx: 1, id: 0, len: 0 });
    assert.deepEqual(await readExactly(peer, 64), prefixed(data));
    assert.equal(Atomics.load(rig.state, WORD.TX_PACKETS), 1);
  });
});

Deno.test("stream data path: a frame that arrives in pieces reaches the guest whole", async () => {
  await withStreamRig(async (rig, peer) => {
    offerRx(rig, 2);
    const a = frame(100, 1);
    const b = frame(1514, 2);
    const bytes = new Uint8Array([...prefixed(a), ...prefixed(b)]);
    for (const [from, to] of [[0, 2], [2, 50], [50, 110], [110, bytes.length]]) {
      await peer.write(bytes.subarray(from, to));
      rig.path.service(false, false, true);
    }
    assert.equal(rig.used(0).idx, 2);
    const last = rig.used(0);
    assert.deepEqual(received(rig, last.id, last.len), b);
    assert.deepEqual(received(rig, 0, 12 + 100), a);
    assert.deepEqual([...rig.mem.bytes(RX_BUF, 12)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert.equal(Atomics.load(rig.state, WORD.RX_PACKETS), 2);
  });
});

Deno.test("stream data path: frames over the MTU and runts are skipped and counted", async () => {
  await withStreamRig(async (rig, peer) => {
    offerRx(rig, 4);
    const good = frame(60, 5);
    await peer.write(
      new Uint8Array([
        ...prefixed(frame(1515, 1)),
        ...prefixed(frame(13, 2)),
        ...prefixed(good),
        ...prefixed(frame(9000, 3)),
      ]),
    );
    rig.path.service(false, false, true);
    assert.equal(rig.used(0).idx, 1, "only the good frame");
    assert.deepEqual(received(rig, 0, rig.used(0).len), good);
    assert.equal(Atomics.load(rig.state, WORD.BAD_LENGTH), 3);
    assert.equal(Atomics.load(rig.state, WORD.LINK), 1, "the link stays up");
  });
});

Deno.test("stream data path: a frame larger than the guest's buffer is dropped, the buffer kept", async () => {
  await withStreamRig(async (rig, peer) => {
    rig.desc(0, 0, RX_BUF, 12 + 100, WRITE);
    rig.offer(0, 0, 0);
    await peer.write(new Uint8Array([...prefixed(frame(500, 1)), ...prefixed(frame(90, 2))]));
    rig.path.service(false, false, true);
    assert.deepEqual(rig.used(0), { idx: 1, id: 0, len: 12 + 90 });
    assert.deepEqual(received(rig, 0, 12 + 90), frame(90, 2));
    assert.equal(Atomics.load(rig.state, WORD.DROPPED), 1);
  });
});

Deno.test("stream data path: a corrupt length takes the link down and tells the driver", async () => {
  await withStreamRig(async (rig, peer) => {
    offerRx(rig, 2);
    drainEventFd(rig.irqFd);
    assert.equal(Atomics.load(rig.state, WORD.LINK), 1);
    await peer.write(new Uint8Array([...prefixed(frame(60, 1)), 0xff, 0xff, 0xff, 0xff]));
    await peer.write(prefixed(frame(60, 2)));
    rig.path.service(false, false, true);
    assert.equal(rig.used(0).idx, 1, "the frame before the corrupt length arrived");
    assert.equal(Atomics.load(rig.state, WORD.BAD_LENGTH), 1);
    assert.equal(Atomics.load(rig.state, WORD.LINK), 0);
    assert.equal(Atomics.load(rig.state, WORD.ISR) & ISR.CONFIG, ISR.CONFIG);
    assert.equal(drainEventFd(rig.irqFd), true);
    rig.path.service(false, false, true);
    assert.equal(rig.used(0).idx, 1, "nothing more is read from a broken stream");
    // The guest can still transmit: its frame is dropped and its buffer returned.
    queueTx(rig, 0, 0, frame(60, 3));
    rig.path.service(false, true, false);
    assert.equal(rig.used(1).idx, 1);
    assert.equal(Atomics.load(rig.state, WORD.DROPPED), 1);
  });
});

Deno.test("stream data path: a peer that closes takes the link down; guest frames are not stuck", async () => {
  await withStreamRig((rig, peer) => {
    offerRx(rig, 2);
    assert.equal(Atomics.load(rig.state, WORD.LINK), 1);
    peer.close();
    rig.path.service(false, false, true);
    assert.equal(Atomics.load(rig.state, WORD.LINK), 0);
    for (let i = 0; i < 3; i++) queueTx(rig, i, i, frame(60, i));
    rig.path.service(false, true, false);
    assert.equal(rig.used(1).idx, 3, "every chain went back to the driver");
    assert.equal(Atomics.load(rig.state, WORD.TX_PACKETS), 0);
    assert.equal(Atomics.load(rig.state, WORD.DROPPED), 3);
  });
});

Deno.test("stream data path: a peer that does not read never blocks it, and the stream stays in step", async () => {
  await withStreamRig(async (rig, peer) => {
    const size = 1514;
    let queued = 0;
    let blocked = false;
    // Fill the socket: each round queues every free slot; a round that cannot send them all
    // means the socket is full (service() returned instead of waiting).
    for (let round = 0; round < 2000 && !blocked; round++) {
      const done = rig.used(1).idx;
      const free = QSIZE - (queued - done);
      for (let i = 0; i < free; i++) {
        const n = queued++;
        queueTx(rig, n % QSIZE, n, frame(size, n & 0xff));
      }
      const t0 = performance.now();
      rig.path.service(false, true, false);
      assert.ok(performance.now() - t0 < 1000, "service() returns at once");
      blocked = rig.used(1).idx !== queued;
    }
    assert.ok(blocked, "the socket filled up");
    // Now the peer reads; the device finishes on POLLOUT (service() again), frame by frame.
    let next = 0;
    while (next < queued) {
      const head = await readExactly(peer, 4);
      assert.equal(new DataView(head.buffer).getUint32(0, false), size, `frame ${next}'s length`);
      const body = await readExactly(peer, size);
      assert.deepEqual(body, frame(size, next & 0xff), `frame ${next}`);
      next++;
      rig.path.service(false, false, false);
    }
    assert.equal(rig.used(1).idx, queued & 0xffff);
    assert.equal(Atomics.load(rig.state, WORD.TX_PACKETS), queued);
  });
});
