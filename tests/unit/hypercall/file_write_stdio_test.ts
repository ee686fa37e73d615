/**
 * Unit tests of `src/hypercall/file_write_stdio.ts`: FileWrite to guest fds 1
 * and 2. v1 buffers are guest-virtual and go through `translateRange`; v2
 * buffers are guest-physical and report len or -EFAULT. Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { READ_WRITE_V2, V1, WRITE_V1 } from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import {
  stdioOutput,
  writeStdioV1,
  writeStdioV2,
  writeVirtual,
} from "../../../src/hypercall/file_write_stdio.ts";
import {
  assertProtocolStop,
  FAKE_PAGE_SIZE,
  FAKE_RAM_BASE,
  fakeContext,
  utf8,
} from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;
/** A guest-virtual address far from guest RAM, as a Hermit heap address would be. */
const VBUF = 0x4000_0000_0000;

/** Virtual pages VBUF, VBUF+4K, VBUF+8K → physical frames in reverse order. */
function scatteredPages(): Map<number, number> {
  return new Map([
    [VBUF, FAKE_RAM_BASE + 0x6000],
    [VBUF + FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x5000],
    [VBUF + 2 * FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x4000],
  ]);
}

function writeParamsV1(
  f: ReturnType<typeof fakeContext>,
  fd: number,
  buf: number,
  len: number,
): void {
  f.mem.writeI32(PARAM + WRITE_V1.fd, fd);
  f.mem.writeU64(PARAM + WRITE_V1.buf, buf);
  f.mem.writeU64(PARAM + WRITE_V1.len, len);
}

function writeParamsV2(
  f: ReturnType<typeof fakeContext>,
  fd: number,
  buf: number,
  len: number,
): void {
  f.mem.writeI32(PARAM + READ_WRITE_V2.fd, fd);
  f.mem.writeU64(PARAM + READ_WRITE_V2.buf, buf);
  f.mem.writeU64(PARAM + READ_WRITE_V2.len, len);
  f.mem.writeU64(PARAM + READ_WRITE_V2.ret, -ERRNO.ENOSYS); // as the test runtime presets it
}

Deno.test("stdioOutput() maps fd 1 to stdout, fd 2 to stderr and nothing else", () => {
  const { ctx } = fakeContext();
  assert.equal(stdioOutput(ctx, 1), ctx.stdout);
  assert.equal(stdioOutput(ctx, 2), ctx.stderr);
  for (const fd of [0, 3, -1, 1 << 30]) assert.equal(stdioOutput(ctx, fd), null);
});

Deno.test("writeStdioV1() writes a virtual buffer to stdout for fd 1, stderr for fd 2", () => {
  const f = fakeContext({ pages: scatteredPages() });
  f.mem.write(FAKE_RAM_BASE + 0x6000, utf8("to stdout\n"));
  writeParamsV1(f, 1, VBUF, 10);
  assert.equal(writeStdioV1(f.ctx, PARAM), RESUME);
  f.mem.write(FAKE_RAM_BASE + 0x6010, utf8("to stderr\n"));
  writeParamsV1(f, 2, VBUF + 0x10, 10);
  assert.equal(writeStdioV1(f.ctx, PARAM), RESUME);
  assert.deepEqual(f.output(), { stdout: "to stdout\n", stderr: "to stderr\n" });
});

Deno.test("writeStdioV1() follows the page map across non-contiguous frames", () => {
  const f = fakeContext({ pages: scatteredPages() });
  // 6 bytes at the end of page 0, a whole page 1, 5 bytes at the start of page 2.
  const start = VBUF + FAKE_PAGE_SIZE - 6;
  f.mem.write(FAKE_RAM_BASE + 0x6000 + FAKE_PAGE_SIZE - 6, utf8("first-"));
  f.mem.fill(FAKE_RAM_BASE + 0x5000, FAKE_PAGE_SIZE, 0x2e); // '.'
  f.mem.write(FAKE_RAM_BASE + 0x4000, utf8("last\n"));
  const len = 6 + FAKE_PAGE_SIZE + 5;
  writeParamsV1(f, 1, start, len);
  assert.equal(writeStdioV1(f.ctx, PARAM), RESUME);
  assert.equal(f.output().stdout, `first-${".".repeat(FAKE_PAGE_SIZE)}last\n`);
});

Deno.test("writeStdioV1() returns null for fds other than 1 and 2, writing nothing", () => {
  const f = fakeContext({ pages: scatteredPages() });
  for (const fd of [0, 3, 42, -1]) {
    writeParamsV1(f, fd, VBUF, 4);
    assert.equal(writeStdioV1(f.ctx, PARAM), null);
  }
  assert.equal(f.translateCalls, 0);
  assert.deepEqual(f.output(), { stdout: "", stderr: "" });
});

Deno.test("writeStdioV1() stops with a protocol error for an unmapped virtual buffer", () => {
  const f = fakeContext({ pages: scatteredPages() });
  // The last page is mapped, the one after it is not: nothing may be written.
  const start = VBUF + 3 * FAKE_PAGE_SIZE - 2;
  f.mem.write(FAKE_RAM_BASE + 0x4000 + FAKE_PAGE_SIZE - 2, utf8("ab"));
  writeParamsV1(f, 1, start, 4);
  assertProtocolStop(writeStdioV1(f.ctx, PARAM), {
    call: "FileWrite",
    port: V1.FILE_WRITE,
    mentions: [`virtual 0x${start.toString(16)} (4 bytes)`, "not mapped"],
  });
  assert.equal(f.output().stdout, "");
});

Deno.test("writeStdioV1() rejects a length larger than guest RAM without translating", () => {
  const f = fakeContext({ pages: scatteredPages() });
  writeParamsV1(f, 2, VBUF, f.mem.size + 1);
  assertProtocolStop(writeStdioV1(f.ctx, PARAM), {
    call: "FileWrite",
    port: V1.FILE_WRITE,
    mentions: [`(${f.mem.size + 1} bytes)`],
  });
  assert.equal(f.translateCalls, 0);
});

Deno.test("writeStdioV1() accepts an empty write", () => {
  const f = fakeContext({ pages: scatteredPages() });
  writeParamsV1(f, 1, VBUF, 0);
  assert.equal(writeStdioV1(f.ctx, PARAM), RESUME);
  assert.equal(f.output().stdout, "");
});

Deno.test("writeStdioV1() stops with a protocol error for a parameter block outside RAM", () => {
  const f = fakeContext();
  for (const arg of [0, FAKE_RAM_BASE - 20, f.mem.end - WRITE_V1.size + 1]) {
    assertProtocolStop(writeStdioV1(f.ctx, arg), {
      call: "FileWrite",
      port: V1.FILE_WRITE,
      mentions: [`parameter block at 0x${arg.toString(16)} (20 bytes)`],
    });
  }
});

Deno.test("writeStdioV1() reads the packed v1 layout: fd at 0, buf at 4, len at 12", () => {
  assert.deepEqual(WRITE_V1, { size: 20, fd: 0, buf: 4, len: 12 });
  const f = fakeContext(); // identity translation
  const text = FAKE_RAM_BASE + 0x800;
  f.mem.write(text, utf8("packed\n"));
  const raw = new DataView(new ArrayBuffer(20));
  raw.setInt32(0, 1, true);
  raw.setBigUint64(4, BigInt(text), true);
  raw.setBigUint64(12, 7n, true);
  f.mem.write(PARAM, new Uint8Array(raw.buffer));
  assert.equal(writeStdioV1(f.ctx, PARAM), RESUME);
  assert.equal(f.output().stdout, "packed\n");
});

Deno.test("writeVirtual() returns false for a length beyond guest RAM", () => {
  const f = fakeContext();
  assert.equal(writeVirtual(f.ctx, f.ctx.stdout, FAKE_RAM_BASE, f.mem.size + 1), false);
  assert.equal(writeVirtual(f.ctx, f.ctx.stdout, FAKE_RAM_BASE, 2 ** 60), false);
  assert.equal(f.translateCalls, 0);
});

Deno.test("writeStdioV2() writes a physical buffer and sets ret = len (fd 1 and fd 2)", () => {
  const f = fakeContext();
  const text = FAKE_RAM_BASE + 0x800;
  f.mem.write(text, utf8("out line\nerr line\n"));
  writeParamsV2(f, 1, text, 9);
  assert.equal(writeStdioV2(f.ctx, PARAM), true);
  assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), 9);
  writeParamsV2(f, 2, text + 9, 9);
  assert.equal(writeStdioV2(f.ctx, PARAM), true);
  assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), 9);
  assert.deepEqual(f.output(), { stdout: "out line\n", stderr: "err line\n" });
  assert.equal(f.translateCalls, 0, "v2 buffers are physical");
});

Deno.test("writeStdioV2() sets ret = -EFAULT for a buffer not wholly in RAM", () => {
  for (const [buf, len] of [[FAKE_RAM_BASE + 0xfff0, 0x20], [0x100, 4], [FAKE_RAM_BASE, 2 ** 53]]) {
    const f = fakeContext();
    writeParamsV2(f, 1, buf!, len!);
    assert.equal(writeStdioV2(f.ctx, PARAM), true);
    assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EFAULT);
    assert.equal(f.output().stdout, "");
  }
});

Deno.test("writeStdioV2() returns false for other fds and leaves ret alone", () => {
  const f = fakeContext();
  for (const fd of [0, 3, -1]) {
    writeParamsV2(f, fd, FAKE_RAM_BASE, 4);
    assert.equal(writeStdioV2(f.ctx, PARAM), false);
    assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.ENOSYS);
  }
});

Deno.test("READ_WRITE_V2 is the C layout: len 0, ret 8, buf 16, fd 24", () => {
  assert.deepEqual(READ_WRITE_V2, { size: 28, len: 0, ret: 8, buf: 16, fd: 24 });
});
