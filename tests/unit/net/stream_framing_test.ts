/**
 * The stream protocol's receive side (`src/net/stream_framing.ts`) without
 * I/O: a test "reads" from a byte stream exactly as the receiver plans
 * (frame bytes into a guest buffer, skipped bytes anywhere, then the next
 * length prefix), in pieces of any size. Frames must come out whole and in
 * order, frames over the MTU or under an Ethernet header are skipped and
 * counted, a corrupt length breaks the stream for good, and a frame the
 * guest has no room for is skipped without losing step.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  LENGTH_PREFIX,
  MAX_STREAM_LENGTH,
  RX_EVENT,
  RX_STATE,
  StreamReceiver,
} from "../../../src/net/stream_framing.ts";

const MTU_FRAME = 1514;
const SKIP_CHUNK = 64;

/** The stream bytes for `frames`: each preceded by its length, big-endian. */
function encode(frames: Uint8Array[], lengths?: number[]): Uint8Array {
  const total = frames.reduce((n, f) => n + LENGTH_PREFIX + f.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  frames.forEach((f, i) => {
    view.setUint32(at, lengths?.[i] ?? f.length, false);
    out.set(f, at + LENGTH_PREFIX);
    at += LENGTH_PREFIX + f.length;
  });
  return out;
}

interface Outcome {
  frames: Uint8Array[];
  badLength: number;
  broken: boolean;
}

/**
 * Feeds `stream` to a receiver, each read at most `pieces[i]` bytes (cycled),
 * copying bytes where the plan says, as the data path's readv does.
 */
function feed(stream: Uint8Array, pieces: number[], maxFrame = MTU_FRAME): Outcome {
  const r = new StreamReceiver(maxFrame, SKIP_CHUNK);
  const frames: Uint8Array[] = [];
  let guest = new Uint8Array(0);
  let at = 0;
  let badLength = 0;
  let broken = false;
  for (let i = 0; at < stream.length && !broken; i++) {
    if (r.state === RX_STATE.FRAME && r.frameDone === 0) guest = new Uint8Array(r.frameLength);
    const payload = r.payloadWanted();
    const prefix = r.lengthWanted();
    const n = Math.min(pieces[i % pieces.length]!, payload + prefix, stream.length - at);
    const toPayload = Math.min(n, payload);
    if (r.state === RX_STATE.FRAME) guest.set(stream.subarray(at, at + toPayload), r.frameDone);
    r.prefix.set(stream.subarray(at + toPayload, at + n), r.prefixOffset());
    at += n;
    const events = r.advance(n);
    if (events & RX_EVENT.FRAME) {
      assert.equal(guest.length, r.completedLength);
      frames.push(guest);
    }
    if (events & RX_EVENT.BAD_LENGTH) badLength++;
    if (events & RX_EVENT.BROKEN) broken = true;
  }
  return { frames, badLength, broken };
}

function frame(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
}

Deno.test("StreamReceiver delivers frames whole and in order, whatever the read sizes", () => {
  const frames = [frame(60, 1), frame(1514, 2), frame(14, 3), frame(700, 4)];
  const stream = encode(frames);
  for (const pieces of [[1], [3], [4], [5], [64], [1518], [100_000], [1, 7, 2, 1000]]) {
    const out = feed(stream, pieces);
    assert.deepEqual(out.frames, frames, `reads of ${pieces}`);
    assert.equal(out.badLength, 0);
    assert.equal(out.broken, false);
  }
});

Deno.test("StreamReceiver skips and counts frames over the MTU or under an Ethernet header", () => {
  const good1 = frame(100, 1);
  const big = frame(1515, 2);
  const runt = frame(13, 3);
  const good2 = frame(1514, 4);
  const huge = frame(9000, 5);
  const out = feed(encode([good1, big, runt, good2, huge, good1]), [1, 2, 3, 500]);
  assert.deepEqual(out.frames, [good1, good2, good1]);
  assert.equal(out.badLength, 3);
  assert.equal(out.broken, false);
});

Deno.test("StreamReceiver: a zero length is a bad length and the next frame still arrives", () => {
  const out = feed(encode([new Uint8Array(0), frame(60, 9)]), [2]);
  assert.deepEqual(out.frames, [frame(60, 9)]);
  assert.equal(out.badLength, 1);
});

Deno.test("StreamReceiver: a length no peer can send breaks the stream; nothing more is read", () => {
  const r = new StreamReceiver(MTU_FRAME, SKIP_CHUNK);
  new DataView(r.prefix.buffer).setUint32(0, MAX_STREAM_LENGTH + 1, false);
  assert.equal(r.advance(LENGTH_PREFIX), RX_EVENT.BROKEN);
  assert.equal(r.state, RX_STATE.BROKEN);
  assert.equal(r.payloadWanted() + r.lengthWanted(), 0, "no read is planned");
  const out = feed(encode([frame(60, 1), frame(60, 2)], [60, 0xffff_ffff]), [7]);
  assert.deepEqual(out.frames, [frame(60, 1)]);
  assert.equal(out.broken, true);
});

Deno.test("StreamReceiver.advance() refuses more bytes than it planned", () => {
  const r = new StreamReceiver(MTU_FRAME, SKIP_CHUNK);
  assert.throws(() => r.advance(LENGTH_PREFIX + 1), RangeError);
});

Deno.test("StreamReceiver.skipCurrent() drops a frame half read and keeps the stream in step", () => {
  const a = frame(200, 1);
  const b = frame(80, 2);
  const stream = encode([a, b]);
  const r = new StreamReceiver(MTU_FRAME, SKIP_CHUNK);
  r.prefix.set(stream.subarray(0, 4));
  r.advance(4);
  assert.equal(r.state, RX_STATE.FRAME);
  assert.equal(r.frameLength, 200);
  r.advance(50); // 50 frame bytes, then the guest's buffer went away (reset)
  r.skipCurrent();
  assert.equal(r.state, RX_STATE.SKIP);
  let at = 4 + 50;
  while (r.state === RX_STATE.SKIP) {
    const n = r.payloadWanted() + r.lengthWanted();
    r.prefix.set(stream.subarray(at + r.payloadWanted(), at + n), r.prefixOffset());
    r.advance(n);
    at += n;
  }
  assert.equal(r.state, RX_STATE.FRAME);
  assert.equal(r.frameLength, 80, "the next frame's length was read in step");
});

Deno.test("StreamReceiver: random frames, lengths and read sizes (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 8 }),
      (sizes, pieces) => {
        const frames = sizes.map((n, i) => frame(n, i));
        const out = feed(encode(frames), pieces);
        const good = frames.filter((f) => f.length >= 14 && f.length <= MTU_FRAME);
        assert.deepEqual(out.frames, good);
        assert.equal(out.badLength, frames.length - good.length);
        assert.equal(out.broken, false);
      },
    ),
    { numRuns: 300 },
  );
});
