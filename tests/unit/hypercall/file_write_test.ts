/**
 * Unit tests of the FileWrite hypercall (`src/hypercall/file.ts`), v1 and v2:
 * stdio to stdout/stderr, file writes piece by piece, short writes, errors
 * through onWriteError, buffers outside guest memory and a context without
 * files. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { READ_WRITE_V2, WRITE_V1 } from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import { fileWriteV1, fileWriteV2 } from "../../../src/hypercall/file.ts";
import {
  FAKE_PAGE_SIZE,
  FAKE_RAM_BASE,
  fakeContext,
  utf8,
} from "../../_helpers/hypercall_context.ts";
import {
  assertUntouched,
  BUF,
  FakeFiles,
  PAGES,
  PARAM,
  ramOffset,
  rig,
  rwV2Params,
  splitHello,
  TEXT,
  VBASE,
  writeV1Params,
} from "../../_helpers/file_hypercall_rig.ts";

// ---- FileWrite v1 ----------------------------------------------------------------------

Deno.test("fileWriteV1() sends fds 1 and 2 to stdout and stderr across non-contiguous frames", () => {
  for (const [fd, stream] of [[1, "stdout"], [2, "stderr"]] as const) {
    const r = rig({ pages: PAGES });
    splitHello(r);
    writeV1Params(r, fd, VBASE + FAKE_PAGE_SIZE - 6, 12);
    assert.equal(fileWriteV1(r.ctx, PARAM), RESUME);
    const out = r.f.output();
    assert.equal(out[stream], "hello world\n");
    assert.equal(out[stream === "stdout" ? "stderr" : "stdout"], "");
    assert.deepEqual(r.files.calls, []);
    assert.deepEqual(r.writeErrors, []);
    assertUntouched(r, WRITE_V1.size, 0x100); // v1 has no result field
  }
});

Deno.test("fileWriteV1() writes stdio output even without files in the context", () => {
  const r = rig({ files: null });
  r.f.mem.write(TEXT, utf8("out\n"));
  writeV1Params(r, 1, TEXT, 4);
  fileWriteV1(r.ctx, PARAM);
  assert.equal(r.f.output().stdout, "out\n");
  assert.deepEqual(r.writeErrors, []);
});

Deno.test("fileWriteV1() reports an unmapped stdio buffer through onWriteError, writing nothing", () => {
  const r = rig({ pages: PAGES });
  r.f.mem.fill(FAKE_RAM_BASE + 0x4000, FAKE_PAGE_SIZE, 0x41);
  writeV1Params(r, 1, VBASE + 3 * FAKE_PAGE_SIZE - 4, 8); // runs into the unmapped page 3
  assert.equal(fileWriteV1(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.writeErrors, [[1, -ERRNO.EFAULT]]);
  assert.deepEqual(r.f.output(), { stdout: "", stderr: "" });
});

Deno.test("fileWriteV1() writes a file fd piece by piece through the files", () => {
  const r = rig({ pages: PAGES });
  splitHello(r);
  writeV1Params(r, 3, VBASE + FAKE_PAGE_SIZE - 6, 12);
  fileWriteV1(r.ctx, PARAM);
  assert.deepEqual(r.files.calls, [
    {
      op: "write",
      fd: 3,
      offset: ramOffset(FAKE_RAM_BASE + 0x5000 + FAKE_PAGE_SIZE - 6),
      data: "hello ",
    },
    { op: "write", fd: 3, offset: ramOffset(FAKE_RAM_BASE + 0x3000), data: "world\n" },
  ]);
  assert.deepEqual(r.writeErrors, []);
  assert.deepEqual(r.f.output(), { stdout: "", stderr: "" });
});

Deno.test("fileWriteV1() reports a failed file write through onWriteError (no ret field)", () => {
  for (const fd of [0, 3, -1]) {
    const r = rig();
    r.f.mem.write(TEXT, utf8("data"));
    r.files.writeResults = [-ERRNO.EBADF];
    writeV1Params(r, fd, TEXT, 4);
    assert.equal(fileWriteV1(r.ctx, PARAM), RESUME);
    assert.deepEqual(r.writeErrors, [[fd, -ERRNO.EBADF]], `fd ${fd}`);
    assertUntouched(r, WRITE_V1.size, 0x100);
  }
});

Deno.test("fileWriteV1() reports a short file write as −EIO", () => {
  const r = rig();
  r.f.mem.write(TEXT, utf8("data"));
  r.files.writeResults = [2];
  writeV1Params(r, 3, TEXT, 4);
  fileWriteV1(r.ctx, PARAM);
  assert.deepEqual(r.writeErrors, [[3, -ERRNO.EIO]]);
});

Deno.test("fileWriteV1() stops at a short write: later pieces must not land after a gap", () => {
  // The host wrote only part of the first piece (say, the disk filled up). Writing
  // the next piece anyway would put "world\n" straight after "hel" in the file.
  const r = rig({ pages: PAGES });
  splitHello(r);
  r.files.writeResults = [3];
  writeV1Params(r, 3, VBASE + FAKE_PAGE_SIZE - 6, 12);
  fileWriteV1(r.ctx, PARAM);
  assert.equal(r.files.calls.length, 1, JSON.stringify(r.files.calls));
  assert.deepEqual(r.writeErrors, [[3, -ERRNO.EIO]]);
});

Deno.test("fileWriteV1() reports an unmapped file buffer as −EFAULT without writing", () => {
  const r = rig({ pages: PAGES });
  writeV1Params(r, 3, VBASE + 2 * FAKE_PAGE_SIZE, FAKE_PAGE_SIZE + 1);
  fileWriteV1(r.ctx, PARAM);
  assert.deepEqual(r.files.calls, []);
  assert.deepEqual(r.writeErrors, [[3, -ERRNO.EFAULT]]);
});

Deno.test("fileWriteV1() reports a length larger than guest RAM as −EFAULT", () => {
  for (const fd of [1, 3]) {
    const r = rig();
    writeV1Params(r, fd, BUF, r.f.mem.size + 1);
    fileWriteV1(r.ctx, PARAM);
    assert.deepEqual(r.writeErrors, [[fd, -ERRNO.EFAULT]]);
    assert.deepEqual(r.files.calls, []);
  }
});

Deno.test("fileWriteV1() without files in the context reports −EBADF for a file fd", () => {
  const r = rig({ files: null });
  writeV1Params(r, 3, TEXT, 4);
  assert.equal(fileWriteV1(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.writeErrors, [[3, -ERRNO.EBADF]]);
});

Deno.test("fileWriteV1() without onWriteError in the context drops the error quietly", () => {
  const f = fakeContext();
  const files = new FakeFiles();
  files.writeResults = [-ERRNO.EIO];
  f.mem.writeI32(PARAM + WRITE_V1.fd, 3);
  f.mem.writeU64(PARAM + WRITE_V1.buf, TEXT);
  f.mem.writeU64(PARAM + WRITE_V1.len, 4);
  assert.equal(fileWriteV1({ ...f.ctx, files }, PARAM), RESUME);
  assert.equal(files.calls.length, 1);
});

// ---- FileWrite v2 ----------------------------------------------------------------------

Deno.test("fileWriteV2() sends fds 1 and 2 to stdout and stderr with ret = len", () => {
  for (const [fd, stream] of [[1, "stdout"], [2, "stderr"]] as const) {
    for (const withFiles of [true, false]) {
      const r = withFiles ? rig() : rig({ files: null });
      r.f.mem.write(TEXT, utf8("v2 line\n"));
      rwV2Params(r, fd, TEXT, 8);
      assert.equal(fileWriteV2(r.ctx, PARAM), RESUME);
      assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), 8);
      const out = r.f.output();
      assert.equal(out[stream], "v2 line\n");
      assert.equal(out[stream === "stdout" ? "stderr" : "stdout"], "");
      assert.deepEqual(r.files.calls, []);
      assertUntouched(r, READ_WRITE_V2.size, 0x100);
    }
  }
});

Deno.test("fileWriteV2() writes a file fd through the files and returns their result", () => {
  for (const result of [4, 2, -ERRNO.ENOSPC]) {
    const r = rig({ pages: PAGES });
    r.f.mem.write(TEXT, utf8("data"));
    r.files.writeResults = [result];
    rwV2Params(r, 5, TEXT, 4);
    fileWriteV2(r.ctx, PARAM);
    assert.deepEqual(r.files.calls, [
      { op: "write", fd: 5, offset: ramOffset(TEXT), data: "data" },
    ]);
    assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), result);
    assert.equal(r.f.translateCalls, 0);
    assert.deepEqual(r.writeErrors, []); // v2 has a ret field
  }
});

Deno.test("fileWriteV2() gives −EFAULT for a buffer outside guest RAM, even for fd 1", () => {
  for (const fd of [1, 2, 3]) {
    const r = rig();
    const end = r.f.mem.end;
    for (const [buf, len] of [[0, 4], [end - 2, 3], [FAKE_RAM_BASE - 4, 8], [BUF, 2 ** 60]]) {
      rwV2Params(r, fd, buf!, len!);
      fileWriteV2(r.ctx, PARAM);
      assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EFAULT);
    }
    assert.deepEqual(r.files.calls, []);
    assert.deepEqual(r.f.output(), { stdout: "", stderr: "" });
  }
});

Deno.test("fileWriteV2() without files in the context gives −EBADF for a file fd", () => {
  const r = rig({ files: null });
  rwV2Params(r, 3, TEXT, 4);
  fileWriteV2(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + READ_WRITE_V2.ret), -ERRNO.EBADF);
});
