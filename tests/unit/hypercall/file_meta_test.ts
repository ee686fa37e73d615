/**
 * Unit tests of `src/hypercall/file_meta.ts` (Getdents, FileStat, FileFstat,
 * Mkdir: uhyve 0.9.1's interface-v3 calls) over a plain ArrayBuffer guest
 * memory. The guest's files are a real {@linkcode Sandbox} over a file map of
 * virtual files only (no host access, so no permissions), or a fake that
 * records its calls. Pins the parameter layouts checked against uhyve
 * v0.9.1's `uhyve-interface/src/v2/parameters.rs`.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import {
  FILE_ATTR,
  FSTAT,
  GETDENTS,
  GETDENTS_RESULT,
  LSEEK_V2,
  MKDIR,
  OPEN,
  READ_WRITE_V2,
  STAT,
  STATUS_RESULT,
  V2,
} from "../../../src/hypercall/abi.ts";
import { type HypercallContext, RESUME } from "../../../src/hypercall/context.ts";
import {
  fileLseekV2,
  fileOpenV2,
  fileReadV2,
  fileWriteV2,
  type GuestFiles,
} from "../../../src/hypercall/file.ts";
import { fileFstat, fileStat, getdents, mkdir } from "../../../src/hypercall/file_meta.ts";
import { DIRENT64, direntLength, DT } from "../../../src/sandbox/dirents.ts";
import { FileMap } from "../../../src/sandbox/file_map.ts";
import { OPEN_FLAGS } from "../../../src/sandbox/host_fs.ts";
import { Sandbox } from "../../../src/sandbox/sandbox.ts";
import {
  assertProtocolStop,
  FAKE_RAM_BASE,
  FAKE_RAM_SIZE,
  type FakeContext,
  fakeContext,
  utf8,
} from "../../_helpers/hypercall_context.ts";

const PARAM = FAKE_RAM_BASE + 0x100;
const TEXT = FAKE_RAM_BASE + 0x800;
const ATTR_AT = FAKE_RAM_BASE + 0x1000;
const BUF = FAKE_RAM_BASE + 0x2000;
const { O_RDONLY, O_DIRECTORY, SEEK_SET } = OPEN_FLAGS;

/** A sandbox of virtual files: /data/x.txt (5 bytes), /data/sub/y, /z.bin (700 bytes). */
function rig(): { f: FakeContext; ctx: HypercallContext; sandbox: Sandbox } {
  const map = new FileMap();
  map.addVirtual("/data/x.txt", utf8("hello"));
  map.addVirtual("/data/sub/y", utf8(""));
  map.addVirtual("/z.bin", new Uint8Array(700));
  const sandbox = new Sandbox({ map });
  const f = fakeContext();
  return { f, ctx: { ...f.ctx, files: sandbox }, sandbox };
}

function putPath(f: FakeContext, path: string, at = TEXT): number {
  f.mem.write(at, utf8(path));
  f.mem.writeU8(at + utf8(path).length, 0);
  return at;
}

function open(f: FakeContext, ctx: HypercallContext, path: string, flags: number): number {
  f.mem.writeU64(PARAM + OPEN.name, putPath(f, path));
  f.mem.writeI32(PARAM + OPEN.flags, flags);
  f.mem.writeI32(PARAM + OPEN.mode, 0);
  assert.equal(fileOpenV2(ctx, PARAM), RESUME);
  return f.mem.readI32(PARAM + OPEN.ret);
}

/** Calls Getdents; returns the tag and the payload (bytes, or errno). */
function callGetdents(
  f: FakeContext,
  ctx: HypercallContext,
  fd: number,
  len: number,
  buf = BUF,
): { tag: number; value: number } {
  f.mem.fill(PARAM, GETDENTS.size, 0xa5);
  f.mem.writeI32(PARAM + GETDENTS.fd, fd);
  f.mem.writeU64(PARAM + GETDENTS.buf, buf);
  f.mem.writeU64(PARAM + GETDENTS.len, len);
  f.mem.writeU32(PARAM + GETDENTS.tag, GETDENTS_RESULT.NONE);
  assert.equal(getdents(ctx, PARAM), RESUME);
  const tag = f.mem.readU32(PARAM + GETDENTS.tag);
  const value = tag === GETDENTS_RESULT.SUCCESS
    ? f.mem.readU64(PARAM + GETDENTS.value)
    : tag === GETDENTS_RESULT.ERROR
    ? f.mem.readI32(PARAM + GETDENTS.value)
    : 0;
  return { tag, value };
}

interface Record64 {
  ino: bigint;
  off: bigint;
  reclen: number;
  type: number;
  name: string;
}

/** Parses `n` bytes of linux_dirent64 records at BUF, checking each one's framing. */
function parse(f: FakeContext, n: number): Record64[] {
  const out: Record64[] = [];
  let at = 0;
  while (at < n) {
    const reclen = f.mem.readU16(BUF + at + DIRENT64.reclen);
    assert.ok(reclen > DIRENT64.name && reclen % 8 === 0, `reclen ${reclen}`);
    assert.ok(at + reclen <= n, "record cut");
    const nameBytes = f.mem.bytes(BUF + at + DIRENT64.name, reclen - DIRENT64.name);
    const nul = nameBytes.indexOf(0);
    assert.ok(nul > 0, "name not NUL-terminated");
    out.push({
      ino: f.mem.readU64Big(BUF + at + DIRENT64.ino),
      off: BigInt(f.mem.readI64(BUF + at + DIRENT64.off)),
      reclen,
      type: f.mem.readU8(BUF + at + DIRENT64.type),
      name: new TextDecoder().decode(nameBytes.subarray(0, nul)),
    });
    at += reclen;
  }
  return out;
}

Deno.test("v3 parameter layouts are uhyve 0.9.1's (repr(C), little-endian)", () => {
  assert.deepEqual(GETDENTS, { size: 40, fd: 0, buf: 8, len: 16, tag: 24, value: 32 });
  assert.deepEqual(STAT, { size: 32, name: 0, kind: 8, attr: 16, tag: 24, errno: 28 });
  assert.deepEqual(FSTAT, { size: 24, fd: 0, attr: 8, tag: 16, errno: 20 });
  assert.deepEqual(MKDIR, { size: 24, path: 0, len: 8, tag: 16, errno: 20 });
  assert.equal(FILE_ATTR.size, 120);
  assert.deepEqual(
    [FILE_ATTR.mode, FILE_ATTR.uid, FILE_ATTR.gid, FILE_ATTR.rdev, FILE_ATTR.sizeField],
    [24, 28, 32, 40, 48],
  );
  assert.deepEqual([FILE_ATTR.atime, FILE_ATTR.mtime, FILE_ATTR.ctime], [72, 88, 104]);
  assert.deepEqual([V2.GETDENTS, V2.FILE_STAT, V2.FILE_FSTAT, V2.MKDIR], [
    0x1160,
    0x1170,
    0x1180,
    0x1190,
  ]);
  assert.equal(direntLength(1), 24); // 19 + "a" + NUL = 21 → 24
  assert.equal(direntLength(4), 24); // 19 + 4 + 1 = 24
  assert.equal(direntLength(5), 32);
});

Deno.test("Getdents lists a map directory as linux_dirent64 records, then EndOfDirectory for good", () => {
  const { f, ctx } = rig();
  const fd = open(f, ctx, "/", O_RDONLY | O_DIRECTORY);
  assert.ok(fd >= 3, `open / gave ${fd}`);
  const first = callGetdents(f, ctx, fd, 4096);
  assert.equal(first.tag, GETDENTS_RESULT.SUCCESS);
  const records = parse(f, first.value);
  assert.deepEqual(records.map((r) => [r.name, r.type]), [["data", DT.DIR], ["z.bin", DT.REG]]);
  assert.deepEqual(records.map((r) => r.off), [24n, 56n], "d_off: the cursor after the record");
  assert.ok(records.every((r) => r.ino > 1n), "inode numbers are set");
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(callGetdents(f, ctx, fd, 4096), {
      tag: GETDENTS_RESULT.END_OF_DIRECTORY,
      value: 0,
    });
  }
  // lseek SET 0 rewinds; the same listing comes again.
  f.mem.writeU64(PARAM + LSEEK_V2.offset, 0);
  f.mem.writeU32(PARAM + LSEEK_V2.whence, SEEK_SET);
  f.mem.writeI32(PARAM + LSEEK_V2.fd, fd);
  assert.equal(fileLseekV2(ctx, PARAM), RESUME);
  assert.equal(f.mem.readI64(PARAM + LSEEK_V2.offset), 0);
  assert.deepEqual(callGetdents(f, ctx, fd, 4096), first);
});

Deno.test("Getdents pages record by record; too small a buffer is EINVAL (positive errno)", () => {
  const { f, ctx } = rig();
  const fd = open(f, ctx, "/data", O_DIRECTORY);
  assert.deepEqual(callGetdents(f, ctx, fd, 23), {
    tag: GETDENTS_RESULT.ERROR,
    value: ERRNO.EINVAL,
  });
  const one = callGetdents(f, ctx, fd, 24 + 31); // room for "sub" (24) but not "x.txt" (32) too
  assert.equal(one.tag, GETDENTS_RESULT.SUCCESS);
  assert.deepEqual(parse(f, one.value).map((r) => r.name), ["sub"]);
  const two = callGetdents(f, ctx, fd, 32);
  assert.deepEqual(parse(f, two.value).map((r) => [r.name, r.type]), [["x.txt", DT.REG]]);
  assert.equal(callGetdents(f, ctx, fd, 32).tag, GETDENTS_RESULT.END_OF_DIRECTORY);
  // A cursor inside a record is EINVAL, as in uhyve.
  f.mem.writeU64(PARAM + LSEEK_V2.offset, 3);
  f.mem.writeU32(PARAM + LSEEK_V2.whence, SEEK_SET);
  f.mem.writeI32(PARAM + LSEEK_V2.fd, fd);
  fileLseekV2(ctx, PARAM);
  assert.deepEqual(callGetdents(f, ctx, fd, 4096), {
    tag: GETDENTS_RESULT.ERROR,
    value: ERRNO.EINVAL,
  });
});

Deno.test("Getdents gives errnos, never a stop, for bad fds and buffers", () => {
  const { f, ctx } = rig();
  const file = open(f, ctx, "/z.bin", O_RDONLY);
  for (const fd of [0, 1, 2, file]) {
    assert.deepEqual(callGetdents(f, ctx, fd, 64), {
      tag: GETDENTS_RESULT.ERROR,
      value: ERRNO.ENOTDIR,
    }, `fd ${fd}`);
  }
  for (const fd of [-1, 77, 0x7fff_ffff]) {
    assert.deepEqual(callGetdents(f, ctx, fd, 64), {
      tag: GETDENTS_RESULT.ERROR,
      value: ERRNO.EBADF,
    }, `fd ${fd}`);
  }
  const dir = open(f, ctx, "/", O_DIRECTORY);
  const outside = callGetdents(f, ctx, dir, 64, FAKE_RAM_BASE + FAKE_RAM_SIZE - 8);
  assert.deepEqual(outside, { tag: GETDENTS_RESULT.ERROR, value: ERRNO.EFAULT });
  assertProtocolStop(getdents(ctx, FAKE_RAM_BASE + FAKE_RAM_SIZE - 20), {
    call: "Getdents",
    port: V2.GETDENTS,
  });
  const noFiles = fakeContext();
  noFiles.mem.writeI32(PARAM + GETDENTS.fd, 3);
  noFiles.mem.writeU64(PARAM + GETDENTS.buf, BUF);
  noFiles.mem.writeU64(PARAM + GETDENTS.len, 64);
  assert.equal(getdents(noFiles.ctx, PARAM), RESUME);
  assert.equal(noFiles.mem.readU32(PARAM + GETDENTS.tag), GETDENTS_RESULT.ERROR);
  assert.equal(noFiles.mem.readI32(PARAM + GETDENTS.value), ERRNO.EBADF);
});

Deno.test("FileRead and FileWrite on a directory fd give EISDIR and EBADF", () => {
  const { f, ctx } = rig();
  const dir = open(f, ctx, "/data", O_DIRECTORY);
  for (
    const [handler, errno] of [[fileReadV2, ERRNO.EISDIR], [fileWriteV2, ERRNO.EBADF]] as const
  ) {
    f.mem.writeU64(PARAM + READ_WRITE_V2.len, 16);
    f.mem.writeU64(PARAM + READ_WRITE_V2.buf, BUF);
    f.mem.writeI32(PARAM + READ_WRITE_V2.fd, dir);
    assert.equal(handler(ctx, PARAM), RESUME);
    assert.equal(f.mem.readI64(PARAM + READ_WRITE_V2.ret), -errno);
  }
});

/** Calls FileStat; returns the tag, the errno field and the attr bytes as fields. */
function callStat(
  f: FakeContext,
  ctx: HypercallContext,
  path: string,
  kind: number,
): { tag: number; errno: number; attr: Attr } {
  f.mem.fill(PARAM, STAT.size, 0);
  f.mem.fill(ATTR_AT, FILE_ATTR.size, 0xcc);
  f.mem.writeU64(PARAM + STAT.name, putPath(f, path));
  f.mem.writeU32(PARAM + STAT.kind, kind);
  f.mem.writeU64(PARAM + STAT.attr, ATTR_AT);
  assert.equal(fileStat(ctx, PARAM), RESUME);
  return {
    tag: f.mem.readU32(PARAM + STAT.tag),
    errno: f.mem.readI32(PARAM + STAT.errno),
    attr: readAttr(f),
  };
}

type Attr = Record<
  "dev" | "ino" | "nlink" | "mode" | "uid" | "gid" | "rdev" | "size" | "blksize" | "blocks" | "pad",
  number
>;

function readAttr(f: FakeContext): Attr {
  const a = ATTR_AT;
  return {
    dev: f.mem.readU64(a + FILE_ATTR.dev),
    ino: f.mem.readU64(a + FILE_ATTR.ino),
    nlink: f.mem.readU64(a + FILE_ATTR.nlink),
    mode: f.mem.readU32(a + FILE_ATTR.mode),
    uid: f.mem.readU32(a + FILE_ATTR.uid),
    gid: f.mem.readU32(a + FILE_ATTR.gid),
    rdev: f.mem.readU64(a + FILE_ATTR.rdev),
    size: f.mem.readI64(a + FILE_ATTR.sizeField),
    blksize: f.mem.readI64(a + FILE_ATTR.blksize),
    blocks: f.mem.readI64(a + FILE_ATTR.blocks),
    pad: f.mem.readU32(a + 36),
  };
}

Deno.test("FileStat: virtual files and map directories, stat and lstat alike", () => {
  const { f, ctx } = rig();
  for (const kind of [0, 1]) {
    const file = callStat(f, ctx, "/z.bin", kind);
    assert.equal(file.tag, STATUS_RESULT.SUCCESS);
    assert.deepEqual({ ...file.attr, ino: 0 }, {
      dev: 0,
      ino: 0,
      nlink: 1,
      mode: 0o100444,
      uid: 0,
      gid: 0,
      rdev: 0,
      size: 700,
      blksize: 4096,
      blocks: 2,
      pad: 0,
    });
    assert.ok(file.attr.ino > 1);
    const dir = callStat(f, ctx, "/data/", kind);
    assert.equal(dir.tag, STATUS_RESULT.SUCCESS);
    assert.equal(dir.attr.mode, 0o40755);
    assert.equal(dir.attr.nlink, 2);
    assert.notEqual(dir.attr.ino, file.attr.ino);
    assert.equal(callStat(f, ctx, "/", kind).attr.mode, 0o40755);
  }
  assert.equal(
    callStat(f, ctx, "/data/../z.bin", 0).attr.ino,
    callStat(f, ctx, "/z.bin", 1).attr.ino,
    "one file, one inode number",
  );
});

Deno.test("FileStat: errors carry a positive errno; an unknown StatKind is EINVAL", () => {
  const { f, ctx } = rig();
  const cases: [string, number, number][] = [
    ["/missing", 0, ERRNO.ENOENT],
    ["/data/x.txt/below", 0, ERRNO.ENOENT],
    ["/z.bin", 2, ERRNO.EINVAL],
    ["/z.bin", 0xffff_ffff, ERRNO.EINVAL],
  ];
  for (const [path, kind, errno] of cases) {
    const r = callStat(f, ctx, path, kind);
    assert.deepEqual([r.tag, r.errno], [STATUS_RESULT.ERROR, errno], `${path} kind ${kind}`);
    assert.equal(r.attr.mode, 0xcccccccc, "attr untouched on error");
  }
  // attr outside RAM, path outside RAM, unterminated path at the end of RAM
  f.mem.writeU64(PARAM + STAT.name, putPath(f, "/z.bin"));
  f.mem.writeU32(PARAM + STAT.kind, 0);
  f.mem.writeU64(PARAM + STAT.attr, FAKE_RAM_BASE + FAKE_RAM_SIZE - 119);
  assert.equal(fileStat(ctx, PARAM), RESUME);
  assert.deepEqual([f.mem.readU32(PARAM + STAT.tag), f.mem.readI32(PARAM + STAT.errno)], [
    STATUS_RESULT.ERROR,
    ERRNO.EFAULT,
  ]);
  f.mem.writeU64(PARAM + STAT.attr, ATTR_AT);
  f.mem.writeU64(PARAM + STAT.name, 0x10);
  assert.equal(fileStat(ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + STAT.errno), ERRNO.EFAULT);
  assertProtocolStop(fileStat(ctx, -8), { call: "FileStat", port: V2.FILE_STAT });
});

Deno.test("FileFstat: open fds as FileStat sees them; fds 0–2 and unknown fds are EBADF", () => {
  const { f, ctx } = rig();
  const stat = callStat(f, ctx, "/data/x.txt", 0).attr;
  const fd = open(f, ctx, "/data/x.txt", O_RDONLY);
  const dir = open(f, ctx, "/data", O_DIRECTORY);
  const call = (n: number): { tag: number; errno: number } => {
    f.mem.fill(PARAM, FSTAT.size, 0);
    f.mem.writeI32(PARAM + FSTAT.fd, n);
    f.mem.writeU64(PARAM + FSTAT.attr, ATTR_AT);
    assert.equal(fileFstat(ctx, PARAM), RESUME);
    return { tag: f.mem.readU32(PARAM + FSTAT.tag), errno: f.mem.readI32(PARAM + FSTAT.errno) };
  };
  assert.deepEqual(call(fd), { tag: STATUS_RESULT.SUCCESS, errno: 0 });
  assert.deepEqual(readAttr(f), stat);
  assert.deepEqual(call(dir), { tag: STATUS_RESULT.SUCCESS, errno: 0 });
  assert.equal(readAttr(f).mode, 0o40755);
  for (const bad of [0, 1, 2, -1, 99]) {
    assert.deepEqual(call(bad), { tag: STATUS_RESULT.ERROR, errno: ERRNO.EBADF }, `fd ${bad}`);
  }
  f.mem.writeI32(PARAM + FSTAT.fd, fd);
  f.mem.writeU64(PARAM + FSTAT.attr, FAKE_RAM_BASE - 1);
  assert.equal(fileFstat(ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + FSTAT.errno), ERRNO.EFAULT);
  assertProtocolStop(fileFstat(ctx, FAKE_RAM_BASE + FAKE_RAM_SIZE), {
    call: "FileFstat",
    port: V2.FILE_FSTAT,
  });
});

Deno.test("Mkdir: the path goes to the file service, the result comes back tagged", () => {
  const f = fakeContext();
  const paths: string[] = [];
  let answer = 0;
  const files = { mkdir: (p: string): number => (paths.push(p), answer) } as Partial<GuestFiles>;
  const ctx = { ...f.ctx, files: files as GuestFiles };
  f.mem.writeU64(PARAM + MKDIR.path, putPath(f, "/data/new"));
  f.mem.writeU64(PARAM + MKDIR.len, 3); // ignored, as in uhyve: the NUL ends the path
  assert.equal(mkdir(ctx, PARAM), RESUME);
  assert.equal(f.mem.readU32(PARAM + MKDIR.tag), STATUS_RESULT.SUCCESS);
  answer = -ERRNO.EROFS;
  assert.equal(mkdir(ctx, PARAM), RESUME);
  assert.deepEqual([f.mem.readU32(PARAM + MKDIR.tag), f.mem.readI32(PARAM + MKDIR.errno)], [
    STATUS_RESULT.ERROR,
    ERRNO.EROFS,
  ]);
  assert.deepEqual(paths, ["/data/new", "/data/new"]);
  f.mem.fill(TEXT, 8, 0xff); // not UTF-8
  f.mem.writeU8(TEXT + 8, 0);
  assert.equal(mkdir(ctx, PARAM), RESUME);
  assert.equal(f.mem.readI32(PARAM + MKDIR.errno), ERRNO.EINVAL);
  assert.equal(paths.length, 2);
  assertProtocolStop(mkdir(ctx, FAKE_RAM_BASE + FAKE_RAM_SIZE - 23), {
    call: "Mkdir",
    port: V2.MKDIR,
  });
});

Deno.test("Mkdir in a map of virtual files: EEXIST for what exists, ENOENT without a parent", () => {
  const { f, ctx } = rig();
  for (
    const [path, errno] of [
      ["/", ERRNO.EEXIST],
      ["/data", ERRNO.EEXIST],
      ["/data/x.txt", ERRNO.EEXIST],
      ["/nowhere/new", ERRNO.ENOENT],
      ["/data/x.txt/new", ERRNO.ENOTDIR],
    ] as const
  ) {
    f.mem.writeU64(PARAM + MKDIR.path, putPath(f, path));
    assert.equal(mkdir(ctx, PARAM), RESUME);
    assert.deepEqual([f.mem.readU32(PARAM + MKDIR.tag), f.mem.readI32(PARAM + MKDIR.errno)], [
      STATUS_RESULT.ERROR,
      errno,
    ], path);
  }
});
