/**
 * A test rig for the file hypercall handlers (`src/hypercall/file.ts`): a
 * fake {@linkcode GuestFiles} that records its calls, guest RAM with a made-up
 * page map for v1 buffers, and writers for each handler's parameter block.
 * Shared by `tests/unit/hypercall/file_*_test.ts`; no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { OPEN, READ_V1, READ_WRITE_V2, V1, V2, WRITE_V1 } from "../../src/hypercall/abi.ts";
import { type HypercallContext } from "../../src/hypercall/context.ts";
import {
  fileCloseV1,
  fileCloseV2,
  fileOpenV1,
  fileOpenV2,
  fileUnlinkV1,
  fileUnlinkV2,
  type GuestFiles,
} from "../../src/hypercall/file.ts";
import {
  FAKE_PAGE_SIZE,
  FAKE_RAM_BASE,
  type FakeContext,
  fakeContext,
  type FakeContextOptions,
  utf8,
} from "./hypercall_context.ts";

/** Where the parameter block lies in guest-physical memory. */
export const PARAM: number = FAKE_RAM_BASE + 0x100;
/** Where a path string is put. */
export const TEXT: number = FAKE_RAM_BASE + 0x800;
/** Where a data buffer lies. */
export const BUF: number = FAKE_RAM_BASE + 0x2000;
/** Byte the parameter area is filled with, to see which bytes a handler writes. */
export const FILL = 0xa5;

/** Guest-virtual base of the made-up page map used for v1 buffers. */
export const VBASE = 0x7000_0000;
/**
 * Three virtual pages over frames out of order: page 0 → frame 5, page 1 →
 * frame 3, page 2 → frame 4 (so pages 1–2 are physically contiguous and
 * become one piece), page 3 unmapped.
 */
export const PAGES: ReadonlyMap<number, number> = new Map([
  [VBASE, FAKE_RAM_BASE + 0x5000],
  [VBASE + FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x3000],
  [VBASE + 2 * FAKE_PAGE_SIZE, FAKE_RAM_BASE + 0x4000],
]);

/** Decodes what the fake files and sinks received. */
export const decoder: TextDecoder = new TextDecoder();

/** One recorded call of the fake files. */
export type Call =
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
export class FakeFiles implements GuestFiles {
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
  // The v3 calls have their own tests (file_meta_test.ts): here they only say "not here".
  getdents = (): number => -ERRNO.ENOSYS;
  stat = (): number => -ERRNO.ENOSYS;
  fstat = (): number => -ERRNO.ENOSYS;
  mkdir = (): number => -ERRNO.ENOSYS;
}

/** A fake context with files (unless `files: null`) and a log of v1 write errors. */
export interface Rig {
  readonly f: FakeContext;
  readonly ctx: HypercallContext;
  readonly files: FakeFiles;
  readonly writeErrors: [number, number][];
}

export function rig(options: FakeContextOptions & { files?: null } = {}): Rig {
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
export function ramOffset(gpa: number): number {
  return gpa - FAKE_RAM_BASE;
}

/** The parameter bytes from `PARAM + from` to `PARAM + to` are still untouched. */
export function assertUntouched(r: Rig, from: number, to: number): void {
  const bytes = r.f.mem.bytes(PARAM + from, to - from);
  assert.ok(bytes.every((b) => b === FILL), `bytes ${from}..${to} of the block were written`);
}

/** Writes `text` plus a NUL at `addr`. */
export function writePath(r: Rig, addr: number, text: string | Uint8Array): void {
  const bytes = typeof text === "string" ? utf8(text) : text;
  r.f.mem.write(addr, bytes);
  r.f.mem.writeU8(addr + bytes.length, 0);
}

export const OPENS = [
  { version: 1, open: fileOpenV1, port: V1.FILE_OPEN },
  { version: 2, open: fileOpenV2, port: V2.FILE_OPEN },
] as const;
export const CLOSES = [
  { version: 1, close: fileCloseV1, port: V1.FILE_CLOSE },
  { version: 2, close: fileCloseV2, port: V2.FILE_CLOSE },
] as const;
export const UNLINKS = [
  { version: 1, unlink: fileUnlinkV1, port: V1.FILE_UNLINK },
  { version: 2, unlink: fileUnlinkV2, port: V2.FILE_UNLINK },
] as const;

/** Sets up an OpenParams block at PARAM. */
export function openParams(r: Rig, name: number, flags: number, mode: number): void {
  r.f.mem.writeU64(PARAM + OPEN.name, name);
  r.f.mem.writeI32(PARAM + OPEN.flags, flags);
  r.f.mem.writeI32(PARAM + OPEN.mode, mode);
}

/** Sets up a v1 ReadParams block at PARAM. */
export function readV1Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeI32(PARAM + READ_V1.fd, fd);
  r.f.mem.writeU64(PARAM + READ_V1.buf, buf);
  r.f.mem.writeU64(PARAM + READ_V1.len, len);
}

/** `n` bytes counting up from 1 (mod 256), to see where each one lands. */
export function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i + 1) & 0xff);
}

/** Sets up a v2 Read/WriteParams block at PARAM. */
export function rwV2Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeU64(PARAM + READ_WRITE_V2.len, len);
  r.f.mem.writeU64(PARAM + READ_WRITE_V2.buf, buf);
  r.f.mem.writeI32(PARAM + READ_WRITE_V2.fd, fd);
}

/** Sets up a v1 WriteParams block at PARAM. */
export function writeV1Params(r: Rig, fd: number, buf: number, len: number): void {
  r.f.mem.writeI32(PARAM + WRITE_V1.fd, fd);
  r.f.mem.writeU64(PARAM + WRITE_V1.buf, buf);
  r.f.mem.writeU64(PARAM + WRITE_V1.len, len);
}

/** Writes "hello " at the end of virtual page 0 and "world\n" at the start of page 1. */
export function splitHello(r: Rig): void {
  r.f.mem.write(FAKE_RAM_BASE + 0x5000 + FAKE_PAGE_SIZE - 6, utf8("hello "));
  r.f.mem.write(FAKE_RAM_BASE + 0x3000, utf8("world\n"));
}
