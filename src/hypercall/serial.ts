/**
 * Serial output hypercalls: v1 Uart (0x800, the byte itself), v2
 * SerialWriteByte (0x1020, the byte in RDI), and SerialWriteBuffer (v1 0x880
 * {buf, len}; v2 0x1030 {len, buf}: the field order differs). Pure.
 * @module
 */

import { SERIAL_BUFFER_V1, SERIAL_BUFFER_V2, V1, V2 } from "./abi.ts";
import { type HandlerResult, type HypercallContext, RESUME, WOULD_BLOCK } from "./context.ts";
import { hex } from "../hex.ts";
import { badParameterBlock, protocolError } from "./protocol.ts";

/**
 * Uart / SerialWriteByte: the low byte of `arg` is the character. Waits
 * (WOULD_BLOCK) while the output is full and its reader does not read.
 */
export function serialWriteByte(ctx: HypercallContext, arg: number): HandlerResult {
  return ctx.stdout.putByte(arg & 0xff) ? RESUME : WOULD_BLOCK;
}

function writeBuffer(
  ctx: HypercallContext,
  buf: number,
  len: number,
  port: number,
): HandlerResult {
  if (!ctx.mem.contains(buf, len)) {
    return protocolError(
      "SerialWriteBuffer",
      port,
      `passed a buffer at ${hex(buf)} (${len} bytes) outside guest memory`,
    );
  }
  // A stalled write is retried with the same parameters and goes on where it stopped.
  const span = ctx.mem.span(buf, len);
  return ctx.stdout.writeResumable(span.u8, ctx.mem.indexIn(span, buf), len) ? RESUME : WOULD_BLOCK;
}

/** v1 SerialBufferWrite: `arg` points to {u64 buf, u64 len}. */
export function serialWriteBufferV1(ctx: HypercallContext, arg: number): HandlerResult {
  const p = SERIAL_BUFFER_V1;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("SerialWriteBuffer", V1.SERIAL_BUFFER_WRITE, arg, p.size);
  }
  return writeBuffer(
    ctx,
    ctx.mem.readU64(arg + p.buf),
    ctx.mem.readU64(arg + p.len),
    V1.SERIAL_BUFFER_WRITE,
  );
}

/** v2 SerialWriteBuffer: RDI points to {u64 len, u64 buf}. */
export function serialWriteBufferV2(ctx: HypercallContext, arg: number): HandlerResult {
  const p = SERIAL_BUFFER_V2;
  if (!ctx.mem.contains(arg, p.size)) {
    return badParameterBlock("SerialWriteBuffer", V2.SERIAL_WRITE_BUFFER, arg, p.size);
  }
  return writeBuffer(
    ctx,
    ctx.mem.readU64(arg + p.buf),
    ctx.mem.readU64(arg + p.len),
    V2.SERIAL_WRITE_BUFFER,
  );
}
