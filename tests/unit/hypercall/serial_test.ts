/**
 * Unit tests of `src/hypercall/serial.ts`: the serial byte calls and the two
 * SerialWriteBuffer layouts (v1 {buf, len}, v2 {len, buf}). Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import { SERIAL_BUFFER_V1, SERIAL_BUFFER_V2, V1, V2 } from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import {
  serialWriteBufferV1,
  serialWriteBufferV2,
  serialWriteByte,
} from "../../../src/hypercall/serial.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  fakeContext,
  utf8,
} from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;
const TEXT = FAKE_RAM_BASE + 0x800;

Deno.test("serialWriteByte() sends the low byte of its argument to stdout", () => {
  const f = fakeContext();
  for (const byte of [0x141, 0x42, 0xfff_ff0a]) assert.equal(serialWriteByte(f.ctx, byte), RESUME);
  assert.deepEqual(f.output(), { stdout: "AB\n", stderr: "" });
});

Deno.test("serialWriteByte() holds a line back until its newline", () => {
  const f = fakeContext();
  for (const c of "ab") serialWriteByte(f.ctx, c.charCodeAt(0));
  assert.equal(f.captured().stdout, "");
  serialWriteByte(f.ctx, 0x0a);
  assert.equal(f.captured().stdout, "ab\n");
});

Deno.test("serialWriteBufferV1() reads {buf, len} and writes the bytes to stdout", () => {
  const f = fakeContext();
  f.mem.write(TEXT, utf8("hello v1\n"));
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.buf, TEXT);
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.len, 9);
  assert.equal(serialWriteBufferV1(f.ctx, PARAM), RESUME);
  assert.deepEqual(f.output(), { stdout: "hello v1\n", stderr: "" });
});

Deno.test("serialWriteBufferV2() reads {len, buf} and writes the bytes to stdout", () => {
  const f = fakeContext();
  f.mem.write(TEXT, utf8("hello v2\n"));
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V2.len, 9);
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V2.buf, TEXT);
  assert.equal(serialWriteBufferV2(f.ctx, PARAM), RESUME);
  assert.deepEqual(f.output(), { stdout: "hello v2\n", stderr: "" });
});

Deno.test("SerialWriteBuffer layouts: v1 has buf at 0 and len at 8, v2 the other way round", () => {
  assert.deepEqual(SERIAL_BUFFER_V1, { size: 16, buf: 0, len: 8 });
  assert.deepEqual(SERIAL_BUFFER_V2, { size: 16, len: 0, buf: 8 });
});

Deno.test("serialWriteBufferV1() rejects a block laid out the v2 way", () => {
  // {len = 9, buf = TEXT} read as {buf = 9, len = TEXT}: address 9 is not RAM.
  const f = fakeContext();
  f.mem.write(TEXT, utf8("hello v2\n"));
  f.mem.writeU64(PARAM, 9);
  f.mem.writeU64(PARAM + 8, TEXT);
  assertProtocolStop(serialWriteBufferV1(f.ctx, PARAM), {
    call: "SerialWriteBuffer",
    port: V1.SERIAL_BUFFER_WRITE,
    mentions: ["buffer at 0x9", "outside guest memory"],
  });
  assert.equal(f.output().stdout, "");
});

Deno.test("serialWriteBufferV2() rejects a block laid out the v1 way", () => {
  const f = fakeContext();
  f.mem.write(TEXT, utf8("hello v1\n"));
  f.mem.writeU64(PARAM, TEXT);
  f.mem.writeU64(PARAM + 8, 9);
  assertProtocolStop(serialWriteBufferV2(f.ctx, PARAM), {
    call: "SerialWriteBuffer",
    port: V2.SERIAL_WRITE_BUFFER,
    mentions: ["buffer at 0x9"],
  });
  assert.equal(f.output().stdout, "");
});

Deno.test("serialWriteBufferV1/V2() accept an empty buffer and write nothing", () => {
  const f = fakeContext();
  f.mem.writeU64(PARAM, TEXT);
  assert.equal(serialWriteBufferV1(f.ctx, PARAM), RESUME); // len = 0 at +8
  f.mem.writeU64(PARAM, 0);
  f.mem.writeU64(PARAM + 8, TEXT);
  assert.equal(serialWriteBufferV2(f.ctx, PARAM), RESUME);
  assert.deepEqual(f.output(), { stdout: "", stderr: "" });
});

Deno.test("serialWriteBufferV1() accepts a buffer that ends exactly at the end of RAM", () => {
  const f = fakeContext();
  f.mem.write(f.mem.end - 3, utf8("end"));
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.buf, f.mem.end - 3);
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.len, 3);
  assert.equal(serialWriteBufferV1(f.ctx, PARAM), RESUME);
  assert.equal(f.output().stdout, "end");
});

Deno.test("SerialWriteBuffer stops with a protocol error for a buffer not wholly in RAM", () => {
  const cases: [string, (end: number) => [number, bigint]][] = [
    ["crossing the end", (end) => [end - 2, 3n]],
    ["below the base", () => [FAKE_RAM_BASE - 1, 2n]],
    ["at physical 0", () => [0, 4n]],
    ["of length 2^53", () => [TEXT, 2n ** 53n]],
    ["of length 2^64-1", () => [TEXT, 2n ** 64n - 1n]],
  ];
  for (const [what, range] of cases) {
    const f = fakeContext();
    const [buf, len] = range(f.mem.end);
    f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.buf, buf);
    f.mem.writeU64Big(PARAM + SERIAL_BUFFER_V1.len, len);
    assertProtocolStop(serialWriteBufferV1(f.ctx, PARAM), {
      call: "SerialWriteBuffer",
      port: V1.SERIAL_BUFFER_WRITE,
      mentions: [`buffer at 0x${buf.toString(16)}`, "outside guest memory"],
    });
    f.mem.writeU64(PARAM + SERIAL_BUFFER_V2.buf, buf);
    f.mem.writeU64Big(PARAM + SERIAL_BUFFER_V2.len, len);
    assertProtocolStop(serialWriteBufferV2(f.ctx, PARAM), {
      call: "SerialWriteBuffer",
      port: V2.SERIAL_WRITE_BUFFER,
      mentions: [`buffer at 0x${buf.toString(16)}`],
    });
    assert.equal(f.output().stdout, "", what);
  }
});

Deno.test("SerialWriteBuffer stops with a protocol error for a parameter block outside RAM", () => {
  const f = fakeContext();
  for (const arg of [0, FAKE_RAM_BASE - 8, f.mem.end - 15, f.mem.end, 0xffff_fff0]) {
    const hex = `0x${arg.toString(16)}`;
    assertProtocolStop(serialWriteBufferV1(f.ctx, arg), {
      call: "SerialWriteBuffer",
      port: V1.SERIAL_BUFFER_WRITE,
      mentions: [`parameter block at ${hex} (16 bytes)`, "outside guest memory"],
    });
    assertProtocolStop(serialWriteBufferV2(f.ctx, arg), {
      call: "SerialWriteBuffer",
      port: V2.SERIAL_WRITE_BUFFER,
      mentions: [`parameter block at ${hex} (16 bytes)`],
    });
  }
});

Deno.test("SerialWriteBuffer copies the bytes before the guest can change them", () => {
  const f = fakeContext();
  f.mem.write(TEXT, utf8("first"));
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.buf, TEXT);
  f.mem.writeU64(PARAM + SERIAL_BUFFER_V1.len, 5);
  serialWriteBufferV1(f.ctx, PARAM); // no newline: the bytes wait in the line buffer
  f.mem.write(TEXT, utf8("later"));
  assert.equal(f.output().stdout, "first");
});
