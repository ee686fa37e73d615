/**
 * File hypercalls, v1 and v2: FileOpen, FileClose, FileRead, FileWrite,
 * FileLseek, FileUnlink (hermit-abi.md §5.4–5.6). Parameters are copied out
 * of guest memory once, checked, handed to the guest's file service (the
 * sandbox), and the result is written back once. A guest mistake gets
 * −errno; only a parameter block outside guest memory stops the VM. v1
 * read/write buffers are guest-virtual and are translated piecewise. Pure.
 * @module
 */

import { ERRNO } from "../errno.ts";
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
} from "./abi.ts";
import { type HandlerResult, type HypercallContext, RESUME, WOULD_BLOCK } from "./context.ts";
import { stdinReady } from "./serial_input.ts";
import { stdioOutput, writeVirtual } from "./file_write_stdio.ts";
import { badParameterBlock } from "./protocol.ts";
import { decodeUtf8 } from "../utf8.ts";

/** Longest path a guest may pass, including the NUL (Linux PATH_MAX). */
export const PATH_MAX = 4096;

/** Open flags the host honours; others (O_NONBLOCK, O_CLOEXEC, …) are dropped, as uhyve does. */
export const ALLOWED_OPEN_FLAGS = 0x106c3;

/** What the file hypercalls need from the host side: the sandbox, or a fake. */
export interface GuestFiles {
  /** Opens a guest path: a guest fd, or −errno. */
  open(path: string, flags: number, mode: number): number;
  /** Closes a guest fd: 0 or −errno. */
  close(fd: number): number;
  /** Reads into `into`: bytes read, or −errno. */
  read(fd: number, into: Uint8Array): number;
  /** Writes all of `from`: bytes written, or −errno. */
  write(fd: number, from: Uint8Array): number;
  /** Moves the offset: the new offset, or −errno. */
  lseek(fd: number, offset: number, whence: number): number;
  /** Removes a guest path: 0 or −errno. */
  unlink(path: string): number;
  /**
   * Writes linux_dirent64 records of directory fd `fd` into `into` from the
   * fd's offset: bytes written, 0 at the end of the directory, or −errno.
   */
  getdents(fd: number, into: Uint8Array): number;
  /**
   * Fills `attr` (an ATTR array of `file_attr.ts`) for a guest path, following
   * a final symlink when `follow`: 0 or −errno.
   */
  stat(path: string, follow: boolean, attr: Float64Array): number;
  /** Fills `attr` for a guest fd: 0 or −errno. */
  fstat(fd: number, attr: Float64Array): number;
  /** Creates a directory at a guest path: 0 or −errno. */
  mkdir(path: string): number;
}

/**
 * Reads the NUL-terminated path at `addr`: the path, or −EFAULT (outside
 * memory), −ENAMETOOLONG (no NUL within PATH_MAX) or −EINVAL (not UTF-8).
 */
export function readGuestPath(ctx: HypercallContext, addr: number): string | number {
  if (!ctx.mem.contains(addr, 1)) return -ERRNO.EFAULT;
  const len = ctx.mem.cStringLength(addr, PATH_MAX);
  if (len < 0) {
    // No NUL: either the string runs to the end of RAM, or it is too long.
    return ctx.mem.end - addr < PATH_MAX ? -ERRNO.EFAULT : -ERRNO.ENAMETOOLONG;
  }
  try {
    return decodeUtf8(ctx.mem.bytes(addr, len), { fatal: true });
  } catch {
    return -ERRNO.EINVAL;
  }
}

function files(ctx: HypercallContext): GuestFiles | null {
  return ctx.files ?? null;
}

/** FileOpen (v1 0x440, v2 0x1110): OpenParams {name, flags, mode, ret}. */
function fileOpen(port: number): (ctx: HypercallContext, arg: number) => HandlerResult {
  return (ctx, arg) => {
    const p = OPEN;
    if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("FileOpen", port, arg, p.size);
    const name = ctx.mem.readU64(arg + p.name);
    const flags = ctx.mem.readI32(arg + p.flags) & ALLOWED_OPEN_FLAGS;
    const mode = ctx.mem.readI32(arg + p.mode);
    const path = readGuestPath(ctx, name);
    const fs = files(ctx);
    const ret = typeof path === "number"
      ? path
      : fs === null
      ? -ERRNO.ENOENT
      : fs.open(path, flags, mode);
    ctx.mem.writeI32(arg + p.ret, ret);
    return RESUME;
  };
}

/** FileClose (v1 0x480, v2 0x1120): CloseParams {fd, ret}. */
function fileClose(port: number): (ctx: HypercallContext, arg: number) => HandlerResult {
  return (ctx, arg) => {
    const p = CLOSE;
    if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("FileClose", port, arg, p.size);
    const fd = ctx.mem.readI32(arg + p.fd);
    const fs = files(ctx);
    const ret = fd >= 0 && fd <= 2 ? 0 : fs === null ? -ERRNO.EBADF : fs.close(fd);
    ctx.mem.writeI32(arg + p.ret, ret);
    return RESUME;
  };
}

/** FileUnlink (v1 0x840, v2 0x1150): UnlinkParams {name, ret}. */
function fileUnlink(port: number): (ctx: HypercallContext, arg: number) => HandlerResult {
  return (ctx, arg) => {
    const p = UNLINK;
    if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("FileUnlink", port, arg, p.size);
    const path = readGuestPath(ctx, ctx.mem.readU64(arg + p.name));
    const fs = files(ctx);
    const ret = typeof path === "number" ? path : fs === null ? -ERRNO.ENOENT : fs.unlink(path);
    ctx.mem.writeI32(arg + p.ret, ret);
    return RESUME;
  };
}

/**
 * Moves bytes between a file and the guest-virtual range `[vaddr, vaddr +
 * len)` piece by piece with `transfer` (a read or a write of one physically
 * contiguous piece). Stops at the first short transfer, since a later piece
 * would leave a gap. Returns the bytes moved, or −errno when nothing moved.
 */
function transferVirtual(
  ctx: HypercallContext,
  vaddr: number,
  len: number,
  transfer: (piece: Uint8Array) => number,
): number {
  if (len > ctx.mem.size) return -ERRNO.EFAULT;
  let total = 0;
  let error = 0;
  let done = false;
  const ok = ctx.translateRange(vaddr, len, (gpa, n) => {
    if (done) return;
    const r = transfer(ctx.mem.bytes(gpa, n));
    if (r < 0) {
      error = r;
      done = true;
    } else {
      total += r;
      if (r < n) done = true;
    }
  });
  if (!ok) return -ERRNO.EFAULT;
  return total === 0 && error < 0 ? error : total;
}

const STDIN_FD = 0;

/**
 * For a read of stdin: shows what the guest wrote (a prompt) first, then
 * says whether the read must wait for input (the call is then retried).
 */
function stdinMustWait(ctx: HypercallContext, fd: number, len: number): boolean {
  if (fd !== STDIN_FD) return false;
  ctx.stdout.flush();
  ctx.stderr.flush();
  return len > 0 && !stdinReady(ctx);
}

/** v1 FileRead (0x500): {fd, buf (virtual), len, ret}. */
export function fileReadV1(ctx: HypercallContext, arg: number): HandlerResult {
  const p = READ_V1;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileRead", V1.FILE_READ, arg, p.size);
  }
  const fd = ctx.mem.readI32(arg + p.fd);
  const buf = ctx.mem.readU64(arg + p.buf);
  const len = ctx.mem.readU64(arg + p.len);
  if (stdinMustWait(ctx, fd, len)) return WOULD_BLOCK;
  const fs = files(ctx);
  const ret = fs === null ? -ERRNO.EBADF : transferVirtual(ctx, buf, len, (b) => fs.read(fd, b));
  ctx.mem.writeU64(arg + p.ret, ret);
  return RESUME;
}

/** v2 FileRead (0x1130): {len, ret, buf (physical), fd}. */
export function fileReadV2(ctx: HypercallContext, arg: number): HandlerResult {
  const p = READ_WRITE_V2;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileRead", V2.FILE_READ, arg, p.size);
  }
  const len = ctx.mem.readU64(arg + p.len);
  const buf = ctx.mem.readU64(arg + p.buf);
  const fd = ctx.mem.readI32(arg + p.fd);
  if (stdinMustWait(ctx, fd, len)) return WOULD_BLOCK;
  const fs = files(ctx);
  let ret: number;
  if (!ctx.mem.contains(buf, len)) ret = -ERRNO.EFAULT;
  else if (fs === null) ret = -ERRNO.EBADF;
  else ret = fs.read(fd, ctx.mem.bytes(buf, len));
  ctx.mem.writeU64(arg + p.ret, ret);
  return RESUME;
}

/**
 * v1 FileWrite (0x400): {fd, buf (virtual), len}; no result field, so a
 * failure can only be logged by the caller. fds 1 and 2 go to the output.
 */
export function fileWriteV1(ctx: HypercallContext, arg: number): HandlerResult {
  const p = WRITE_V1;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileWrite", V1.FILE_WRITE, arg, p.size);
  }
  const fd = ctx.mem.readI32(arg + p.fd);
  const buf = ctx.mem.readU64(arg + p.buf);
  const len = ctx.mem.readU64(arg + p.len);
  const out = stdioOutput(ctx, fd);
  if (out !== null) {
    const result = writeVirtual(ctx, out, buf, len);
    if (result === "stalled") return WOULD_BLOCK; // retried later from where it stopped
    if (result === "unmapped") ctx.onWriteError?.(fd, -ERRNO.EFAULT);
    return RESUME;
  }
  const fs = files(ctx);
  const ret = fs === null ? -ERRNO.EBADF : transferVirtual(ctx, buf, len, (b) => fs.write(fd, b));
  if (ret < 0 || ret < len) ctx.onWriteError?.(fd, ret < 0 ? ret : -ERRNO.EIO);
  return RESUME;
}

/** v2 FileWrite (0x1100): {len, ret, buf (physical), fd}. fds 1 and 2 go to the output. */
export function fileWriteV2(ctx: HypercallContext, arg: number): HandlerResult {
  const p = READ_WRITE_V2;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileWrite", V2.FILE_WRITE, arg, p.size);
  }
  const len = ctx.mem.readU64(arg + p.len);
  const buf = ctx.mem.readU64(arg + p.buf);
  const fd = ctx.mem.readI32(arg + p.fd);
  let ret: number;
  if (!ctx.mem.contains(buf, len)) {
    ret = -ERRNO.EFAULT;
  } else {
    const out = stdioOutput(ctx, fd);
    if (out !== null) {
      const span = ctx.mem.span(buf, len);
      if (!out.writeResumable(span.u8, ctx.mem.indexIn(span, buf), len)) return WOULD_BLOCK;
      ret = len;
    } else {
      const fs = files(ctx);
      ret = fs === null ? -ERRNO.EBADF : fs.write(fd, ctx.mem.bytes(buf, len));
    }
  }
  ctx.mem.writeU64(arg + p.ret, ret);
  return RESUME;
}

/** v1 FileLseek (0x580): {fd, offset (in/out), whence}; the result replaces offset. */
export function fileLseekV1(ctx: HypercallContext, arg: number): HandlerResult {
  const p = LSEEK_V1;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileLseek", V1.FILE_LSEEK, arg, p.size);
  }
  const fd = ctx.mem.readI32(arg + p.fd);
  const offset = ctx.mem.readI64(arg + p.offset);
  const whence = ctx.mem.readI32(arg + p.whence);
  ctx.mem.writeU64(arg + p.offset, seek(ctx, fd, offset, whence));
  return RESUME;
}

/** v2 FileLseek (0x1140): {offset (in/out), whence, fd}. */
export function fileLseekV2(ctx: HypercallContext, arg: number): HandlerResult {
  const p = LSEEK_V2;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileLseek", V2.FILE_LSEEK, arg, p.size);
  }
  const offset = ctx.mem.readI64(arg + p.offset);
  const whence = ctx.mem.readU32(arg + p.whence);
  const fd = ctx.mem.readI32(arg + p.fd);
  ctx.mem.writeU64(arg + p.offset, seek(ctx, fd, offset, whence));
  return RESUME;
}

function seek(ctx: HypercallContext, fd: number, offset: number, whence: number): number {
  const fs = files(ctx);
  if (fs === null) return -ERRNO.EBADF;
  return fs.lseek(fd, offset, whence);
}

/** FileOpen handlers for v1 and v2. */
export const fileOpenV1: (ctx: HypercallContext, arg: number) => HandlerResult = fileOpen(
  V1.FILE_OPEN,
);
/** v2 FileOpen. */
export const fileOpenV2: (ctx: HypercallContext, arg: number) => HandlerResult = fileOpen(
  V2.FILE_OPEN,
);
/** v1 FileClose. */
export const fileCloseV1: (ctx: HypercallContext, arg: number) => HandlerResult = fileClose(
  V1.FILE_CLOSE,
);
/** v2 FileClose. */
export const fileCloseV2: (ctx: HypercallContext, arg: number) => HandlerResult = fileClose(
  V2.FILE_CLOSE,
);
/** v1 FileUnlink. */
export const fileUnlinkV1: (ctx: HypercallContext, arg: number) => HandlerResult = fileUnlink(
  V1.FILE_UNLINK,
);
/** v2 FileUnlink. */
export const fileUnlinkV2: (ctx: HypercallContext, arg: number) => HandlerResult = fileUnlink(
  V2.FILE_UNLINK,
);
