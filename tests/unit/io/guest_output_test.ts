/**
 * Unit tests of `src/io/guest_output.ts`: line buffering, flushing at a
 * newline or a full buffer, partial writes, and a failing sink that must never
 * take the VM down. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  CaptureSink,
  GuestOutput,
  NullSink,
  type OutputSink,
} from "../../../src/io/guest_output.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A sink that records each writeSync call's bytes separately. */
class RecordingSink implements OutputSink {
  readonly calls: string[] = [];
  writeSync(p: Uint8Array): number {
    this.calls.push(decoder.decode(p));
    return p.length;
  }
}

/** A sink that accepts at most `max` bytes per call, as a pipe may. */
class TrickleSink implements OutputSink {
  readonly calls: number[] = [];
  readonly got: number[] = [];
  constructor(readonly max: number) {}
  writeSync(p: Uint8Array): number {
    const n = Math.min(this.max, p.length);
    this.calls.push(n);
    this.got.push(...p.subarray(0, n));
    return n;
  }
}

/** A sink that throws, as a closed pipe does. */
class BrokenSink implements OutputSink {
  calls = 0;
  writeSync(_p: Uint8Array): number {
    this.calls++;
    throw new Error("Broken pipe (os error 32)");
  }
}

function put(out: GuestOutput, text: string): void {
  for (const b of encoder.encode(text)) out.putByte(b);
}

function write(out: GuestOutput, text: string): void {
  const bytes = encoder.encode(text);
  out.write(bytes, 0, bytes.length);
}

Deno.test("GuestOutput.putByte() buffers a line and writes it once at its newline", () => {
  const sink = new RecordingSink();
  const out = new GuestOutput(sink);
  put(out, "hello");
  assert.deepEqual(sink.calls, []);
  put(out, "\nnext\n");
  assert.deepEqual(sink.calls, ["hello\n", "next\n"]);
});

Deno.test("GuestOutput.write() flushes once when a newline is among the bytes", () => {
  const sink = new RecordingSink();
  const out = new GuestOutput(sink);
  write(out, "no newline");
  assert.deepEqual(sink.calls, []);
  write(out, " yet\nand a tail");
  assert.deepEqual(sink.calls, ["no newline yet\nand a tail"]);
});

Deno.test("GuestOutput.write() copies from the given offset and length only", () => {
  const sink = new CaptureSink();
  const out = new GuestOutput(sink);
  const src = encoder.encode("xxabc\nyy");
  out.write(src, 2, 4);
  assert.equal(sink.text(), "abc\n");
});

Deno.test("GuestOutput.flush() writes a partial line and nothing when empty", () => {
  const sink = new RecordingSink();
  const out = new GuestOutput(sink);
  out.flush();
  assert.deepEqual(sink.calls, [], "no call for an empty buffer");
  put(out, "partial");
  out.flush();
  out.flush();
  assert.deepEqual(sink.calls, ["partial"]);
});

Deno.test("GuestOutput flushes a full buffer without waiting for a newline", () => {
  const sink = new RecordingSink();
  const out = new GuestOutput(sink, 8);
  write(out, "0123456789abcdefXYZ");
  assert.deepEqual(sink.calls, ["01234567", "89abcdef"]);
  out.flush();
  assert.deepEqual(sink.calls, ["01234567", "89abcdef", "XYZ"]);

  const bytes = new RecordingSink();
  const byByte = new GuestOutput(bytes, 4);
  put(byByte, "abcdefg");
  assert.deepEqual(bytes.calls, ["abcd"]);
});

Deno.test("GuestOutput keeps a line longer than its buffer in order", () => {
  const sink = new CaptureSink();
  const out = new GuestOutput(sink, 16);
  const line = `${"0123456789".repeat(10)}\n`;
  write(out, line);
  put(out, line);
  assert.equal(sink.text(), line + line);
});

Deno.test("GuestOutput finishes partial writes from a sink that takes 1 byte at a time", () => {
  const sink = new TrickleSink(1);
  const out = new GuestOutput(sink);
  write(out, "abc\n");
  put(out, "de\n");
  write(out, "tail");
  out.flush();
  assert.equal(decoder.decode(new Uint8Array(sink.got)), "abc\nde\ntail");
  assert.ok(sink.calls.every((n) => n === 1));
  assert.equal(sink.calls.length, 11);
});

Deno.test("GuestOutput finishes partial writes from a sink that takes 3 bytes at a time", () => {
  const sink = new TrickleSink(3);
  const out = new GuestOutput(sink, 8);
  const text = "a longer line that spans several buffers\nand another\n";
  write(out, text);
  assert.equal(decoder.decode(new Uint8Array(sink.got)), text);
});

Deno.test("GuestOutput hands the sink bytes that later output does not change", () => {
  // The sink keeps the views it was given only until writeSync returns.
  const sink = new CaptureSink();
  const out = new GuestOutput(sink, 8);
  write(out, "one\n");
  write(out, "two\n");
  write(out, "three45678");
  out.flush();
  assert.equal(sink.text(), "one\ntwo\nthree45678");
});

Deno.test("GuestOutput marks itself failed when the sink throws, and never throws", () => {
  const sink = new BrokenSink();
  const out = new GuestOutput(sink);
  assert.equal(out.failed, false);
  put(out, "first line\n");
  assert.equal(out.failed, true);
  assert.equal(sink.calls, 1);
  // Later output is dropped without touching the sink again.
  put(out, "second line\n");
  write(out, "third\nfourth");
  out.flush();
  assert.equal(sink.calls, 1);
  assert.equal(out.failed, true);
});

Deno.test("GuestOutput drops output after the sink failed mid-way through a partial write", () => {
  let calls = 0;
  const sink: OutputSink = {
    writeSync(p: Uint8Array): number {
      calls++;
      if (calls > 1) throw new Error("EPIPE");
      return Math.min(2, p.length);
    },
  };
  const out = new GuestOutput(sink);
  write(out, "abcdef\n");
  assert.equal(out.failed, true);
  assert.equal(calls, 2);
  // The buffer was emptied: a long run of output after the failure never overflows it.
  write(out, "x".repeat(10_000));
  put(out, "y".repeat(10_000));
  out.flush();
  assert.equal(calls, 2);
});

Deno.test("CaptureSink keeps copies of what it is given and NullSink accepts everything", () => {
  const capture = new CaptureSink();
  const bytes = encoder.encode("abc");
  assert.equal(capture.writeSync(bytes), 3);
  bytes[0] = 0x78;
  assert.equal(capture.writeSync(encoder.encode("é")), 2);
  assert.equal(capture.text(), "abcé");
  assert.deepEqual([...capture.bytes()], [0x61, 0x62, 0x63, 0xc3, 0xa9]);
  assert.equal(new NullSink().writeSync(new Uint8Array(5)), 5);
});
