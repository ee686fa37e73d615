/**
 * The file hypercalls uhyve 0.9.1 added with interface v3 (v2 ports, RDI
 * carries the parameter's guest-physical address): Getdents 0x1160, FileStat
 * 0x1170 (stat and lstat), FileFstat 0x1180 and Mkdir 0x1190. Unlike the
 * older calls, each writes a tagged result (a Rust `#[repr(C)]` enum) whose
 * error payload is a *positive* errno. Parameters are read once, checked,
 * handed to the guest's file service, and the result written back; only a
 * parameter block outside guest memory stops the VM. Where uhyve 0.9.1
 * panics (an unknown StatKind) or gives EIO (getdents on stdio), these
 * handlers give EINVAL and ENOTDIR. Pure.
 * @module
 */

import { ERRNO } from "../errno.ts";
import { ATTR, newFileAttr } from "../file_attr.ts";
import {
  FILE_ATTR,
  FSTAT,
  GETDENTS,
  GETDENTS_RESULT,
  MKDIR,
  STAT,
  STAT_KIND,
  STATUS_RESULT,
  V2,
} from "./abi.ts";
import { type HandlerResult, type HypercallContext, RESUME } from "./context.ts";
import { readGuestPath } from "./file.ts";
import { badParameterBlock } from "./protocol.ts";

/** One attribute buffer per thread, reused by every FileStat/FileFstat. */
const scratch = newFileAttr();

/** Writes a FileAttr (120 bytes, checked by the caller) from an ATTR array. */
function writeFileAttr(ctx: HypercallContext, at: number, attr: Float64Array): void {
  const mem = ctx.mem;
  const a = FILE_ATTR;
  mem.fill(at, a.size);
  mem.writeU64(at + a.dev, attr[ATTR.DEV]!);
  mem.writeU64(at + a.ino, attr[ATTR.INO]!);
  mem.writeU64(at + a.nlink, attr[ATTR.NLINK]!);
  mem.writeU32(at + a.mode, attr[ATTR.MODE]!);
  mem.writeU32(at + a.uid, attr[ATTR.UID]!);
  mem.writeU32(at + a.gid, attr[ATTR.GID]!);
  mem.writeU64(at + a.rdev, attr[ATTR.RDEV]!);
  mem.writeU64(at + a.sizeField, attr[ATTR.SIZE]!);
  mem.writeU64(at + a.blksize, attr[ATTR.BLKSIZE]!);
  mem.writeU64(at + a.blocks, attr[ATTR.BLOCKS]!);
  writeTimespec(ctx, at + a.atime, attr, ATTR.ATIME_SEC);
  writeTimespec(ctx, at + a.mtime, attr, ATTR.MTIME_SEC);
  writeTimespec(ctx, at + a.ctime, attr, ATTR.CTIME_SEC);
}

/** Writes a Timespec {i64 sec, i32 nsec} from `attr[sec]` and the nsec after it. */
function writeTimespec(ctx: HypercallContext, at: number, attr: Float64Array, sec: number): void {
  ctx.mem.writeU64(at, attr[sec]!);
  ctx.mem.writeI32(at + 8, attr[sec + 1]!);
}

/** Writes a StatResult/MkdirResult: Success, or Error with the positive errno of `ret` < 0. */
function writeStatus(ctx: HypercallContext, tagAt: number, errnoAt: number, ret: number): void {
  if (ret < 0) {
    ctx.mem.writeU32(tagAt, STATUS_RESULT.ERROR);
    ctx.mem.writeI32(errnoAt, -ret);
  } else {
    ctx.mem.writeU32(tagAt, STATUS_RESULT.SUCCESS);
  }
}

/** Writes a stat's outcome: the FileAttr at `attr` on success, then the StatResult. */
function finishStat(
  ctx: HypercallContext,
  attr: number,
  tagAt: number,
  errnoAt: number,
  ret: number,
): HandlerResult {
  if (ret >= 0) writeFileAttr(ctx, attr, scratch);
  writeStatus(ctx, tagAt, errnoAt, ret);
  return RESUME;
}

/**
 * Getdents (0x1160): GetdentParams {fd, buf, len, ret}. Success carries the
 * bytes written; the end of the directory is EndOfDirectory (and stays so
 * until the guest seeks); a buffer outside guest memory is EFAULT.
 */
export function getdents(ctx: HypercallContext, arg: number): HandlerResult {
  const p = GETDENTS;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("Getdents", V2.GETDENTS, arg, p.size);
  }
  const fd = ctx.mem.readI32(arg + p.fd);
  const buf = ctx.mem.readU64(arg + p.buf);
  const len = ctx.mem.readU64(arg + p.len);
  const fs = ctx.files;
  let ret: number;
  if (!ctx.mem.contains(buf, len)) ret = -ERRNO.EFAULT;
  else if (fs === undefined) ret = -ERRNO.EBADF;
  else ret = fs.getdents(fd, ctx.mem.bytes(buf, len));
  if (ret > 0) {
    ctx.mem.writeU32(arg + p.tag, GETDENTS_RESULT.SUCCESS);
    ctx.mem.writeU64(arg + p.value, ret);
  } else if (ret === 0) {
    ctx.mem.writeU32(arg + p.tag, GETDENTS_RESULT.END_OF_DIRECTORY);
  } else {
    ctx.mem.writeU32(arg + p.tag, GETDENTS_RESULT.ERROR);
    ctx.mem.writeI32(arg + p.value, -ret);
  }
  return RESUME;
}

/**
 * FileStat (0x1170): StatParams {name, kind, attr, ret}. kind 0 follows a
 * final symlink (stat), 1 does not (lstat), anything else is EINVAL.
 */
export function fileStat(ctx: HypercallContext, arg: number): HandlerResult {
  const p = STAT;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileStat", V2.FILE_STAT, arg, p.size);
  }
  const kind = ctx.mem.readU32(arg + p.kind);
  const attr = ctx.mem.readU64(arg + p.attr);
  const fs = ctx.files;
  let ret: number;
  if (kind !== STAT_KIND.STAT && kind !== STAT_KIND.LSTAT) {
    ret = -ERRNO.EINVAL;
  } else if (!ctx.mem.contains(attr, FILE_ATTR.size)) {
    ret = -ERRNO.EFAULT;
  } else {
    const path = readGuestPath(ctx, ctx.mem.readU64(arg + p.name));
    ret = typeof path === "number"
      ? path
      : fs === undefined
      ? -ERRNO.ENOENT
      : fs.stat(path, kind === STAT_KIND.STAT, scratch);
  }
  return finishStat(ctx, attr, arg + p.tag, arg + p.errno, ret);
}

/** FileFstat (0x1180): FstatParams {fd, attr, ret}. fds 0–2 are EBADF (no host metadata). */
export function fileFstat(ctx: HypercallContext, arg: number): HandlerResult {
  const p = FSTAT;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileFstat", V2.FILE_FSTAT, arg, p.size);
  }
  const fd = ctx.mem.readI32(arg + p.fd);
  const attr = ctx.mem.readU64(arg + p.attr);
  const fs = ctx.files;
  let ret: number;
  if (!ctx.mem.contains(attr, FILE_ATTR.size)) ret = -ERRNO.EFAULT;
  else if (fs === undefined || (fd >= 0 && fd <= 2)) ret = -ERRNO.EBADF;
  else ret = fs.fstat(fd, scratch);
  return finishStat(ctx, attr, arg + p.tag, arg + p.errno, ret);
}

/** Mkdir (0x1190): MkdirParams {path, len (ignored, as uhyve), ret}. */
export function mkdir(ctx: HypercallContext, arg: number): HandlerResult {
  const p = MKDIR;
  if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("Mkdir", V2.MKDIR, arg, p.size);
  const path = readGuestPath(ctx, ctx.mem.readU64(arg + p.path));
  const fs = ctx.files;
  const ret = typeof path === "number" ? path : fs === undefined ? -ERRNO.ENOENT : fs.mkdir(path);
  writeStatus(ctx, arg + p.tag, arg + p.errno, ret);
  return RESUME;
}
