/**
 * Unit tests of `src/sandbox/dirents.ts` (linux_dirent64 records, paging by
 * byte cursor) and `src/sandbox/guest_attr.ts` (what a guest sees of file
 * metadata). Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../../src/errno.ts";
import { ATTR, newFileAttr, S_IF } from "../../../src/file_attr.ts";
import { DIRENT64, direntLength, DirListing, DT } from "../../../src/sandbox/dirents.ts";
import {
  direntType,
  fillHostAttr,
  fillMapDirAttr,
  fillVirtualFileAttr,
  GuestInodes,
  MAX_REMEMBERED_INODES,
} from "../../../src/sandbox/guest_attr.ts";

const enc = new TextEncoder();

function listing(...names: string[]): DirListing {
  return new DirListing(names.map((n, i) => ({ name: enc.encode(n), type: DT.REG, ino: 100 + i })));
}

Deno.test("direntLength() is header + name + NUL, rounded up to 8", () => {
  for (let n = 1; n <= 300; n++) {
    const len = direntLength(n);
    assert.equal(len % 8, 0);
    assert.ok(len >= DIRENT64.name + n + 1 && len < DIRENT64.name + n + 1 + 8, `${n}`);
  }
});

Deno.test("DirListing sorts by name bytes and encodes linux_dirent64 records", () => {
  const l = listing("zeta", "Alpha", "beta", "ä");
  assert.deepEqual(l.entries.map((e) => new TextDecoder().decode(e.name)), [
    "Alpha",
    "beta",
    "zeta",
    "ä",
  ]);
  const buf = new Uint8Array(200).fill(0xee);
  const n = l.read(0, buf);
  assert.equal(n, l.byteLength);
  assert.equal(n, 32 + 24 + 24 + 24); // "Alpha": 19 + 5 + NUL = 25 → 32
  const view = new DataView(buf.buffer);
  assert.equal(view.getBigUint64(DIRENT64.ino, true), 101n); // "Alpha" was second
  assert.equal(view.getBigInt64(DIRENT64.off, true), 32n);
  assert.equal(view.getUint16(DIRENT64.reclen, true), 32);
  assert.equal(view.getUint8(DIRENT64.type), DT.REG);
  assert.deepEqual([...buf.subarray(DIRENT64.name, 32)], [
    ...enc.encode("Alpha"),
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  assert.equal(buf[n], 0xee, "nothing written past the records");
});

Deno.test("DirListing.read() pages by cursor: whole records, EINVAL when one does not fit", () => {
  const l = listing("a", "bbbbbbbbbb", "c"); // records of 24, 32, 24 bytes
  assert.equal(l.read(0, new Uint8Array(23)), -ERRNO.EINVAL);
  assert.equal(l.read(0, new Uint8Array(55)), 24, "the second record does not fit");
  assert.equal(l.read(24, new Uint8Array(31)), -ERRNO.EINVAL);
  assert.equal(l.read(24, new Uint8Array(32)), 32);
  assert.equal(l.read(56, new Uint8Array(1000)), 24);
  assert.equal(l.read(80, new Uint8Array(1000)), 0, "the end");
  assert.equal(l.read(10_000, new Uint8Array(1)), 0, "past the end");
  assert.equal(l.read(8, new Uint8Array(1000)), -ERRNO.EINVAL, "inside a record");
  assert.equal(new DirListing([]).read(0, new Uint8Array(0)), 0, "an empty directory ends at once");
});

Deno.test("GuestInodes: stable within a VM, in order of first sight, device included", () => {
  const a = new GuestInodes();
  const b = new GuestInodes();
  assert.equal(a.host(2049, 1234), 2, "the first file is 2, whatever its host inode");
  assert.equal(b.host(1, 999_999_999), 2, "another VM numbers its own files from 2");
  assert.equal(a.host(2049, 1234), 2, "a second look gives the same number (hard links too)");
  assert.equal(a.host(2050, 1234), 3, "the device counts");
  assert.equal(a.virtual("data/x"), 4);
  assert.notEqual(a.virtual("data/y"), a.virtual("data/x"));
  assert.equal(a.virtual("data/x"), 4);
});

Deno.test("GuestInodes: remembers a bounded number of files, then hands out fresh ones", () => {
  const a = new GuestInodes();
  for (let ino = 0; ino < MAX_REMEMBERED_INODES; ino++) a.host(1, ino);
  assert.equal(a.host(1, 0), 2, "remembered");
  const past = a.host(1, MAX_REMEMBERED_INODES);
  assert.notEqual(a.host(1, MAX_REMEMBERED_INODES), past, "not remembered: a new number each look");
  assert.ok(Number.isSafeInteger(past) && past > MAX_REMEMBERED_INODES);
});

Deno.test("fillHostAttr() keeps type, size and times, hides device, owner and rdev", () => {
  const out = newFileAttr().fill(7);
  fillHostAttr(out, {
    isFile: true,
    isDirectory: false,
    size: 1000,
    dev: 2049,
    ino: 77,
    mode: S_IF.REG | 0o640,
    nlink: 3,
    uid: 1000,
    gid: 1000,
    rdev: 5,
    blksize: 4096,
    blocks: 8,
    atime: new Date(1_700_000_000_123),
    mtime: new Date(1_700_000_001_999),
    ctime: null,
  }, 42);
  assert.deepEqual(Array.from(out), [
    0, // dev
    42, // ino
    3, // nlink
    S_IF.REG | 0o640,
    0, // uid
    0, // gid
    0, // rdev
    1000,
    4096,
    8,
    1_700_000_000,
    123_000_000,
    1_700_000_001,
    999_000_000,
    0,
    0,
  ]);
});

Deno.test("virtual files and map directories look like uhyve's", () => {
  const out = newFileAttr();
  fillVirtualFileAttr(out, 513, 9);
  assert.deepEqual(
    [out[ATTR.MODE], out[ATTR.NLINK], out[ATTR.SIZE], out[ATTR.BLOCKS], out[ATTR.INO]],
    [S_IF.REG | 0o444, 1, 513, 2, 9],
  );
  fillMapDirAttr(out, 10);
  assert.deepEqual([out[ATTR.MODE], out[ATTR.NLINK], out[ATTR.SIZE]], [S_IF.DIR | 0o755, 2, 0]);
});

Deno.test("direntType() maps an lstat to d_type", () => {
  const base = { isFile: false, isDirectory: false, size: 0 };
  assert.equal(direntType({ ...base, isSymlink: true, mode: S_IF.LNK }), DT.LNK);
  assert.equal(direntType({ ...base, isDirectory: true }), DT.DIR);
  assert.equal(direntType({ ...base, isFile: true }), DT.REG);
  assert.equal(direntType({ ...base, mode: S_IF.FIFO | 0o600 }), DT.FIFO);
  assert.equal(direntType({ ...base, mode: S_IF.CHR }), DT.CHR);
  assert.equal(direntType({ ...base, mode: S_IF.BLK }), DT.BLK);
  assert.equal(direntType({ ...base, mode: S_IF.SOCK }), DT.SOCK);
  assert.equal(direntType(base), DT.UNKNOWN);
});
