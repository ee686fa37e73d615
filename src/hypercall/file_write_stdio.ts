/**
 * FileWrite to the guest's stdout and stderr (fds 1 and 2), v1 and v2. v1
 * buffers are guest-virtual and are translated piecewise through the guest's
 * page tables; v2 buffers are guest-physical. Other fds are the file map's
 * business. Pure.
 * @module
 */

import { ERRNO } from "../errno.ts";
import type { GuestOutput } from "../io/guest_output.ts";
import { READ_WRITE_V2, V1, WRITE_V1 } from "./abi.ts";
import { type HandlerResult, type HypercallContext, RESUME } from "./context.ts";
import { badParameterBlock, hex, protocolError } from "./protocol.ts";

/** The guest output stream for a stdio fd, or null for any other fd. */
export function stdioOutput(ctx: HypercallContext, fd: number): GuestOutput | null {
  return fd === 1 ? ctx.stdout : fd === 2 ? ctx.stderr : null;
}

/**
 * Writes a guest-virtual range to `out`. Returns false when part of the range
 * is unmapped (nothing is written then).
 */
export function writeVirtual(
  ctx: HypercallContext,
  out: GuestOutput,
  vaddr: number,
  len: number,
): boolean {
  if (len > ctx.mem.size) return false;
  const u8 = ctx.mem.u8;
  const base = ctx.mem.base;
  return ctx.translateRange(vaddr, len, (gpa, n) => out.write(u8, gpa - base, n));
}

/**
 * v1 FileWrite to fd 1 or 2. v1 has no result field, so an unmapped buffer
 * stops the VM instead of returning EFAULT. Returns null for other fds.
 */
export function writeStdioV1(ctx: HypercallContext, arg: number): HandlerResult | null {
  const p = WRITE_V1;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("FileWrite", V1.FILE_WRITE, arg, p.size);
  }
  const out = stdioOutput(ctx, ctx.mem.readI32(arg + p.fd));
  if (out === null) return null;
  const buf = ctx.mem.readU64(arg + p.buf);
  const len = ctx.mem.readU64(arg + p.len);
  if (!writeVirtual(ctx, out, buf, len)) {
    return protocolError(
      "FileWrite",
      V1.FILE_WRITE,
      `passed a buffer at virtual ${hex(buf)} (${len} bytes) that is not mapped in guest memory`,
    );
  }
  return RESUME;
}

/** v2 FileWrite to fd 1 or 2: ret = len, or -EFAULT. Returns false for other fds. */
export function writeStdioV2(ctx: HypercallContext, arg: number): boolean {
  const p = READ_WRITE_V2;
  const out = stdioOutput(ctx, ctx.mem.readI32(arg + p.fd));
  if (out === null) return false;
  const buf = ctx.mem.readU64(arg + p.buf);
  const len = ctx.mem.readU64(arg + p.len);
  if (ctx.mem.contains(buf, len)) {
    out.write(ctx.mem.u8, buf - ctx.mem.base, len);
    ctx.mem.writeU64(arg + p.ret, len);
  } else {
    ctx.mem.writeU64(arg + p.ret, -ERRNO.EFAULT);
  }
  return true;
}
