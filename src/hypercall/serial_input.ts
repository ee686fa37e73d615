/**
 * Serial input (v2): SerialReadBuffer (0x1050, RDI → {maxlen, len, buf})
 * and SerialReadByte (0x1040), both served from the host's stdin. uhyve 0.8
 * declares them but panics. SerialReadByte carries no parameter in the ABI;
 * dhyve answers an `in` from port 0x1040 with the byte (an i32 -1 at end of
 * input for 4-byte reads, 0xFF for 1-byte reads), and an `out` to 0x1040
 * with RDI pointing at an i32 by storing the byte (or -1) there. Guest
 * output is flushed first, so a prompt shows before the read blocks. Pure.
 * @module
 */

import { SERIAL_READ_BUFFER_V2, V2 } from "./abi.ts";
import { type HandlerResult, type HypercallContext, RESUME, WOULD_BLOCK } from "./context.ts";
import { hex } from "../hex.ts";
import { badParameterBlock, protocolError } from "./protocol.ts";

/** Where serial input comes from: `Deno.stdin`, or a fake. */
export interface InputSource {
  /** Reads into `p`: the byte count, or null at end of input. */
  readSync(p: Uint8Array): number | null;
  /**
   * Whether a read would return at once (data or end of input). Without it,
   * reads are assumed ready. With it, a guest waiting for input does not
   * block the thread: signals and --timeout still stop it.
   */
  ready?(): boolean;
}

/** True when reading the guest's stdin now would not block. */
export function stdinReady(ctx: HypercallContext): boolean {
  return ctx.stdin?.ready?.() ?? true;
}

const oneByte = new Uint8Array(1);

/** Reads one byte of serial input: 0–255, or -1 at end of input (or without input). */
export function readSerialByte(ctx: HypercallContext): number {
  ctx.stdout.flush();
  if (ctx.stdin === undefined) return -1;
  try {
    const n = ctx.stdin.readSync(oneByte);
    return n === null || n === 0 ? -1 : oneByte[0]!;
  } catch {
    return -1;
  }
}

/** SerialReadByte as an `out`: RDI points at an i32 that receives the byte or -1. */
export function serialReadByteOut(ctx: HypercallContext, arg: number): HandlerResult {
  if (!ctx.mem.contains(arg, 4)) {
    return badParameterBlock("SerialReadByte", V2.SERIAL_READ_BYTE, arg, 4);
  }
  ctx.mem.writeI32(arg, readSerialByte(ctx));
  return RESUME;
}

/** SerialReadBuffer: reads up to `maxlen` bytes into `buf`, sets `len` (0 at end of input). */
export function serialReadBuffer(ctx: HypercallContext, arg: number): HandlerResult {
  const p = SERIAL_READ_BUFFER_V2;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("SerialReadBuffer", V2.SERIAL_READ_BUFFER, arg, p.size);
  }
  const maxlen = ctx.mem.readU64(arg + p.maxlen);
  const buf = ctx.mem.readU64(arg + p.buf);
  if (!ctx.mem.contains(buf, maxlen)) {
    return protocolError(
      "SerialReadBuffer",
      V2.SERIAL_READ_BUFFER,
      `passed a buffer at ${hex(buf)} (${maxlen} bytes) outside guest memory`,
    );
  }
  ctx.stdout.flush();
  if (maxlen > 0 && !stdinReady(ctx)) return WOULD_BLOCK;
  let n = 0;
  if (ctx.stdin !== undefined && maxlen > 0) {
    try {
      n = ctx.stdin.readSync(ctx.mem.bytes(buf, maxlen)) ?? 0;
    } catch {
      n = 0;
    }
  }
  ctx.mem.writeU64(arg + p.len, n);
  return RESUME;
}
