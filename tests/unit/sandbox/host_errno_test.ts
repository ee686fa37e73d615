/**
 * Unit tests of `src/sandbox/host_errno.ts`: Deno errors, `code` strings and
 * "(os error N)" messages become the closest Hermit errno, never EPERM for an
 * unknown one; `NotCapable` messages name the missing flag. Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { deniedPermission, errnoFromCode, hostErrno } from "../../../src/sandbox/host_errno.ts";

function withCode<E extends Error>(error: E, code: string): E {
  Object.assign(error, { code });
  return error;
}

Deno.test("hostErrno() maps each Deno error class", () => {
  const cases: [Error, number][] = [
    [new Deno.errors.NotFound("x"), ERRNO.ENOENT],
    [new Deno.errors.PermissionDenied("x"), ERRNO.EACCES],
    [new Deno.errors.NotCapable("x"), ERRNO.EACCES],
    [new Deno.errors.AlreadyExists("x"), ERRNO.EEXIST],
    [new Deno.errors.IsADirectory("x"), ERRNO.EISDIR],
    [new Deno.errors.NotADirectory("x"), ERRNO.ENOTDIR],
    [new Deno.errors.InvalidData("x"), ERRNO.EINVAL],
    [new Deno.errors.TimedOut("x"), ERRNO.ETIMEDOUT],
    [new Deno.errors.Interrupted("x"), ERRNO.EINTR],
    [new Deno.errors.WouldBlock("x"), ERRNO.EAGAIN],
    [new Deno.errors.WriteZero("x"), ERRNO.EIO],
    [new Deno.errors.UnexpectedEof("x"), ERRNO.EIO],
    [new Deno.errors.BadResource("x"), ERRNO.EBADF],
    [new Deno.errors.Busy("x"), ERRNO.EBUSY],
    [new Deno.errors.FilesystemLoop("x"), ERRNO.ELOOP],
    [new Deno.errors.BrokenPipe("x"), ERRNO.EPIPE],
    [new Deno.errors.NotSupported("x"), ERRNO.EOPNOTSUPP],
  ];
  for (const [error, errno] of cases) assert.equal(hostErrno(error), errno, error.name);
});

Deno.test("hostErrno() prefers the error's code string", () => {
  const cases: [string, number][] = [
    ["ENOSPC", ERRNO.ENOSPC],
    ["EROFS", ERRNO.EROFS],
    ["EMFILE", ERRNO.EMFILE],
    ["ENFILE", ERRNO.ENFILE],
    ["ENOTEMPTY", ERRNO.ENOTEMPTY],
    ["EXDEV", ERRNO.EXDEV],
    ["EFBIG", ERRNO.EFBIG],
    ["ENAMETOOLONG", ERRNO.ENAMETOOLONG],
    ["ETXTBSY", ERRNO.ETXTBSY],
    ["EDQUOT", 122],
    ["ENOTSUP", ERRNO.EOPNOTSUPP],
    ["EWOULDBLOCK", ERRNO.EAGAIN],
    ["ESTALE", 116],
  ];
  for (const [code, errno] of cases) {
    assert.equal(hostErrno(withCode(new Error("x"), code)), errno, code);
    assert.equal(errnoFromCode(code), errno, code);
  }
  // The code wins over the class (Deno's generic errors carry it).
  assert.equal(hostErrno(withCode(new Deno.errors.NotFound("x"), "ENOENT")), ERRNO.ENOENT);
  assert.equal(hostErrno(withCode(new TypeError("NUL byte"), "EINVAL")), ERRNO.EINVAL);
  assert.equal(errnoFromCode("toString"), 0);
  assert.equal(errnoFromCode("ENOPE"), 0);
});

Deno.test("hostErrno() reads '(os error N)' when there is no code or class", () => {
  assert.equal(hostErrno(new Error("No space left on device (os error 28)")), ERRNO.ENOSPC);
  assert.equal(hostErrno(new Error("Disk quota exceeded (os error 122): write")), 122);
  assert.equal(hostErrno(new Error("weird (os error 9999)")), ERRNO.EIO);
});

Deno.test("hostErrno() maps an unknown error to EIO, never EPERM", () => {
  assert.equal(hostErrno(new Error("something odd")), ERRNO.EIO);
  assert.equal(hostErrno(withCode(new Error("x"), "EUNKNOWN")), ERRNO.EIO);
  assert.equal(hostErrno("a string"), ERRNO.EIO);
  assert.equal(hostErrno(undefined), ERRNO.EIO);
  assert.equal(hostErrno(new TypeError("bad argument")), ERRNO.EINVAL);
  assert.equal(hostErrno(new RangeError("bad offset")), ERRNO.EINVAL);
});

Deno.test("deniedPermission() names the access, flag and path of a NotCapable error", () => {
  assert.deepEqual(
    deniedPermission(
      new Deno.errors.NotCapable(
        'Requires write access to "/w/out.txt", run again with the --allow-write flag',
      ),
    ),
    { access: "write", flag: "--allow-write", path: "/w/out.txt" },
  );
  assert.deepEqual(
    deniedPermission(
      new Deno.errors.NotCapable(
        "Requires write access to <TMP>, run again with the --allow-write flag",
      ),
    ),
    { access: "write", flag: "--allow-write", path: undefined },
  );
  assert.deepEqual(deniedPermission(new Deno.errors.NotCapable("something else")), {
    access: "file",
    flag: "--allow-read/--allow-write",
    path: undefined,
  });
  assert.equal(deniedPermission(new Deno.errors.PermissionDenied("EACCES")), undefined);
  assert.equal(deniedPermission(new Error("x")), undefined);
});

Deno.test("deniedPermission() understands what Deno really throws without permissions", () => {
  let thrown: unknown;
  try {
    Deno.openSync("/etc/hostname");
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof Deno.errors.NotCapable);
  assert.deepEqual(deniedPermission(thrown), {
    access: "read",
    flag: "--allow-read",
    path: "/etc/hostname",
  });
  assert.equal(hostErrno(thrown), ERRNO.EACCES);
});
