/**
 * The virtio-net data path (run on its own thread by net_worker.ts): blocks in poll(2) on the
 * host end (a TAP fd, or passt's UNIX socket), the two queue-notify eventfds (filled by KVM
 * through ioeventfd) and a wake eventfd, then moves frames between the host end and the guest's
 * virtqueues with readv/writev straight on guest RAM (one copy, no allocation per frame), and
 * raises the interrupt through the irqfd. It never runs guest code and never busy-polls. A
 * malformed queue puts the device into NEEDS_RESET; the host is not affected. On passt's stream
 * socket every frame has a length prefix (stream_framing.ts): lengths are checked, partial reads
 * and writes resume where they stopped, and a dead or corrupt peer takes the link down.
 * @module
 */

import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  ETH_HEADER_SIZE,
  FEATURE,
  ISR,
  NET_HDR,
  NET_HDR_F_NEEDS_CSUM,
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
import { ERRNO } from "../errno.ts";
import {
  bufferAddress,
  drainEventFd,
  FdIo,
  POLL,
  setTapOffload,
  signalEventFd,
  TUN_F_CSUM,
} from "./host_io.ts";
import { LENGTH_PREFIX, RX_EVENT, RX_STATE, StreamReceiver } from "./stream_framing.ts";

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
  /** The host end, non-blocking: the TAP fd, or passt's socket for the "stream" backend. */
  tapFd: number;
  /**
   * "tap": one frame per read/write (default); "tap-vnet": the same with a
   * 12-byte virtio-net header in front (checksum offload); "stream": QEMU's
   * length-prefixed stream protocol (passt).
   */
  backend?: "tap" | "tap-vnet" | "stream";
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

const { EAGAIN, EINTR } = ERRNO;
/** Bytes thrown away per read while skipping a frame from the stream. */
const SKIP_CHUNK = 4096;

/** Guest address of byte `i` (< 12) of the virtio-net header at the start of `chain`. */
function headerAddress(chain: Chain, i: number): number {
  let off = i;
  let seg = 0;
  while (off >= chain.lens[seg]!) off -= chain.lens[seg++]!;
  return chain.addrs[seg]! + off;
}

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
  readonly #stream: boolean;
  readonly #vnetHdr: boolean;
  readonly #io = new FdIo(4, QUEUE_SIZE + 2);
  readonly #rx: SplitQueue;
  readonly #tx: SplitQueue;
  readonly #chain = new Chain(QUEUE_SIZE);
  readonly #cfg: QueueConfig = { size: 0, enabled: false, desc: 0, avail: 0, used: 0 };
  #epoch = -1;
  /** No receive buffers were left: stop watching the host end until the driver adds some. */
  #rxStarved = false;
  /** Busy time not yet added to WORD.SERVICE_US (below one microsecond); a typed array, so no boxing. */
  readonly #busyUs = new Float64Array(1);
  /** This round put the device into NEEDS_RESET or changed the link (the driver must hear about it). */
  #failed = false;
  /** The features the driver accepted (low word), read when the device went live. */
  #features = 0;
  /** The offload flags last given to the TAP (-1: never set). */
  #tapOffload = -1;
  /** The header that goes to a vnet TAP in front of a guest frame (sanitised copy). */
  readonly #txHeader = new Uint8Array(NET_HDR_SIZE);
  readonly #txHeaderAddress: number;
  // ---- the stream backend ----
  /** The peer closed, failed or sent a corrupt length: the link is down for good. */
  #hostDead = false;
  readonly #receiver: StreamReceiver;
  readonly #prefixAddress: number;
  /** A receive chain held across reads while a frame arrives in pieces. */
  readonly #rxChain = new Chain(QUEUE_SIZE);
  #rxHeld = false;
  readonly #discard = new Uint8Array(SKIP_CHUNK);
  readonly #discardAddress: number;
  /** The transmit length prefix, big-endian. */
  readonly #txPrefix = new Uint8Array(LENGTH_PREFIX);
  readonly #txPrefixView = new DataView(this.#txPrefix.buffer);
  readonly #txPrefixAddress: number;
  /** Bytes of the head transmit frame (prefix included) already written; 0: none started. */
  #txSent = 0;
  /** Its frame length (to notice a chain that changed under a partial write). */
  #txFrameLength = 0;
  /** Zero bytes still owed to the stream for a frame cut short by a reset. */
  #txPad = 0;
  /** The socket was full: wait for POLLOUT. */
  #txBlocked = false;
  readonly #maxFrame: number;

  /** A data path over guest RAM `mem`, whose first byte is at host address `memAddress`. */
  constructor(init: NetWorkerInit, mem: GuestMemory, memAddress: number) {
    this.#init = init;
    this.#state = new Int32Array(init.state);
    this.#mem = mem;
    this.#memAddress = memAddress;
    this.#rx = new SplitQueue(mem);
    this.#tx = new SplitQueue(mem);
    this.#stream = init.backend === "stream";
    this.#vnetHdr = init.backend === "tap-vnet";
    this.#maxFrame = Atomics.load(this.#state, WORD.MTU) + ETH_HEADER_SIZE;
    this.#receiver = new StreamReceiver(this.#maxFrame, SKIP_CHUNK);
    this.#prefixAddress = bufferAddress(this.#receiver.prefix);
    this.#discardAddress = bufferAddress(this.#discard);
    this.#txPrefixAddress = bufferAddress(this.#txPrefix);
    this.#txHeaderAddress = bufferAddress(this.#txHeader);
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
    const live = deviceLive(s) && !this.#hostDead;
    const events = (live && !this.#rxStarved ? POLL.IN : 0) |
      (live && this.#txBlocked ? POLL.OUT : 0);
    io.setPoll(0, events !== 0 ? tapFd : -1, events);
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
    const host = io.revents(0);
    if ((host & POLL.OUT) !== 0) this.#txBlocked = false;
    const t0 = performance.now();
    this.service(rxKick, txKick, (host & (POLL.IN | POLL.HUP | POLL.ERR)) !== 0);
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
   * the guest queued, receive what the host end has. Raises the interrupt when
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
    this.#dropHeldFrames();
    if (!deviceLive(s)) return;
    this.#features = Atomics.load(s, WORD.DRIVER_FEATURES_LOW);
    if (this.#vnetHdr) {
      // Partial checksums reach the guest only if its driver accepted GUEST_CSUM; else the
      // host kernel completes them before they reach dhyve.
      const offload = (this.#features & FEATURE.GUEST_CSUM) !== 0 ? TUN_F_CSUM : 0;
      if (offload !== this.#tapOffload && setTapOffload(this.#init.tapFd, offload)) {
        this.#tapOffload = offload;
      }
    }
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
   * The queues went away (reset or error) while a stream frame was half
   * read or half written: skip the rest of the incoming one, and owe the
   * stream zero bytes for the rest of the outgoing one, so it stays in step.
   */
  #dropHeldFrames(): void {
    if (this.#rxHeld) {
      this.#rxHeld = false;
      this.#receiver.skipCurrent();
      Atomics.add(this.#state, WORD.DROPPED, 1);
    }
    this.#dropHalfSent();
  }

  /** Owes the stream zero bytes for the rest of a frame half written (see above). */
  #dropHalfSent(): void {
    if (this.#txSent === 0) return;
    this.#txPad += LENGTH_PREFIX + this.#txFrameLength - this.#txSent;
    this.#txSent = 0;
    Atomics.add(this.#state, WORD.DROPPED, 1);
  }

  /**
   * Fails the device for `reason` and stops serving the queues; the round then raises the
   * configuration interrupt. Returns false (no buffers were returned), for `return this.#fail(…)`.
   */
  #fail(reason: number): boolean {
    if (failDevice(this.#state, reason)) this.#failed = true;
    this.#rx.detach();
    this.#tx.detach();
    this.#dropHeldFrames();
    return false;
  }

  /**
   * The stream peer is gone (EOF, an error) or sent a corrupt length: the
   * link goes down for good and the driver hears of it (configuration change).
   */
  #hostDown(): void {
    if (this.#hostDead) return;
    this.#hostDead = true;
    const s = this.#state;
    Atomics.store(s, WORD.LINK, 0);
    Atomics.or(s, WORD.ISR, ISR.CONFIG);
    Atomics.add(s, WORD.CONFIG_GENERATION, 1);
    this.#failed = true;
  }

  /** Sends every chain the driver queued; true if any went back to the used ring. */
  #transmit(): boolean {
    const tx = this.#tx;
    const chain = this.#chain;
    const s = this.#state;
    let used = false;
    for (;;) {
      // (A blocked socket is tried again: a full one just says EAGAIN.)
      if (this.#txPad > 0 && !this.#flushPad()) return used;
      const n = tx.pending();
      if (n < 0) return this.#fail(-n);
      if (n === 0) return used;
      const bad = tx.peek(chain, "device-reads");
      if (bad !== 0) return this.#fail(bad);
      if (chain.total < NET_HDR_SIZE) return this.#fail(DEVICE_ERROR.CHAIN_TOO_SHORT);
      if (this.#stream) {
        if (!this.#sendStream()) return used; // the socket is full: wait for POLLOUT
      } else if (chain.total > NET_HDR_SIZE) {
        let count = 0;
        if (this.#vnetHdr) {
          this.#sanitiseTxHeader();
          this.#io.setIov(count++, this.#txHeaderAddress, NET_HDR_SIZE);
        }
        count = this.#iovecs(chain, NET_HDR_SIZE, chain.total, count);
        const w = this.#io.writev(this.#init.tapFd, count);
        if (w < 0) Atomics.add(s, WORD.DROPPED, 1);
        else {
          Atomics.add(s, WORD.TX_PACKETS, 1);
          Atomics.add(s, WORD.TX_BYTES, this.#vnetHdr ? w - NET_HDR_SIZE : w);
        }
      }
      tx.take();
      tx.pushUsed(chain.head, 0);
      used = true;
    }
  }

  /**
   * Writes the peeked chain's frame to the stream, with its length prefix,
   * resuming a partial write. True when the chain is done with (sent or
   * dropped); false when the socket is full (the chain stays queued).
   */
  #sendStream(): boolean {
    const chain = this.#chain;
    const s = this.#state;
    const length = chain.total - NET_HDR_SIZE;
    if (this.#txSent > 0 && length !== this.#txFrameLength) {
      // The driver rewrote a chain the device was still sending: finish the frame with zeros.
      this.#dropHalfSent();
      if (!this.#flushPad()) return false;
    }
    if (this.#hostDead || length < ETH_HEADER_SIZE || length > this.#maxFrame) {
      Atomics.add(s, WORD.DROPPED, 1);
      return true;
    }
    if (this.#txSent === 0) {
      this.#txPrefixView.setUint32(0, length, false);
      this.#txFrameLength = length;
    }
    let count = 0;
    const sent = this.#txSent;
    if (sent < LENGTH_PREFIX) {
      this.#io.setIov(count++, this.#txPrefixAddress + sent, LENGTH_PREFIX - sent);
    }
    const frameSent = sent > LENGTH_PREFIX ? sent - LENGTH_PREFIX : 0;
    count = this.#iovecs(chain, NET_HDR_SIZE + frameSent, chain.total, count);
    const w = this.#io.writev(this.#init.tapFd, count);
    if (w < 0) {
      if (w === -EAGAIN) {
        this.#txBlocked = true;
        return false;
      }
      this.#hostDown();
      this.#txSent = 0;
      Atomics.add(s, WORD.DROPPED, 1);
      return true;
    }
    this.#txSent += w;
    if (this.#txSent < LENGTH_PREFIX + length) {
      this.#txBlocked = true;
      return false;
    }
    this.#txSent = 0;
    Atomics.add(s, WORD.TX_PACKETS, 1);
    Atomics.add(s, WORD.TX_BYTES, length);
    return true;
  }

  /** Writes the zero bytes owed to the stream; true when none are left. */
  #flushPad(): boolean {
    while (this.#txPad > 0 && !this.#hostDead) {
      const w = this.#writeDiscard(Math.min(this.#txPad, SKIP_CHUNK));
      if (w === -EAGAIN) {
        this.#txBlocked = true;
        return false;
      }
      if (w < 0) this.#hostDown();
      else this.#txPad -= w;
    }
    if (this.#hostDead) this.#txPad = 0;
    return true;
  }

  /** Writes `n` bytes of the (all-zero) discard buffer to the stream. */
  #writeDiscard(n: number): number {
    this.#discard.fill(0, 0, n);
    this.#io.setIov(0, this.#discardAddress, n);
    return this.#io.writev(this.#init.tapFd, 1);
  }

  /**
   * The header a vnet TAP gets in front of a guest frame: the partial
   * checksum request if the driver negotiated CSUM, never GSO, nothing else
   * the guest wrote.
   */
  #sanitiseTxHeader(): void {
    const h = this.#txHeader;
    h.fill(0);
    if ((this.#features & FEATURE.CSUM) === 0) return;
    if ((this.#headerByte(NET_HDR.FLAGS) & NET_HDR_F_NEEDS_CSUM) === 0) return;
    h[NET_HDR.FLAGS] = NET_HDR_F_NEEDS_CSUM;
    for (let i = NET_HDR.CSUM_START; i < NET_HDR.CSUM_OFFSET + 2; i++) h[i] = this.#headerByte(i);
  }

  /** Byte `i` (< 12) of the peeked chain's virtio-net header. */
  #headerByte(i: number): number {
    return this.#mem.readU8(headerAddress(this.#chain, i));
  }

  /** Fills receive buffers from the host end until either runs out; true if any were used. */
  #receive(): boolean {
    if (this.#stream) return this.#hostDead ? false : this.#receiveStream();
    const chain = this.#chain;
    const s = this.#state;
    let used = false;
    for (;;) {
      const next = this.#nextRx(chain);
      if (next <= 0) return next === 0 && used;
      // A vnet TAP writes the header itself (all but num_buffers).
      const count = this.#iovecs(chain, this.#vnetHdr ? 0 : NET_HDR_SIZE, chain.total, 0);
      let got = this.#io.readv(this.#init.tapFd, count);
      if (got < 0) {
        if (got !== -EAGAIN) Atomics.add(s, WORD.DROPPED, 1);
        return used; // the TAP is empty (or failing): wait for poll
      }
      if (this.#vnetHdr) {
        got -= NET_HDR_SIZE;
        if (got < 0) continue; // cannot happen with a vnet TAP; never hand it to the guest
        // DATA_VALID and partial checksums are for drivers that accepted GUEST_CSUM only.
        if ((this.#features & FEATURE.GUEST_CSUM) === 0) this.#putHeaderByte(chain, 0, 0);
        this.#putHeaderByte(chain, NET_HDR_NUM_BUFFERS, 1);
        this.#putHeaderByte(chain, NET_HDR_NUM_BUFFERS + 1, 0);
      } else {
        this.#writeHeader(chain);
      }
      this.#rxDone(chain, got);
      used = true;
    }
  }

  /**
   * Peeks the next receive chain into `chain`: 1 when there is a usable one,
   * 0 when the driver gave none (starved), -1 after failing the device.
   */
  #nextRx(chain: Chain): number {
    const rx = this.#rx;
    const n = rx.pending();
    if (n === 0) {
      this.#rxStarved = true;
      return 0;
    }
    let bad = n < 0 ? -n : rx.peek(chain, "device-writes");
    if (bad === 0 && chain.total <= NET_HDR_SIZE) bad = DEVICE_ERROR.CHAIN_TOO_SHORT;
    if (bad === 0) return 1;
    this.#fail(bad);
    return -1;
  }

  /** Hands a filled receive chain (a `length`-byte frame behind its header) back to the driver. */
  #rxDone(chain: Chain, length: number): void {
    this.#rx.take();
    this.#rx.pushUsed(chain.head, NET_HDR_SIZE + length);
    Atomics.add(this.#state, WORD.RX_PACKETS, 1);
    Atomics.add(this.#state, WORD.RX_BYTES, length);
  }

  /**
   * Reads frames from the stream into receive buffers: each read takes the
   * rest of the current frame (straight into the guest buffer) and the next
   * length prefix. True if any buffer was used.
   */
  #receiveStream(): boolean {
    const chain = this.#rxChain;
    const r = this.#receiver;
    const s = this.#state;
    let used = false;
    for (;;) {
      let count = 0;
      if (r.state === RX_STATE.FRAME) {
        if (!this.#rxHeld) {
          const next = this.#nextRx(chain);
          if (next <= 0) return next === 0 && used;
          if (chain.total - NET_HDR_SIZE < r.frameLength) {
            r.skipCurrent(); // no room in this buffer: the frame is lost, the buffer stays
            Atomics.add(s, WORD.DROPPED, 1);
            continue;
          }
          this.#rxHeld = true;
        }
        const from = NET_HDR_SIZE + r.frameDone;
        count = this.#iovecs(chain, from, from + r.payloadWanted(), 0);
      } else if (r.state === RX_STATE.SKIP) {
        this.#io.setIov(count++, this.#discardAddress, r.payloadWanted());
      }
      const prefix = r.lengthWanted();
      if (prefix > 0) this.#io.setIov(count++, this.#prefixAddress + r.prefixOffset(), prefix);
      if (count === 0) {
        this.#hostDown(); // BROKEN: nothing more can be read
        return used;
      }
      const got = this.#io.readv(this.#init.tapFd, count);
      if (got === -EAGAIN) return used;
      if (got <= 0) {
        this.#hostDown(); // EOF or an error: passt is gone
        return used;
      }
      const events = r.advance(got);
      if ((events & RX_EVENT.FRAME) !== 0) {
        this.#writeHeader(chain);
        this.#rxDone(chain, r.completedLength);
        this.#rxHeld = false;
        used = true;
      }
      if ((events & (RX_EVENT.BAD_LENGTH | RX_EVENT.BROKEN)) !== 0) {
        Atomics.add(s, WORD.BAD_LENGTH, 1);
      }
      if ((events & RX_EVENT.BROKEN) !== 0) {
        this.#hostDown();
        return used;
      }
    }
  }

  /**
   * Points iovecs `first…` at the chain's bytes `from..to` (offsets into the
   * chain, the 12-byte header included); returns the next free iovec index.
   */
  #iovecs(chain: Chain, from: number, to: number, first: number): number {
    const io = this.#io;
    const host = this.#memAddress - this.#mem.base;
    let skip = from;
    let left = to - from;
    let count = first;
    for (let i = 0; i < chain.count && left > 0; i++) {
      const len = chain.lens[i]!;
      if (skip >= len) {
        skip -= len;
        continue;
      }
      const take = Math.min(len - skip, left);
      io.setIov(count++, host + chain.addrs[i]! + skip, take);
      left -= take;
      skip = 0;
    }
    return count;
  }

  /** Writes byte `i` of the chain's virtio-net header. */
  #putHeaderByte(chain: Chain, i: number, value: number): void {
    this.#mem.writeU8(headerAddress(chain, i), value);
  }

  /** Writes the virtio-net header (no offloads, one buffer) at the start of the chain. */
  #writeHeader(chain: Chain): void {
    for (let i = 0; i < NET_HDR_SIZE; i++) {
      this.#putHeaderByte(chain, i, i === NET_HDR_NUM_BUFFERS ? 1 : 0);
    }
  }
}
