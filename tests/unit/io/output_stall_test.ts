/**
 * Unit tests of guest output towards a reader that stops reading: the output
 * takes what it can, the hypercall stalls (WOULD_BLOCK) instead of blocking
 * the thread, and its retry goes on where it stopped — no byte lost, none
 * doubled, order kept. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { GuestOutput, type OutputSink } from "../../../src/io/guest_output.ts";
import { RESUME, WOULD_BLOCK } from "../../../src/hypercall/context.ts";
import { READ_WRITE_V2, SERIAL_BUFFER_V2, WRITE_V1 } from "../../../src/hypercall/abi.ts";
import { fileWriteV1, fileWriteV2 } from "../../../src/hypercall/file.ts";
import { serialWriteBufferV2, serialWriteByte } from "../../../src/hypercall/serial.ts";
import { FAKE_PAGE_SIZE, FAKE_RAM_BASE, fakeContext } from "../../_helpers/hypercall_context.ts";

/** A pipe whose reader the test controls: `open` bytes may be written before it is full. */
class GatedSink implements OutputSink {
  readonly got: number[] = [];
  open = 0;
  readyToWrite(): boolean {
    return this.open > 0;
  }
  writeSync(p: Uint8Array): number {
    if (this.open === 0) throw new Error("writeSync called while not ready: it would block");
    const n = Math.min(this.open, p.length);
    this.got.push(...p.subarray(0, n));
    this.open -= n;
    return n;
  }
}

function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => 0x21 + (i % 90)); // printable, no newline
}

Deno.test("GuestOutput.write() takes only what fits while the reader does not read", () => {
  const sink = new GatedSink();
  const out = new GuestOutput(sink, 16);
  const data = pattern(40);
  assert.equal(out.write(data, 0, 40), 16, "the buffer fills, then it stops");
  assert.equal(out.pending, 16);
  assert.deepEqual(sink.got, []);
  sink.open = 10; // the reader reads 10 bytes
  assert.equal(out.flush(), false, "6 bytes are left");
  assert.equal(out.pending, 6);
  assert.equal(out.write(data, 16, 24), 10, "10 more fit behind the 6 left");
  sink.open = 1000;
  assert.equal(out.write(data, 26, 14), 14);
  assert.equal(out.flush(), true);
  assert.deepEqual(sink.got, [...data]);
});

Deno.test("GuestOutput.putByte() refuses a byte only when full and the reader is stuck", () => {
  const sink = new GatedSink();
  const out = new GuestOutput(sink, 4);
  for (const b of [1, 2, 3, 4]) assert.equal(out.putByte(b), true);
  assert.equal(out.putByte(5), false);
  assert.equal(out.pending, 4);
  sink.open = 2;
  assert.equal(out.putByte(5), true);
  sink.open = 100;
  out.flush();
  assert.deepEqual(sink.got, [1, 2, 3, 4, 5]);
});

Deno.test("A newline flush with a stuck reader keeps the line buffered, not lost", () => {
  const sink = new GatedSink();
  const out = new GuestOutput(sink, 64);
  const line = new TextEncoder().encode("hi\n");
  assert.equal(out.write(line, 0, 3), 3);
  assert.equal(out.pending, 3);
  sink.open = 3;
  assert.equal(out.flush(), true);
  assert.equal(new TextDecoder().decode(Uint8Array.from(sink.got)), "hi\n");
});

Deno.test("serialWriteByte() stalls with WOULD_BLOCK while the output is full", () => {
  const sink = new GatedSink();
  const f = fakeContext({ stdout: new GuestOutput(sink, 2) });
  assert.equal(serialWriteByte(f.ctx, 0x41), RESUME);
  assert.equal(serialWriteByte(f.ctx, 0x42), RESUME);
  assert.equal(serialWriteByte(f.ctx, 0x43), WOULD_BLOCK);
  sink.open = 100;
  assert.equal(serialWriteByte(f.ctx, 0x43), RESUME);
  f.ctx.stdout.flush();
  assert.deepEqual(sink.got, [0x41, 0x42, 0x43]);
});

/** Retries `call` as the run loop does, letting the reader read `chunk` bytes between tries. */
function retryUntilDone(sink: GatedSink, call: () => unknown, chunk: number): number {
  let stalls = 0;
  while (call() === WOULD_BLOCK) {
    stalls++;
    assert.ok(stalls < 10_000, "the write never finished");
    sink.open += chunk;
  }
  return stalls;
}

Deno.test("SerialWriteBuffer (v2) resumes a stalled write without losing or doubling bytes", () => {
  const sink = new GatedSink();
  const f = fakeContext({ stdout: new GuestOutput(sink, 64) });
  const buf = FAKE_RAM_BASE + 0x1000;
  const param = FAKE_RAM_BASE + 0x100;
  const data = pattern(1000);
  f.mem.write(buf, data);
  f.mem.writeU64(param + SERIAL_BUFFER_V2.len, data.length);
  f.mem.writeU64(param + SERIAL_BUFFER_V2.buf, buf);
  const stalls = retryUntilDone(sink, () => serialWriteBufferV2(f.ctx, param), 37);
  assert.ok(stalls > 10, `stalled ${stalls} times`);
  assert.equal(f.ctx.stdout.progress, 0, "no call left half done");
  sink.open = 1 << 20;
  f.ctx.stdout.flush();
  assert.deepEqual(sink.got, [...data]);
});

Deno.test("FileWrite v2 to fd 1 resumes a stalled write and reports the full length", () => {
  const sink = new GatedSink();
  const f = fakeContext({ stdout: new GuestOutput(sink, 100) });
  const buf = FAKE_RAM_BASE + 0x2000;
  const param = FAKE_RAM_BASE + 0x100;
  const data = pattern(777);
  f.mem.write(buf, data);
  f.mem.writeU64(param + READ_WRITE_V2.len, data.length);
  f.mem.writeU64(param + READ_WRITE_V2.buf, buf);
  f.mem.writeI32(param + READ_WRITE_V2.fd, 1);
  retryUntilDone(sink, () => fileWriteV2(f.ctx, param), 50);
  assert.equal(f.mem.readI64(param + READ_WRITE_V2.ret), 777);
  sink.open = 1 << 20;
  f.ctx.stdout.flush();
  assert.deepEqual(sink.got, [...data]);
});

Deno.test("FileWrite v1 to fd 1 resumes across non-contiguous pages where it stopped", () => {
  const vbase = 0x7000_0000;
  // Virtual pages 0..2 map to frames in reverse order, so the range is three pieces.
  const frames = [0x6000, 0x4000, 0x2000].map((o) => FAKE_RAM_BASE + o);
  const pages = new Map(frames.map((frame, i) => [vbase + i * FAKE_PAGE_SIZE, frame]));
  const sink = new GatedSink();
  const f = fakeContext({ pages, stdout: new GuestOutput(sink, 512) });
  const data = pattern(3 * FAKE_PAGE_SIZE - 100);
  for (let i = 0; i < 3; i++) {
    f.mem.write(frames[i]!, data.subarray(i * FAKE_PAGE_SIZE, (i + 1) * FAKE_PAGE_SIZE));
  }
  const param = FAKE_RAM_BASE + 0x100;
  f.mem.writeI32(param + WRITE_V1.fd, 1);
  f.mem.writeU64(param + WRITE_V1.buf, vbase + 50);
  f.mem.writeU64(param + WRITE_V1.len, data.length - 50);
  const stalls = retryUntilDone(sink, () => fileWriteV1(f.ctx, param), 301);
  assert.ok(stalls > 3);
  sink.open = 1 << 20;
  f.ctx.stdout.flush();
  assert.deepEqual(sink.got, [...data.subarray(50)]);
});
