/**
 * Unit tests of `src/hypercall/file.ts`: every file hypercall handler, v1 and
 * v2, against a fake {@linkcode GuestFiles} that records its calls. Covers the
 * parameter offsets (v1 packed structs against v2 layouts), flag masking, path
 * decoding, stdio fds, v1 buffers translated piece by piece through a made-up
 * page map, buffers outside guest memory, a context without files, and
 * parameter blocks outside guest memory. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { ERRNO } from "../../../src/errno.ts";
import {
  CLOSE,
  LSEEK_V1,
  LSEEK_V2,
  OPEN,
  READ_V1,
  READ_WRITE_V2,
  UNLINK,
  V1,
  V2,
  WRITE_V1,
} from "../../../src/hypercall/abi.ts";
import { type Handler, type HypercallContext, RESUME } from "../../../src/hypercall/context.ts";
import {
  ALLOWED_OPEN_FLAGS,
  fileCloseV1,
  fileCloseV2,
  fileLseekV1,
  fileLseekV2,
  fileOpenV1,
  fileOpenV2,
  fileReadV1,
  fileReadV2,
  fileUnlinkV1,
  fileUnlinkV2,
  fileWriteV1,
  fileWriteV2,
  type GuestFiles,
  PATH_MAX,
  readGuestPath,
} from "../../../src/hypercall/file.ts";
import {
  assertProtocolStop,
  FAKE_PAGE_SIZE,
  FAKE_RAM_BASE,
  type FakeContext,
  fakeContext,
  type FakeContextOptions,
  utf8,
} from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;
const TEXT = FAKE_RAM_BASE + 0x800;
const BUF = FAKE_RAM_BASE + 0x2000;
/** Byte the parameter area is filled with, to see which bytes a handler writes. */
const FILL = 0xa5;

/** Guest-virtual base of the made-up page map used for v1 buffers. */
const VBASE = 0x7000_0000;
/**
 * Three virtual pages over frames out of order: page 0 → frame 5, page 1 →
 * frame 3, page 2 → frame 4 (so pages 1–2 are physically contiguous and
 * become one piece), page 3 unmapped.
 */
const PAGES: ReadonlyMap<number, number> = new Map([
  [VBASE, FAKE_RAM_BASE + 0x5000],
  [VBASE + FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x3000],
  [VBASE + 2 * FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x4000],
]);

const decoder = new TextDecoder();

/** One recorded call of the fake files. */
type Call =
  | { op: "open"; path: string; flags: number; mode: number }
  | { op: "close"; fd: number }
  | { op: "read"; fd: number; offset: number; len: number }
  | { op: "write"; fd: number; offset: number; data: string }
  | { op: "lseek"; fd: number; offset: number; whence: number }
  | { op: "unlink"; path: string };

/**
 * A {@linkcode GuestFiles} that records every call. Results come from the
 * public fields; `read` copies from `source` (advancing through it) and
 * `write` reports `writeResults` in turn (default: everything written).
 * `offset` in a recorded read or write is the view's offset in guest RAM.
 */
class FakeFiles implements GuestFiles {
  readonly calls: Call[] = [];
  openResult = 3;
  closeResult = 0;
  unlinkResult = 0;
  lseekResult = 0;
  /** Bytes the reads deliver, in order. */
  source: Uint8Array = new Uint8Array(0);
  /** Per read call: the most it returns, or a −errno; missing entries: no limit. */
  readLimits: number[] = [];
  /** Per write call: the count or −errno to return; missing entries: the full length. */
  writeResults: number[] = [];
  #at = 0;
  #reads = 0;
  #writes = 0;

  open(path: string, flags: number, mode: number): number {
    this.calls.push({ op: "open", path, flags, mode });
    return this.openResult;
  }
  close(fd: number): number {
    this.calls.push({ op: "close", fd });
    return this.closeResult;
  }
  read(fd: number, into: Uint8Array): number {
    this.calls.push({ op: "read", fd, offset: into.byteOffset, len: into.length });
    const limit = this.readLimits[this.#reads++] ?? Infinity;
    if (limit < 0) return limit;
    const n = Math.min(into.length, limit, this.source.length - this.#at);
    into.set(this.source.subarray(this.#at, this.#at + n));
    this.#at += n;
    return n;
  }
  write(fd: number, from: Uint8Array): number {
    this.calls.push({ op: "write", fd, offset: from.byteOffset, data: decoder.decode(from) });
    return this.writeResults[this.#writes++] ?? from.length;
  }
  lseek(fd: number, offset: number, whence: number): number {
    this.calls.push({ op: "lseek", fd, offset, whence });
    return this.lseekResult;
  }
  unlink(path: string): number {
    this.calls.push({ op: "unlink", path });
    return this.unlinkResult;
  }
  // The v3 calls have their own tests (file_meta_test.ts).
  getdents = (): number => -ERRNO.ENOSYS;
  stat = (): number => -ERRNO.ENOSYS;
  fstat = (): number => -ERRNO.ENOSYS;
  mkdir = (): number => -ERRNO.ENOSYS;
}

/** A fake context with files (unless `files: null`) and a log of v1 write errors. */
interface Rig {
  readonly f: FakeContext;
  readonly ctx: HypercallContext;
  readonly files: FakeFiles;
  readonly writeErrors: [number, number][];
}

function rig(options: FakeContextOptions & { files?: null } = {}): Rig {
  const { files: noFiles, ...contextOptions } = options;
  const f = fakeContext(contextOptions);
  f.mem.fill(PARAM, 0x100, FILL);
  const files = new FakeFiles();
  const writeErrors: [number, number][] = [];
  const onWriteError = (fd: number, errno: number): void => {
    writeErrors.push([fd, errno]);
  };
  const ctx: HypercallContext = noFiles === null
    ? { ...f.ctx, onWriteError }
    : { ...f.ctx, files, onWriteError };
  return { f, ctx, files, writeErrors };
}

/** Offset of a guest-physical address in the fake RAM (what a recorded view's byteOffset is). */
function ramOffset(gpa: number): number {
  return gpa - FAKE_RAM_BASE;
}

/** The parameter bytes from `PARAM + from` to `PARAM + to` are still untouched. */
function assertUntouched(r: Rig, from: number, to: number): void {
  const bytes = r.f.mem.bytes(PARAM + from, to - from);
  assert.ok(bytes.every((b) => b === FILL), `bytes ${from}..${to} of the block were written`);
}

/** Writes `text` plus a NUL at `addr`. */
function writePath(r: Rig, addr: number, text: string | Uint8Array): void {
  const bytes = typeof text === "string" ? utf8(text) : text;
  r.f.mem.write(addr, bytes);
  r.f.mem.writeU8(addr + bytes.length, 0);
}

const OPENS = [
  { version: 1, open: fileOpenV1, port: V1.FILE_OPEN },
  { version: 2, open: fileOpenV2, port: V2.FILE_OPEN },
] as const;
const CLOSES = [
  { version: 1, close: fileCloseV1, port: V1.FILE_CLOSE },
  { version: 2, close: fileCloseV2, port: V2.FILE_CLOSE },
] as const;
const UNLINKS = [
  { version: 1, unlink: fileUnlinkV1, port: V1.FILE_UNLINK },
  { version: 2, unlink: fileUnlinkV2, port: V2.FILE_UNLINK },
] as const;

/** Sets up an OpenParams block at PARAM. */
function openParams(r: Rig, name: number, flags: number, mode: number): void {
  r.f.mem.writeU64(PARAM + OPEN.name, name);
  r.f.mem.writeI32(PARAM + OPEN.flags, flags);
  r.f.mem.writeI32(PARAM + OPEN.mode, mode);
}

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

// ---- FileRead v1 -----------------------------------------------------------------------

/** Sets up a v1 ReadParams block at PARAM. */
function readV1Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeI32(PARAM + READ_V1.fd, fd);
  r.f.mem.writeU64(PARAM + READ_V1.buf, buf);
  r.f.mem.writeU64(PARAM + READ_V1.len, len);
}

/** `n` bytes counting up from 1 (mod 256), to see where each one lands. */
function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i + 1) & 0xff);
}

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

/** Sets up a v2 Read/WriteParams block at PARAM. */
function rwV2Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeU64(PARAM + READ_WRITE_V2.len, len);
  r.f.mem.writeU64(PARAM + READ_WRITE_V2.buf, buf);
  r.f.mem.writeI32(PARAM + READ_WRITE_V2.fd, fd);
}

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

// ---- FileWrite v1 ----------------------------------------------------------------------

/** Sets up a v1 WriteParams block at PARAM. */
function writeV1Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeI32(PARAM + WRITE_V1.fd, fd);
  r.f.mem.writeU64(PARAM + WRITE_V1.buf, buf);
  r.f.mem.writeU64(PARAM + WRITE_V1.len, len);
}

/** Writes "hello " at the end of virtual page 0 and "world\n" at the start of page 1. */
function splitHello(r: Rig): void {
  r.f.mem.write(FAKE_RAM_BASE + 0x5000 + FAKE_PAGE_SIZE - 6, utf8("hello "));
  r.f.mem.write(FAKE_RAM_BASE + 0x3000, utf8("world\n"));
}

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

// ---- parameter blocks outside guest memory ---------------------------------------------

/** Every handler, with its block size and the one field it may write: [offset, bytes]. */
const ALL_HANDLERS: readonly {
  name: string;
  port: number;
  size: number;
  handle: Handler;
  result: readonly [number, number] | null;
}[] = [
  { name: "FileOpen", port: V1.FILE_OPEN, size: OPEN.size, handle: fileOpenV1, result: [16, 4] },
  { name: "FileOpen", port: V2.FILE_OPEN, size: OPEN.size, handle: fileOpenV2, result: [16, 4] },
  { name: "FileClose", port: V1.FILE_CLOSE, size: CLOSE.size, handle: fileCloseV1, result: [4, 4] },
  { name: "FileClose", port: V2.FILE_CLOSE, size: CLOSE.size, handle: fileCloseV2, result: [4, 4] },
  {
    name: "FileUnlink",
    port: V1.FILE_UNLINK,
    size: UNLINK.size,
    handle: fileUnlinkV1,
    result: [8, 4],
  },
  {
    name: "FileUnlink",
    port: V2.FILE_UNLINK,
    size: UNLINK.size,
    handle: fileUnlinkV2,
    result: [8, 4],
  },
  { name: "FileRead", port: V1.FILE_READ, size: READ_V1.size, handle: fileReadV1, result: [20, 8] },
  {
    name: "FileRead",
    port: V2.FILE_READ,
    size: READ_WRITE_V2.size,
    handle: fileReadV2,
    result: [8, 8],
  },
  {
    name: "FileWrite",
    port: V1.FILE_WRITE,
    size: WRITE_V1.size,
    handle: fileWriteV1,
    result: null,
  },
  {
    name: "FileWrite",
    port: V2.FILE_WRITE,
    size: READ_WRITE_V2.size,
    handle: fileWriteV2,
    result: [8, 8],
  },
  {
    name: "FileLseek",
    port: V1.FILE_LSEEK,
    size: LSEEK_V1.size,
    handle: fileLseekV1,
    result: [4, 8],
  },
  {
    name: "FileLseek",
    port: V2.FILE_LSEEK,
    size: LSEEK_V2.size,
    handle: fileLseekV2,
    result: [0, 8],
  },
];

Deno.test("file hypercalls stop the VM for a parameter block outside guest memory", () => {
  for (const { name, port, size, handle } of ALL_HANDLERS) {
    const r = rig();
    const end = r.f.mem.end;
    for (const arg of [0, FAKE_RAM_BASE - 1, end - size + 1, end, 0xffff_ffff]) {
      assertProtocolStop(handle(r.ctx, arg), {
        call: name,
        port,
        mentions: [`parameter block at 0x${arg.toString(16)}`, `${size} bytes`, "outside"],
      });
    }
    assert.deepEqual(r.files.calls, [], `${name} 0x${port.toString(16)}`);
    assert.deepEqual(r.writeErrors, []);
  }
});

Deno.test("file hypercalls accept a parameter block in the last bytes of guest memory", () => {
  for (const { name, port, size, handle } of ALL_HANDLERS) {
    const r = rig();
    const arg = r.f.mem.end - size;
    assert.equal(handle(r.ctx, arg), RESUME, `${name} 0x${port.toString(16)}`);
  }
});

// ---- property: hostile parameter blocks ------------------------------------------------

Deno.test("file hypercalls, given random parameter blocks, never throw and write only their result", () => {
  const size = 0x4000;
  const end = FAKE_RAM_BASE + size;
  // Addresses worth trying: inside RAM (often), at its edges, and anywhere.
  const address = fc.oneof(
    fc.integer({ min: FAKE_RAM_BASE, max: end }),
    fc.constantFrom(0, FAKE_RAM_BASE - 1, end - 1, end, 2 ** 32 - 1, 2 ** 53 - 1),
    fc.maxSafeNat(),
  );
  const block = fc.record({
    handler: fc.nat({ max: ALL_HANDLERS.length - 1 }),
    at: fc.integer({ min: -40, max: size + 40 }),
    bytes: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    // 64-bit fields (name, buf, len, offset) overwritten with interesting values.
    words: fc.array(fc.record({ at: fc.constantFrom(0, 4, 8, 12, 16), value: address }), {
      maxLength: 3,
    }),
    // A NUL somewhere, so that some names are short strings.
    nul: fc.option(fc.integer({ min: FAKE_RAM_BASE, max: end - 1 })),
  });
  fc.assert(
    fc.property(block, ({ handler, at, bytes, words, nul }) => {
      const h = ALL_HANDLERS[handler]!;
      const f = fakeContext({ size });
      const arg = FAKE_RAM_BASE + at;
      bytes.forEach((b, i) => {
        if (f.mem.contains(arg + i, 1)) f.mem.writeU8(arg + i, b);
      });
      for (const w of words) {
        if (f.mem.contains(arg + w.at, 8)) f.mem.writeU64(arg + w.at, w.value);
      }
      if (nul !== null) f.mem.writeU8(nul, 0);
      const before = f.mem.u8.slice();
      const files = new FakeFiles(); // reads deliver nothing, so RAM changes only by the handler
      const result = h.handle({ ...f.ctx, files, onWriteError: (): void => {} }, arg);
      const inside = f.mem.contains(arg, h.size);
      if (!inside) {
        assertProtocolStop(result, { call: h.name, port: h.port });
        assert.deepEqual(f.mem.u8, before);
        assert.deepEqual(files.calls, []);
        return;
      }
      assert.equal(result, RESUME);
      const [from, len] = h.result === null ? [0, 0] : h.result;
      const lo = arg - FAKE_RAM_BASE + from;
      for (let i = 0; i < before.length; i++) {
        if (i >= lo && i < lo + len) continue;
        if (f.mem.u8[i] !== before[i]) assert.fail(`${h.name}: byte 0x${i.toString(16)} changed`);
      }
    }),
    { numRuns: 500 },
  );
});
