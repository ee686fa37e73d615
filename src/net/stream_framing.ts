/**
 * QEMU's stream protocol, as passt speaks it on its UNIX socket: every
 * Ethernet frame is preceded by its length, a 32-bit big-endian number. The
 * receive side is a small state machine that says what to read next (the
 * rest of a length prefix, the rest of a frame, or bytes to throw away) and
 * digests what a read returned, so the data path can read straight into guest
 * buffers, any number of bytes at a time, and never trust a length: a frame
 * longer than the MTU or shorter than an Ethernet header is skipped and
 * counted, and a length no peer could send ends the stream. Pure: no I/O, no
 * allocation after construction.
 * @module
 */

import { ETH_HEADER_SIZE } from "../virtio/layout.ts";

/** Bytes of the length prefix. */
export const LENGTH_PREFIX = 4;

/**
 * The longest length a sane peer sends: an Ethernet frame at the largest MTU
 * Linux knows (65535) plus its header. Anything longer means the stream is
 * out of step (or the peer is broken): it cannot be resynchronised.
 */
export const MAX_STREAM_LENGTH = 65_535 + ETH_HEADER_SIZE;

/** What the receiver expects next. */
export const RX_STATE = {
  /** (The rest of) a length prefix. */
  LENGTH: 0,
  /** (The rest of) a frame that will be delivered. */
  FRAME: 1,
  /** (The rest of) a frame that is being thrown away. */
  SKIP: 2,
  /** A corrupt length was read: the stream is unusable. */
  BROKEN: 3,
} as const;

/** Bits of {@linkcode StreamReceiver.advance}'s result. */
export const RX_EVENT = {
  /** A frame was completed; its length is `completedLength`. */
  FRAME: 1,
  /** A length prefix announced a frame that is skipped (too long or too short). */
  BAD_LENGTH: 2,
  /** A length prefix was corrupt: the state is now BROKEN. */
  BROKEN: 4,
} as const;

/**
 * The receive side of the stream protocol. Each round the caller reads
 * (with one readv) first `payloadWanted()` bytes — into the guest buffer at
 * `frameDone` in state FRAME, or anywhere in state SKIP — and then
 * `lengthWanted()` bytes into `prefix` at `prefixOffset()`, and passes the
 * byte count to {@linkcode advance}.
 */
export class StreamReceiver {
  /** Where the length prefix is read to. */
  readonly prefix: Uint8Array<ArrayBuffer> = new Uint8Array(LENGTH_PREFIX);
  readonly #view = new DataView(this.prefix.buffer);
  readonly #maxFrame: number;
  #state: number = RX_STATE.LENGTH;
  #prefixGot = 0;
  /** FRAME: the frame's length; SKIP: bytes still to skip. */
  #length = 0;
  #done = 0;
  #completed = 0;
  #skipChunk: number;

  /**
   * A receiver that delivers frames of `ETH_HEADER_SIZE..maxFrame` bytes and
   * skips at most `skipChunk` bytes per read.
   */
  constructor(maxFrame: number, skipChunk: number) {
    this.#maxFrame = maxFrame;
    this.#skipChunk = skipChunk;
  }

  /** The current RX_STATE. */
  get state(): number {
    return this.#state;
  }

  /** FRAME: the length of the frame being read. */
  get frameLength(): number {
    return this.#state === RX_STATE.FRAME ? this.#length : 0;
  }

  /** FRAME: how many of its bytes were read already. */
  get frameDone(): number {
    return this.#state === RX_STATE.FRAME ? this.#done : 0;
  }

  /** The length of the frame the last `advance` completed. */
  get completedLength(): number {
    return this.#completed;
  }

  /** Frame bytes to read before the next prefix: the frame's rest, or a chunk to skip. */
  payloadWanted(): number {
    if (this.#state === RX_STATE.FRAME) return this.#length - this.#done;
    if (this.#state === RX_STATE.SKIP) return Math.min(this.#length, this.#skipChunk);
    return 0;
  }

  /** Prefix bytes to read after the payload (0 while a skip has more chunks to go). */
  lengthWanted(): number {
    switch (this.#state) {
      case RX_STATE.LENGTH:
        return LENGTH_PREFIX - this.#prefixGot;
      case RX_STATE.FRAME:
        return LENGTH_PREFIX;
      case RX_STATE.SKIP:
        return this.#length <= this.#skipChunk ? LENGTH_PREFIX : 0;
      default:
        return 0;
    }
  }

  /** Where in `prefix` the next prefix bytes go. */
  prefixOffset(): number {
    return this.#state === RX_STATE.LENGTH ? this.#prefixGot : 0;
  }

  /**
   * The current frame cannot be delivered (no guest buffer fits it, or the
   * device was reset under it): skip its rest instead.
   */
  skipCurrent(): void {
    if (this.#state !== RX_STATE.FRAME) return;
    this.#length -= this.#done;
    this.#done = 0;
    this.#state = this.#length === 0 ? RX_STATE.LENGTH : RX_STATE.SKIP;
    this.#prefixGot = 0;
  }

  /**
   * Digests `n` bytes read as planned (payload first, then prefix). Returns
   * RX_EVENT bits. `n` larger than planned is a caller bug and throws.
   */
  advance(n: number): number {
    let events = 0;
    let left = n;
    const payload = this.payloadWanted();
    const prefixBytes = this.lengthWanted();
    if (left > payload + prefixBytes) throw new RangeError(`Read ${n} bytes, planned fewer`);
    if (payload > 0) {
      const used = Math.min(left, payload);
      left -= used;
      if (this.#state === RX_STATE.FRAME) {
        this.#done += used;
        if (this.#done < this.#length) return events;
        this.#completed = this.#length;
        events |= RX_EVENT.FRAME;
      } else {
        this.#length -= used;
        if (this.#length > 0) return events;
      }
      this.#state = RX_STATE.LENGTH;
      this.#prefixGot = 0;
    } else if (this.#state === RX_STATE.SKIP && this.#length === 0) {
      this.#state = RX_STATE.LENGTH;
      this.#prefixGot = 0;
    }
    if (this.#state !== RX_STATE.LENGTH || left === 0) return events;
    this.#prefixGot += left;
    if (this.#prefixGot < LENGTH_PREFIX) return events;
    return events | this.#startFrame(this.#view.getUint32(0, false));
  }

  /** A complete prefix announced `length` bytes: deliver, skip, or give up. */
  #startFrame(length: number): number {
    this.#prefixGot = 0;
    this.#done = 0;
    this.#length = length;
    if (length > MAX_STREAM_LENGTH) {
      this.#state = RX_STATE.BROKEN;
      return RX_EVENT.BROKEN;
    }
    if (length > this.#maxFrame || length < ETH_HEADER_SIZE) {
      this.#state = length === 0 ? RX_STATE.LENGTH : RX_STATE.SKIP;
      return RX_EVENT.BAD_LENGTH;
    }
    this.#state = RX_STATE.FRAME;
    return 0;
  }
}

/** Writes `length` as the 4-byte big-endian prefix into `into` (reused by the caller). */
export function writeLengthPrefix(into: DataView, length: number): void {
  into.setUint32(0, length, false);
}
