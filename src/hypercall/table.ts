/**
 * The hypercall dispatch table: port → handler, built once. v1 handlers take
 * the 32-bit OUT value (a parameter address, or the byte for Uart); v2
 * handlers take RDI. The run loop indexes a dense array by port, so dispatch
 * allocates nothing. Pure.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { ERRNO } from "../errno.ts";
import { READ_WRITE_V2, V1, V2 } from "./abi.ts";
import { cmdsize, cmdval } from "./args.ts";
import {
  type Handler,
  type HandlerResult,
  type HypercallContext,
  RESUME,
  VmStop,
} from "./context.ts";
import { exitV1, exitV2 } from "./exit.ts";
import { writeStdioV1, writeStdioV2 } from "./file_write_stdio.ts";
import { badParameterBlock, hex } from "./protocol.ts";
import { serialWriteBufferV1, serialWriteBufferV2, serialWriteByte } from "./serial.ts";

/** One entry of the table. */
export interface HypercallEntry {
  /** Name for messages and stats, e.g. "FileWrite". */
  readonly name: string;
  /** Interface version: 1 reads the OUT value, 2 reads RDI. */
  readonly version: 1 | 2;
  /** The handler. */
  readonly handle: Handler;
}

/** Ports above this are never hypercalls. */
export const MAX_HYPERCALL_PORT = 0x1300;

/** The dense table the run loop indexes by port. */
export interface HypercallTable {
  /** `entries[port]`, or undefined when the port is not a hypercall. */
  readonly entries: readonly (HypercallEntry | undefined)[];
}

function unsupported(name: string, port: number): Handler {
  return () =>
    new VmStop(
      "error",
      EXIT_CODE.GUEST_PROTOCOL,
      `Guest hypercall ${name} (port ${hex(port)}) is not supported by this version of dhyve`,
    );
}

function fileWriteV1(ctx: HypercallContext, arg: number): HandlerResult {
  return writeStdioV1(ctx, arg) ?? unsupported("FileWrite to a file", V1.FILE_WRITE)(ctx, arg);
}

function fileWriteV2(ctx: HypercallContext, arg: number): HandlerResult {
  if (!ctx.mem.contains(arg, READ_WRITE_V2.size)) {
    return badParameterBlock("FileWrite", V2.FILE_WRITE, arg, READ_WRITE_V2.size);
  }
  if (writeStdioV2(ctx, arg)) return RESUME;
  ctx.mem.writeU64(arg + READ_WRITE_V2.ret, -ERRNO.EBADF);
  return RESUME;
}

/** Builds the table of every v1 and v2 hypercall dhyve knows. */
export function buildHypercallTable(): HypercallTable {
  const entries: (HypercallEntry | undefined)[] = new Array(MAX_HYPERCALL_PORT).fill(undefined);
  const add = (port: number, version: 1 | 2, name: string, handle: Handler): void => {
    entries[port] = { name, version, handle };
  };
  add(V1.UART, 1, "Uart", serialWriteByte);
  add(V1.SERIAL_BUFFER_WRITE, 1, "SerialBufferWrite", serialWriteBufferV1);
  add(V1.EXIT, 1, "Exit", exitV1);
  add(V1.CMDSIZE, 1, "Cmdsize", cmdsize);
  add(V1.CMDVAL, 1, "Cmdval", cmdval);
  add(V1.FILE_WRITE, 1, "FileWrite", fileWriteV1);
  for (
    const [name, port] of [
      ["FileOpen", V1.FILE_OPEN],
      ["FileClose", V1.FILE_CLOSE],
      ["FileRead", V1.FILE_READ],
      ["FileLseek", V1.FILE_LSEEK],
      ["FileUnlink", V1.FILE_UNLINK],
      ["NetWrite", V1.NET_WRITE],
      ["NetRead", V1.NET_READ],
      ["NetStat", V1.NET_STAT],
    ] as const
  ) add(port, 1, name, unsupported(name, port));

  add(V2.EXIT, 2, "Exit", exitV2);
  add(V2.SERIAL_WRITE_BYTE, 2, "SerialWriteByte", serialWriteByte);
  add(V2.SERIAL_WRITE_BUFFER, 2, "SerialWriteBuffer", serialWriteBufferV2);
  add(V2.FILE_WRITE, 2, "FileWrite", fileWriteV2);
  for (
    const [name, port] of [
      ["SerialReadByte", V2.SERIAL_READ_BYTE],
      ["SerialReadBuffer", V2.SERIAL_READ_BUFFER],
      ["FileOpen", V2.FILE_OPEN],
      ["FileClose", V2.FILE_CLOSE],
      ["FileRead", V2.FILE_READ],
      ["FileLseek", V2.FILE_LSEEK],
      ["FileUnlink", V2.FILE_UNLINK],
      ["SharedMemOpen", V2.SHARED_MEM_OPEN],
      ["SharedMemClose", V2.SHARED_MEM_CLOSE],
    ] as const
  ) add(port, 2, name, unsupported(name, port));
  return { entries };
}
