/**
 * Unit tests of the FileOpen, FileClose and FileUnlink hypercalls
 * (`src/hypercall/file.ts`), v1 and v2, against a fake file table: parameter
 * layouts, flag masking, path decoding (EFAULT, ENAMETOOLONG, EINVAL), stdio
 * fds and a context without files. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import {
  CLOSE,
  LSEEK_V1,
  LSEEK_V2,
  OPEN,
  READ_V1,
  READ_WRITE_V2,
  UNLINK,
  WRITE_V1,
} from "../../../src/hypercall/abi.ts";
import { RESUME } from "../../../src/hypercall/context.ts";
import { ALLOWED_OPEN_FLAGS, PATH_MAX, readGuestPath } from "../../../src/hypercall/file.ts";
import { FAKE_RAM_BASE } from "../../_helpers/hypercall_context.ts";
import {
  assertUntouched,
  BUF,
  CLOSES,
  openParams,
  OPENS,
  PARAM,
  rig,
  TEXT,
  UNLINKS,
  writePath,
} from "../../_helpers/file_hypercall_rig.ts";

// ---- layouts ---------------------------------------------------------------------------

Deno.test("file hypercall layouts: v1 structs are packed, v2 read/write/lseek are reordered", () => {
  assert.deepEqual(OPEN, { size: 20, name: 0, flags: 8, mode: 12, ret: 16 });
  assert.deepEqual(CLOSE, { size: 8, fd: 0, ret: 4 });
  assert.deepEqual(UNLINK, { size: 12, name: 0, ret: 8 });
  assert.deepEqual(WRITE_V1, { size: 20, fd: 0, buf: 4, len: 12 });
  assert.deepEqual(READ_V1, { size: 28, fd: 0, buf: 4, len: 12, ret: 20 });
  assert.deepEqual(LSEEK_V1, { size: 16, fd: 0, offset: 4, whence: 12 });
  // The C struct is 32 bytes with 4 bytes of tail padding, which the host never touches.
  assert.deepEqual(READ_WRITE_V2, { size: 28, len: 0, ret: 8, buf: 16, fd: 24 });
  assert.deepEqual(LSEEK_V2, { size: 16, offset: 0, whence: 8, fd: 12 });
  assert.equal(ALLOWED_OPEN_FLAGS, 0x106c3);
  assert.equal(PATH_MAX, 4096);
});

// ---- FileOpen --------------------------------------------------------------------------

Deno.test("fileOpenV1/V2() read {name, flags, mode} and write only the i32 ret at 16", () => {
  for (const { version, open } of OPENS) {
    const r = rig();
    writePath(r, TEXT, "/root/data/hello.txt");
    openParams(r, TEXT, 0o101, 0o644); // O_WRONLY | O_CREAT
    r.files.openResult = 7;
    assert.equal(open(r.ctx, PARAM), RESUME);
    assert.deepEqual(r.files.calls, [
      { op: "open", path: "/root/data/hello.txt", flags: 0o101, mode: 0o644 },
    ], `v${version}`);
    assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), 7);
    assertUntouched(r, OPEN.size, 0x100);
  }
});

Deno.test("fileOpenV1/V2() mask the flags with ALLOWED_OPEN_FLAGS", () => {
  const cases: [number, number][] = [
    [-1, ALLOWED_OPEN_FLAGS],
    [0o4000 | 0o2000000 | 0o100, 0o100], // O_NONBLOCK | O_CLOEXEC dropped, O_CREAT kept
    [0o40000 | 0o2, 0o2], // O_DIRECT dropped
    [0o200000 | 0o1000 | 0o2000 | 0o200, 0o200000 | 0o1000 | 0o2000 | 0o200],
    [0x8000_0000 | 3, 3],
  ];
  for (const { version, open } of OPENS) {
    for (const [given, passed] of cases) {
      const r = rig();
      writePath(r, TEXT, "/f");
      openParams(r, TEXT, given, 0);
      open(r.ctx, PARAM);
      const [call] = r.files.calls;
      assert.ok(call?.op === "open");
      assert.equal(call.flags, passed, `v${version} flags 0x${(given >>> 0).toString(16)}`);
    }
  }
});

Deno.test("fileOpenV1/V2() pass the mode and the open result (fd or −errno) through", () => {
  for (const { open } of OPENS) {
    for (const [mode, result] of [[0o600, 3], [-1, -ERRNO.EACCES], [0o7777, -ERRNO.ENOENT]]) {
      const r = rig();
      writePath(r, TEXT, "/x");
      openParams(r, TEXT, 0, mode!);
      r.files.openResult = result!;
      open(r.ctx, PARAM);
      assert.deepEqual(r.files.calls, [{ op: "open", path: "/x", flags: 0, mode }]);
      assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), result);
    }
  }
});

Deno.test("fileOpenV1/V2() decode the path as UTF-8 up to its NUL, unchanged", () => {
  for (const { open } of OPENS) {
    for (const path of ["/root/dätä/ünïcödé 🦀.txt", "relative/a/../b", "", "//x/./y/"]) {
      const r = rig();
      writePath(r, TEXT, path);
      openParams(r, TEXT, 0, 0);
      open(r.ctx, PARAM);
      assert.deepEqual(r.files.calls, [{ op: "open", path, flags: 0, mode: 0 }]);
    }
  }
});

Deno.test("fileOpenV1/V2() give −EFAULT for a path that starts outside guest memory", () => {
  for (const { open } of OPENS) {
    const r = rig();
    for (const name of [0, FAKE_RAM_BASE - 1, r.f.mem.end, 0xffff_ffff_ffff]) {
      openParams(r, name, 0, 0);
      assert.equal(open(r.ctx, PARAM), RESUME);
      assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), -ERRNO.EFAULT, `name 0x${name.toString(16)}`);
    }
    assert.deepEqual(r.files.calls, []);
  }
});

Deno.test("fileOpenV1/V2() give −EFAULT for a path that runs to the end of RAM without a NUL", () => {
  for (const { open } of OPENS) {
    const r = rig();
    const start = r.f.mem.end - 100;
    r.f.mem.fill(start, 100, 0x61); // "aaa…" up to the last byte
    openParams(r, start, 0, 0);
    open(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), -ERRNO.EFAULT);
    // One byte shorter, with the NUL in the last byte of RAM: fine.
    r.f.mem.writeU8(r.f.mem.end - 1, 0);
    open(r.ctx, PARAM);
    assert.deepEqual(r.files.calls, [{ op: "open", path: "a".repeat(99), flags: 0, mode: 0 }]);
  }
});

Deno.test("fileOpenV1/V2() give −ENAMETOOLONG when no NUL comes within PATH_MAX bytes", () => {
  for (const { open } of OPENS) {
    const r = rig();
    r.f.mem.fill(BUF, PATH_MAX + 10, 0x62);
    // PATH_MAX − 1 characters and the NUL: the longest accepted path.
    r.f.mem.writeU8(BUF + PATH_MAX - 1, 0);
    openParams(r, BUF, 0, 0);
    open(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), 3);
    assert.equal((r.files.calls[0] as { path: string }).path.length, PATH_MAX - 1);
    // PATH_MAX characters before the NUL: too long.
    r.f.mem.writeU8(BUF + PATH_MAX - 1, 0x62);
    r.f.mem.writeU8(BUF + PATH_MAX, 0);
    open(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), -ERRNO.ENAMETOOLONG);
    assert.equal(r.files.calls.length, 1);
  }
});

Deno.test("fileOpenV1/V2() give −EINVAL for a path that is not UTF-8", () => {
  const bad = [
    [0x2f, 0xff, 0x61], // 0xff never occurs in UTF-8
    [0x2f, 0xc3], // truncated sequence
    [0xed, 0xa0, 0x80], // an encoded surrogate
    [0xc0, 0xaf], // overlong "/"
  ];
  for (const { open } of OPENS) {
    for (const bytes of bad) {
      const r = rig();
      writePath(r, TEXT, new Uint8Array(bytes));
      openParams(r, TEXT, 0, 0);
      open(r.ctx, PARAM);
      assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), -ERRNO.EINVAL, `bytes ${bytes}`);
      assert.deepEqual(r.files.calls, []);
    }
  }
});

Deno.test("fileOpenV1/V2() without files in the context give −ENOENT", () => {
  for (const { open } of OPENS) {
    const r = rig({ files: null });
    writePath(r, TEXT, "/root/data/x");
    openParams(r, TEXT, 0o100, 0o644);
    assert.equal(open(r.ctx, PARAM), RESUME);
    assert.equal(r.f.mem.readI32(PARAM + OPEN.ret), -ERRNO.ENOENT);
  }
});

Deno.test("readGuestPath() returns the path or −EFAULT/−ENAMETOOLONG/−EINVAL", () => {
  const r = rig();
  writePath(r, TEXT, "/a/b");
  assert.equal(readGuestPath(r.ctx, TEXT), "/a/b");
  assert.equal(readGuestPath(r.ctx, FAKE_RAM_BASE - 1), -ERRNO.EFAULT);
  assert.equal(readGuestPath(r.ctx, r.f.mem.end), -ERRNO.EFAULT);
  assert.equal(readGuestPath(r.ctx, Number.NaN), -ERRNO.EFAULT);
  r.f.mem.fill(BUF, PATH_MAX, 0x63);
  assert.equal(readGuestPath(r.ctx, BUF), -ERRNO.ENAMETOOLONG);
  writePath(r, TEXT, new Uint8Array([0x80]));
  assert.equal(readGuestPath(r.ctx, TEXT), -ERRNO.EINVAL);
});

// ---- FileClose -------------------------------------------------------------------------

Deno.test("fileCloseV1/V2() read fd at 0 and write the i32 ret at 4", () => {
  for (const { version, close } of CLOSES) {
    const r = rig();
    r.f.mem.writeI32(PARAM + CLOSE.fd, 5);
    r.files.closeResult = -ERRNO.EBADF;
    assert.equal(close(r.ctx, PARAM), RESUME);
    assert.deepEqual(r.files.calls, [{ op: "close", fd: 5 }], `v${version}`);
    assert.equal(r.f.mem.readI32(PARAM + CLOSE.ret), -ERRNO.EBADF);
    assertUntouched(r, CLOSE.size, 0x100);
  }
});

Deno.test("fileCloseV1/V2() of fds 0–2 return 0 without closing anything", () => {
  for (const { close } of CLOSES) {
    for (const withFiles of [true, false]) {
      const r = withFiles ? rig() : rig({ files: null });
      for (const fd of [0, 1, 2]) {
        r.f.mem.writeI32(PARAM + CLOSE.fd, fd);
        r.f.mem.writeI32(PARAM + CLOSE.ret, -38);
        close(r.ctx, PARAM);
        assert.equal(r.f.mem.readI32(PARAM + CLOSE.ret), 0, `fd ${fd}`);
      }
      assert.deepEqual(r.files.calls, []);
    }
  }
});

Deno.test("fileCloseV1/V2() pass negative and large fds to the files", () => {
  for (const { close } of CLOSES) {
    const r = rig();
    for (const fd of [-1, 3, 0x7fff_ffff, -0x8000_0000]) {
      r.f.mem.writeI32(PARAM + CLOSE.fd, fd);
      close(r.ctx, PARAM);
    }
    assert.deepEqual(r.files.calls.map((c) => (c as { fd: number }).fd), [
      -1,
      3,
      0x7fff_ffff,
      -0x8000_0000,
    ]);
  }
});

Deno.test("fileCloseV1/V2() without files in the context give −EBADF for fd ≥ 3", () => {
  for (const { close } of CLOSES) {
    const r = rig({ files: null });
    r.f.mem.writeI32(PARAM + CLOSE.fd, 3);
    close(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + CLOSE.ret), -ERRNO.EBADF);
  }
});

// ---- FileUnlink ------------------------------------------------------------------------

Deno.test("fileUnlinkV1/V2() read name at 0 and write the i32 ret at 8", () => {
  for (const { version, unlink } of UNLINKS) {
    const r = rig();
    writePath(r, TEXT, "/root/data/gone");
    r.f.mem.writeU64(PARAM + UNLINK.name, TEXT);
    r.files.unlinkResult = -ERRNO.EISDIR;
    assert.equal(unlink(r.ctx, PARAM), RESUME);
    assert.deepEqual(r.files.calls, [{ op: "unlink", path: "/root/data/gone" }], `v${version}`);
    assert.equal(r.f.mem.readI32(PARAM + UNLINK.ret), -ERRNO.EISDIR);
    assertUntouched(r, UNLINK.size, 0x100);
  }
});

Deno.test("fileUnlinkV1/V2() decode the path like FileOpen: EFAULT, ENAMETOOLONG, EINVAL", () => {
  for (const { unlink } of UNLINKS) {
    const r = rig();
    r.f.mem.writeU64(PARAM + UNLINK.name, FAKE_RAM_BASE - 8);
    unlink(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + UNLINK.ret), -ERRNO.EFAULT);
    r.f.mem.fill(BUF, PATH_MAX + 1, 0x64);
    r.f.mem.writeU64(PARAM + UNLINK.name, BUF);
    unlink(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + UNLINK.ret), -ERRNO.ENAMETOOLONG);
    writePath(r, TEXT, new Uint8Array([0x2f, 0xfe]));
    r.f.mem.writeU64(PARAM + UNLINK.name, TEXT);
    unlink(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + UNLINK.ret), -ERRNO.EINVAL);
    assert.deepEqual(r.files.calls, []);
  }
});

Deno.test("fileUnlinkV1/V2() without files in the context give −ENOENT", () => {
  for (const { unlink } of UNLINKS) {
    const r = rig({ files: null });
    writePath(r, TEXT, "/root/data/x");
    r.f.mem.writeU64(PARAM + UNLINK.name, TEXT);
    unlink(r.ctx, PARAM);
    assert.equal(r.f.mem.readI32(PARAM + UNLINK.ret), -ERRNO.ENOENT);
  }
});
