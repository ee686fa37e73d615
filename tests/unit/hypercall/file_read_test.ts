/**
 * Unit tests of the FileRead hypercall (`src/hypercall/file.ts`), v1 and v2:
 * parameter offsets, v1 buffers filled piece by piece through a made-up page
 * map, short reads, −errno, buffers outside guest memory and a context without
 * files. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { READ_V1, READ_WRITE_V2 } from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import { fileReadV1, fileReadV2 } from "../../../src/hypercall/file.ts";
import { FAKE_RAM_BASE } from "../../_helpers/hypercall_context.ts";
import {
  assertUntouched,
  BUF,
  PAGES,
  PARAM,
  pattern,
  ramOffset,
  readV1Params,
  rig,
  rwV2Params,
  VBASE,
} from "../../_helpers/file_hypercall_rig.ts";

// ---- FileRead v1 -----------------------------------------------------------------------

Deno.test("fileReadV1() reads {fd @0, buf @4, len @12} (packed) and writes the i64 ret @20", () => {
  const r = rig(); // identity translation
  r.files.source = pattern(100);
  readV1Params(r, 4, BUF, 64);
  assert.equal(fileReadV1(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.files.calls, [{ op: "read", fd: 4, offset: ramOffset(BUF), len: 64 }]);
  assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), 64);
  assert.deepEqual(r.f.mem.bytes(BUF, 64), pattern(64));
  assertUntouched(r, READ_V1.size, 0x100);
});

Deno.test("fileReadV1() fills each physically contiguous piece of a virtual buffer in turn", () => {
  const r = rig({ pages: PAGES });
  r.files.source = pattern(0x1200);
  // 0x100 bytes at the end of page 0 (frame 5), then 0x1100 over pages 1–2 (frames 3–4).
  readV1Params(r, 3, VBASE + 0xf00, 0x1200);
  fileReadV1(r.ctx, PARAM);
  assert.deepEqual(r.files.calls, [
    { op: "read", fd: 3, offset: ramOffset(FAKE_RAM_BASE + 0x5f00), len: 0x100 },
    { op: "read", fd: 3, offset: ramOffset(FAKE_RAM_BASE + 0x3000), len: 0x1100 },
  ]);
  assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), 0x1200);
  const all = pattern(0x1200);
  assert.deepEqual(r.f.mem.bytes(FAKE_RAM_BASE + 0x5f00, 0x100), all.subarray(0, 0x100));
  assert.deepEqual(r.f.mem.bytes(FAKE_RAM_BASE + 0x3000, 0x1100), all.subarray(0x100));
  assert.equal(r.f.translateCalls, 1);
});

Deno.test("fileReadV1() stops at the first short read and returns the count so far", () => {
  const r = rig({ pages: PAGES });
  r.files.source = pattern(0x1200);
  r.files.readLimits = [0x80]; // the first piece (0x100) comes back short
  readV1Params(r, 3, VBASE + 0xf00, 0x1200);
  fileReadV1(r.ctx, PARAM);
  assert.equal(r.files.calls.length, 1);
  assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), 0x80);

  const eof = rig({ pages: PAGES });
  eof.files.source = pattern(0x150); // EOF inside the second piece
  readV1Params(eof, 3, VBASE + 0xf00, 0x1200);
  fileReadV1(eof.ctx, PARAM);
  assert.equal(eof.files.calls.length, 2);
  assert.equal(eof.f.mem.readI64(PARAM + READ_V1.ret), 0x150);
});

Deno.test("fileReadV1() returns −errno for a failure before any byte, the count after some", () => {
  const first = rig({ pages: PAGES });
  first.files.readLimits = [-ERRNO.EIO];
  readV1Params(first, 3, VBASE + 0xf00, 0x200);
  fileReadV1(first.ctx, PARAM);
  assert.equal(first.files.calls.length, 1);
  assert.equal(first.f.mem.readI64(PARAM + READ_V1.ret), -ERRNO.EIO);

  const later = rig({ pages: PAGES });
  later.files.source = pattern(0x1000);
  later.files.readLimits = [0x100, -ERRNO.EIO];
  readV1Params(later, 3, VBASE + 0xf00, 0x200);
  fileReadV1(later.ctx, PARAM);
  assert.equal(later.files.calls.length, 2);
  assert.equal(later.f.mem.readI64(PARAM + READ_V1.ret), 0x100);
});

Deno.test("fileReadV1() gives −EFAULT for a buffer with an unmapped page, reading nothing", () => {
  const r = rig({ pages: PAGES });
  r.files.source = pattern(0x4000);
  for (const [buf, len] of [[VBASE + 0x2f00, 0x200], [VBASE - 0x10, 0x20], [0x1234, 1]]) {
    readV1Params(r, 3, buf!, len!);
    fileReadV1(r.ctx, PARAM);
    assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), -ERRNO.EFAULT, `buf 0x${buf!.toString(16)}`);
  }
  assert.deepEqual(r.files.calls, []);
});

Deno.test("fileReadV1() gives −EFAULT for a length larger than guest RAM", () => {
  const r = rig();
  readV1Params(r, 3, BUF, r.f.mem.size + 1);
  fileReadV1(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), -ERRNO.EFAULT);
  assert.deepEqual(r.files.calls, []);
});

Deno.test("fileReadV1() without files in the context gives −EBADF", () => {
  const r = rig({ files: null });
  readV1Params(r, 3, BUF, 16);
  fileReadV1(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_V1.ret), -ERRNO.EBADF);
});

// ---- FileRead v2 -----------------------------------------------------------------------

Deno.test("fileReadV2() reads {len @0, buf @16, fd @24} and writes the i64 ret @8", () => {
  const r = rig({ pages: PAGES }); // v2 buffers are physical: the page map must not matter
  r.files.source = pattern(0x3000);
  rwV2Params(r, 6, BUF + 0xf00, 0x1200);
  assert.equal(fileReadV2(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.files.calls, [
    { op: "read", fd: 6, offset: ramOffset(BUF + 0xf00), len: 0x1200 },
  ]);
  assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), 0x1200);
  assert.deepEqual(r.f.mem.bytes(BUF + 0xf00, 0x1200), pattern(0x1200));
  assert.equal(r.f.translateCalls, 0);
  assertUntouched(r, READ_WRITE_V2.size, 0x100);
});

Deno.test("fileReadV2() passes short counts and −errno through", () => {
  const r = rig();
  r.files.source = pattern(10);
  rwV2Params(r, 3, BUF, 64);
  fileReadV2(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), 10);
  r.files.readLimits = [Infinity, -ERRNO.EBADF];
  fileReadV2(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EBADF);
});

Deno.test("fileReadV2() gives −EFAULT for a buffer not wholly inside guest RAM", () => {
  const r = rig();
  const end = r.f.mem.end;
  for (const [buf, len] of [[0, 16], [FAKE_RAM_BASE - 1, 2], [end - 8, 9], [BUF, 2 ** 53]]) {
    rwV2Params(r, 3, buf!, len!);
    fileReadV2(r.ctx, PARAM);
    assert.equal(
      r.f.mem.readI64(PARAM + READ_WRITE_V2.ret),
      -ERRNO.EFAULT,
      `buf 0x${buf!.toString(16)} len ${len}`,
    );
  }
  assert.deepEqual(r.files.calls, []);
  // The last bytes of RAM are fine.
  rwV2Params(r, 3, end - 8, 8);
  fileReadV2(r.ctx, PARAM);
  assert.equal(r.files.calls.length, 1);
});

Deno.test("fileReadV2() without files in the context gives −EBADF", () => {
  const r = rig({ files: null });
  rwV2Params(r, 0, BUF, 16);
  fileReadV2(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EBADF);
});
