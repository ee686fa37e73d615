/**
 * The virtio-net data path (run on its own thread by net_worker.ts): blocks in poll(2) on the TAP
 * fd, the two queue-notify eventfds (filled by KVM through ioeventfd) and a
 * wake eventfd, then moves frames between the TAP device and the guest's
 * virtqueues with readv/writev straight on guest RAM (one copy, no
 * allocation per frame), and raises the interrupt through the irqfd. It never
 * runs guest code and never busy-polls. A malformed queue puts the device
 * into NEEDS_RESET; the host is not affected.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  ISR,
  NET_HDR_NUM_BUFFERS,
  NET_HDR_SIZE,
  QUEUE,
  QUEUE_SIZE,
  STATUS,
} from "../virtio/layout.ts";
import {
  DEVICE_ERROR,
  deviceLive,
  failDevice,
  lock,
  type QueueConfig,
  queueWord,
  QWORD,
  readQueueConfig,
  unlock,
  WORD,
} from "../virtio/net_state.ts";
import { Chain, checkQueuePlacement, SplitQueue } from "../virtio/virtqueue.ts";
import { drainEventFd, FdIo, signalEventFd } from "./host_io.ts";

/** What the net Worker needs; all fds are process-wide. */
export interface NetWorkerInit {
  /** The shared device state (net_state.ts). */
  state: SharedArrayBuffer;
  /** Host address, size and guest-physical base of guest RAM. */
  memAddress: number;
  /** Size of guest RAM. */
  memSize: number;
  /** Guest-physical address of guest RAM. */
  guestAddress: number;
  /** The TAP fd (non-blocking). */
  tapFd: number;
  /** Signalled when the driver notifies the receive queue. */
  rxNotifyFd: number;
  /** Signalled when the driver notifies the transmit queue. */
  txNotifyFd: number;
  /** Signalled by the vCPUs on state changes and by the main thread to stop. */
  wakeFd: number;
  /** Writing it raises the device's interrupt (KVM irqfd). */
  irqFd: number;
}

/** Messages from the net Worker. */
export type NetWorkerMessage =
  | { type: "ready" }
  | { type: "done" }
  | { type: "fatal"; message: string };

const EAGAIN = 11;
const EINTR = 4;

/** Whether the driver enabled queue `q`. */
function queueEnabled(state: Int32Array, q: number): boolean {
  return Atomics.load(state, queueWord(q, QWORD.ENABLE)) !== 0;
}

/** One device's data path. */
export class NetDataPath {
  readonly #state: Int32Array;
  readonly #mem: GuestMemory;
  readonly #memAddress: number;
  readonly #init: NetWorkerInit;
  readonly #io = new FdIo(4, QUEUE_SIZE);
  readonly #rx: SplitQueue;
  readonly #tx: SplitQueue;
  readonly #chain = new Chain(QUEUE_SIZE);
  readonly #cfg: QueueConfig = { size: 0, enabled: false, desc: 0, avail: 0, used: 0 };
  #epoch = -1;
  /** No receive buffers were left: stop watching the TAP fd until the driver adds some. */
  #rxStarved = false;
  /** Busy time not yet added to WORD.SERVICE_US (below one microsecond); a typed array, so no boxing. */
  readonly #busyUs = new Float64Array(1);
  /** This round put the device into NEEDS_RESET (the driver must hear about it). */
  #failed = false;

  /** A data path over guest RAM `mem`, whose first byte is at host address `memAddress`. */
  constructor(init: NetWorkerInit, mem: GuestMemory, memAddress: number) {
    this.#init = init;
    this.#state = new Int32Array(init.state);
    this.#mem = mem;
    this.#memAddress = memAddress;
    this.#rx = new SplitQueue(mem);
    this.#tx = new SplitQueue(mem);
  }

  /** Serves the device until the main thread sets STOP. */
  run(): void {
    while (this.#waitOnce());
  }

  /**
   * Blocks in poll(2) once and serves what woke it; false once STOP is set.
   * (A small function called from the loop, so V8 optimises it as a whole
   * rather than through on-stack replacement of a loop that never returns.)
   */
  #waitOnce(): boolean {
    const { tapFd, rxNotifyFd, txNotifyFd, wakeFd } = this.#init;
    const io = this.#io;
    const s = this.#state;
    if (Atomics.load(s, WORD.STOP) !== 0) return false;
    const watchTap = deviceLive(s) && !this.#rxStarved;
    io.setPoll(0, watchTap ? tapFd : -1);
    io.setPoll(1, rxNotifyFd);
    io.setPoll(2, txNotifyFd);
    io.setPoll(3, wakeFd);
    const r = io.poll(4, -1);
    if (r < 0 && r !== -EINTR) throw new Error(`poll failed (errno ${-r})`);
    if (r <= 0) return true;
    const rxKick = io.ready(1) && drainEventFd(rxNotifyFd);
    const txKick = io.ready(2) && drainEventFd(txNotifyFd);
    if (io.ready(3)) drainEventFd(wakeFd);
    if (rxKick) this.#rxStarved = false;
    const t0 = performance.now();
    this.service(rxKick, txKick, io.ready(0));
    const busy = this.#busyUs;
    busy[0] = busy[0]! + (performance.now() - t0) * 1000;
    if (busy[0]! >= 1) {
      const whole = Math.floor(busy[0]!);
      Atomics.add(s, WORD.SERVICE_US, whole);
      busy[0] = busy[0]! - whole;
    }
    return true;
  }

  /**
   * One round: pick up configuration changes, check notifications, send what
   * the guest queued, receive what the TAP has. Raises the interrupt when
   * buffers were returned and the driver wants to hear about it.
   */
  service(rxKick: boolean, txKick: boolean, tapReadable: boolean): void {
    const s = this.#state;
    let interrupt = false;
    lock(s);
    try {
      this.#sync();
      if (!deviceLive(s)) {
        const status = Atomics.load(s, WORD.STATUS);
        const broken = (status & (STATUS.NEEDS_RESET | STATUS.FAILED)) !== 0;
        // Notifying a queue that was never enabled is a driver bug. An enabled queue notified
        // before DRIVER_OK is tolerated (Hermit fills its receive queue that way) and served
        // once DRIVER_OK comes; after a reset (status 0) a late notification is harmless.
        const stray = (rxKick && !queueEnabled(s, QUEUE.RX)) ||
          (txKick && !queueEnabled(s, QUEUE.TX));
        if (stray && status !== 0 && !broken) {
          interrupt = failDevice(s, DEVICE_ERROR.NOTIFY_NOT_READY);
        }
      } else if ((rxKick && !this.#rx.attached) || (txKick && !this.#tx.attached)) {
        interrupt = failDevice(s, DEVICE_ERROR.NOTIFY_NOT_READY);
      } else {
        this.#failed = false;
        const sent = this.#tx.attached && this.#transmit();
        const received = this.#rx.attached && (tapReadable || rxKick) && this.#receive();
        // Used buffers interrupt only where the driver has not suppressed it (VIRTQ_AVAIL_F_NO_INTERRUPT).
        const wanted = (sent && this.#tx.wantsInterrupt()) ||
          (received && this.#rx.wantsInterrupt());
        if (wanted) Atomics.or(s, WORD.ISR, ISR.QUEUE);
        interrupt = wanted || this.#failed;
      }
    } finally {
      unlock(s);
    }
    if (interrupt) {
      Atomics.add(s, WORD.INTERRUPTS, 1);
      signalEventFd(this.#init.irqFd);
    }
  }

  /** Re-reads the queues after a reset, DRIVER_OK or an error (the epoch moved). */
  #sync(): void {
    const s = this.#state;
    const epoch = Atomics.load(s, WORD.EPOCH);
    if (epoch === this.#epoch) return;
    this.#epoch = epoch;
    this.#rx.detach();
    this.#tx.detach();
    this.#rxStarved = false;
    if (!deviceLive(s)) return;
    for (const [q, queue] of [[0, this.#rx], [1, this.#tx]] as const) {
      const cfg = readQueueConfig(s, q, this.#cfg);
      if (!cfg.enabled) continue;
      const bad = checkQueuePlacement(this.#mem, cfg, QUEUE_SIZE);
      if (bad !== 0) {
        failDevice(s, bad);
        return;
      }
      queue.attach(cfg);
    }
  }

  /**
   * Fails the device for `reason` and stops serving the queues; the round then raises the
   * configuration interrupt. Returns false (no buffers were returned), for `return this.#fail(…)`.
   */
  #fail(reason: number): boolean {
    if (failDevice(this.#state, reason)) this.#failed = true;
    this.#rx.detach();
    this.#tx.detach();
    return false;
  }

  /** Sends every chain the driver queued; true if any went back to the used ring. */
  #transmit(): boolean {
    const tx = this.#tx;
    const chain = this.#chain;
    const s = this.#state;
    let used = false;
    for (;;) {
      const n = tx.pending();
      if (n < 0) return this.#fail(-n);
      if (n === 0) return used;
      const bad = tx.peek(chain, "device-reads");
      if (bad !== 0) return this.#fail(bad);
      if (chain.total < NET_HDR_SIZE) return this.#fail(DEVICE_ERROR.CHAIN_TOO_SHORT);
      const count = this.#iovecsAfterHeader();
      if (count > 0) {
        const w = this.#io.writev(this.#init.tapFd, count);
        if (w < 0) Atomics.add(s, WORD.DROPPED, 1);
        else {
          Atomics.add(s, WORD.TX_PACKETS, 1);
          Atomics.add(s, WORD.TX_BYTES, w);
        }
      }
      tx.take();
      tx.pushUsed(chain.head, 0);
      used = true;
    }
  }

  /** Fills receive buffers from the TAP until either runs out; true if any were used. */
  #receive(): boolean {
    const rx = this.#rx;
    const chain = this.#chain;
    const s = this.#state;
    let used = false;
    for (;;) {
      const n = rx.pending();
      if (n < 0) return this.#fail(-n);
      if (n === 0) {
        this.#rxStarved = true;
        return used;
      }
      const bad = rx.peek(chain, "device-writes");
      if (bad !== 0) return this.#fail(bad);
      if (chain.total <= NET_HDR_SIZE) return this.#fail(DEVICE_ERROR.CHAIN_TOO_SHORT);
      const count = this.#iovecsAfterHeader();
      const got = this.#io.readv(this.#init.tapFd, count);
      if (got < 0) {
        if (got !== -EAGAIN) Atomics.add(s, WORD.DROPPED, 1);
        return used; // the TAP is empty (or failing): wait for poll
      }
      this.#writeHeader();
      rx.take();
      rx.pushUsed(chain.head, NET_HDR_SIZE + got);
      Atomics.add(s, WORD.RX_PACKETS, 1);
      Atomics.add(s, WORD.RX_BYTES, got);
      used = true;
    }
  }

  /** Points the iovecs at the chain's bytes after the 12-byte header; returns their count. */
  #iovecsAfterHeader(): number {
    const chain = this.#chain;
    const io = this.#io;
    const host = this.#memAddress - this.#mem.base;
    let skip = NET_HDR_SIZE;
    let count = 0;
    for (let i = 0; i < chain.count; i++) {
      const len = chain.lens[i]!;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      io.setIov(count++, host + chain.addrs[i]! + skip, len - skip);
      skip = 0;
    }
    return count;
  }

  /** Writes the virtio-net header (no offloads, one buffer) at the start of the chain. */
  #writeHeader(): void {
    const chain = this.#chain;
    let seg = 0;
    let off = 0;
    for (let i = 0; i < NET_HDR_SIZE; i++) {
      while (off >= chain.lens[seg]!) {
        seg++;
        off = 0;
      }
      this.#mem.writeU8(chain.addrs[seg]! + off, i === NET_HDR_NUM_BUFFERS ? 1 : 0);
      off++;
    }
  }
}
