/**
 * Unit tests of the FileLseek hypercall (`src/hypercall/file.ts`), v1 and v2:
 * parameter offsets, the result in the offset field, −errno, and a context
 * without files. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { LSEEK_V1, LSEEK_V2 } from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import { fileLseekV1, fileLseekV2 } from "../../../src/hypercall/file.ts";
import { assertUntouched, PARAM, rig } from "../../_helpers/file_hypercall_rig.ts";

// ---- FileLseek -------------------------------------------------------------------------

Deno.test("fileLseekV1() reads {fd @0, offset @4, whence @12} and puts the result in offset", () => {
  const r = rig();
  r.f.mem.writeI32(PARAM + LSEEK_V1.fd, 3);
  r.f.mem.writeU64(PARAM + LSEEK_V1.offset, -5);
  r.f.mem.writeI32(PARAM + LSEEK_V1.whence, 2);
  r.files.lseekResult = 2 ** 40 + 3;
  assert.equal(fileLseekV1(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.files.calls, [{ op: "lseek", fd: 3, offset: -5, whence: 2 }]);
  assert.equal(r.f.mem.readI64(PARAM + LSEEK_V1.offset), 2 ** 40 + 3);
  assert.equal(r.f.mem.readI32(PARAM + LSEEK_V1.fd), 3);
  assert.equal(r.f.mem.readI32(PARAM + LSEEK_V1.whence), 2);
  assertUntouched(r, LSEEK_V1.size, 0x100);
});

Deno.test("fileLseekV1() writes −errno into offset (dhyve reports the errno, uhyve −1)", () => {
  const r = rig();
  r.f.mem.writeI32(PARAM + LSEEK_V1.fd, 3);
  r.f.mem.writeU64(PARAM + LSEEK_V1.offset, 0);
  r.f.mem.writeI32(PARAM + LSEEK_V1.whence, 7);
  r.files.lseekResult = -ERRNO.EINVAL;
  fileLseekV1(r.ctx, PARAM);
  assert.deepEqual(r.files.calls, [{ op: "lseek", fd: 3, offset: 0, whence: 7 }]);
  assert.equal(r.f.mem.readI64(PARAM + LSEEK_V1.offset), -ERRNO.EINVAL);
});

Deno.test("fileLseekV2() reads {offset @0, whence @8 (u32), fd @12} and puts the result in offset", () => {
  const r = rig();
  r.f.mem.writeU64(PARAM + LSEEK_V2.offset, 4096);
  r.f.mem.writeU32(PARAM + LSEEK_V2.whence, 1);
  r.f.mem.writeI32(PARAM + LSEEK_V2.fd, 9);
  r.files.lseekResult = 5000;
  assert.equal(fileLseekV2(r.ctx, PARAM), RESUME);
  assert.deepEqual(r.files.calls, [{ op: "lseek", fd: 9, offset: 4096, whence: 1 }]);
  assert.equal(r.f.mem.readI64(PARAM + LSEEK_V2.offset), 5000);
  assert.equal(r.f.mem.readI32(PARAM + LSEEK_V2.fd), 9);
  assertUntouched(r, LSEEK_V2.size, 0x100);

  r.f.mem.writeU32(PARAM + LSEEK_V2.whence, 0xffff_ffff);
  r.files.lseekResult = -ERRNO.EINVAL;
  fileLseekV2(r.ctx, PARAM);
  assert.deepEqual(r.files.calls[1], { op: "lseek", fd: 9, offset: 5000, whence: 0xffff_ffff });
  assert.equal(r.f.mem.readI64(PARAM + LSEEK_V2.offset), -ERRNO.EINVAL);
});

Deno.test("fileLseekV1/V2() without files in the context give −EBADF in offset", () => {
  const r = rig({ files: null });
  r.f.mem.writeI32(PARAM + LSEEK_V1.fd, 3);
  r.f.mem.writeI32(PARAM + LSEEK_V1.whence, 0);
  fileLseekV1(r.ctx, PARAM);
  assert.equal(r.f.mem.readI64(PARAM + LSEEK_V1.offset), -ERRNO.EBADF);
  const r2 = rig({ files: null });
  r2.f.mem.writeI32(PARAM + LSEEK_V2.fd, 3);
  r2.f.mem.writeU32(PARAM + LSEEK_V2.whence, 0);
  fileLseekV2(r2.ctx, PARAM);
  assert.equal(r2.f.mem.readI64(PARAM + LSEEK_V2.offset), -ERRNO.EBADF);
});
