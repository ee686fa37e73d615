/**
 * The hypercall dispatch table: port → handler, built once. v1 handlers take
 * the 32-bit OUT value (a parameter address, or the byte for Uart); v2
 * handlers take RDI. Every hypercall port is a multiple of 0x10, so the table
 * is a dense array with one slot per multiple (304 slots, not 4 864: the
 * larger array alone was 39 KB of young heap at start-up), and dispatch
 * allocates nothing. Dispatch goes by port alone, as in uhyve 0.9.1: the
 * kernel's UHYVEIF note (none, 2 or 3) chooses the boot state, not the calls,
 * so a kernel may use any port of the table (uhyve's own test kernels declare
 * v1 and call v2 ports with RDI), and the v1 ports keep v1 semantics. The
 * ports uhyve 0.9.1 added for interface v3 (Getdents … Mkdir) are v2 ports.
 * Pure.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { V1, V2 } from "./abi.ts";
import { cmdsize, cmdval } from "./args.ts";
import { type Handler, VmStop } from "./context.ts";
import { exitV1, exitV2 } from "./exit.ts";
import {
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
} from "./file.ts";
import { hex } from "../hex.ts";
import { fileFstat, fileStat, getdents, mkdir } from "./file_meta.ts";
import { serialReadBuffer, serialReadByteOut } from "./serial_input.ts";
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

/** log2 of {@linkcode HYPERCALL_PORT_STEP}: a port's slot is `port >>> PORT_SHIFT`. */
const PORT_SHIFT = 4;
/** Every hypercall port is a multiple of this; the table keeps one slot per multiple. */
export const HYPERCALL_PORT_STEP = 1 << PORT_SHIFT;

/** The dense table the run loop indexes; read it with {@linkcode hypercallAt}. */
export interface HypercallTable {
  /** `slots[port / HYPERCALL_PORT_STEP]`, or undefined when that port is not a hypercall. */
  readonly slots: readonly (HypercallEntry | undefined)[];
}

/** The entry of hypercall port `port`, or undefined when `port` is not a hypercall. */
export function hypercallAt(table: HypercallTable, port: number): HypercallEntry | undefined {
  // A multiple of the step in [0, MAX_HYPERCALL_PORT): the shift is exact and keeps integer math.
  return port % HYPERCALL_PORT_STEP === 0 && port >= 0 && port < MAX_HYPERCALL_PORT
    ? table.slots[port >>> PORT_SHIFT]
    : undefined;
}

/** Every port of the table with its entry, in port order. */
export function hypercallPorts(table: HypercallTable): [number, HypercallEntry][] {
  const found: [number, HypercallEntry][] = [];
  table.slots.forEach((entry, slot) => {
    if (entry !== undefined) found.push([slot * HYPERCALL_PORT_STEP, entry]);
  });
  return found;
}

function unsupported(name: string, port: number): Handler {
  return () =>
    new VmStop(
      "error",
      EXIT_CODE.GUEST_PROTOCOL,
      `Guest hypercall ${name} (port ${hex(port)}) is not supported by dhyve`,
    );
}

/** Builds the table of every v1 and v2 (and v3: v2 ports) hypercall dhyve knows. */
export function buildHypercallTable(): HypercallTable {
  const slots: (HypercallEntry | undefined)[] = new Array(MAX_HYPERCALL_PORT >>> PORT_SHIFT)
    .fill(undefined);
  const add = (port: number, version: 1 | 2, name: string, handle: Handler): void => {
    if (port % HYPERCALL_PORT_STEP !== 0) throw new RangeError(`Port ${hex(port)} has no slot`);
    slots[port >>> PORT_SHIFT] = { name, version, handle };
  };
  add(V1.UART, 1, "Uart", serialWriteByte);
  add(V1.SERIAL_BUFFER_WRITE, 1, "SerialBufferWrite", serialWriteBufferV1);
  add(V1.EXIT, 1, "Exit", exitV1);
  add(V1.CMDSIZE, 1, "Cmdsize", cmdsize);
  add(V1.CMDVAL, 1, "Cmdval", cmdval);
  add(V1.FILE_WRITE, 1, "FileWrite", fileWriteV1);
  add(V1.FILE_OPEN, 1, "FileOpen", fileOpenV1);
  add(V1.FILE_CLOSE, 1, "FileClose", fileCloseV1);
  add(V1.FILE_READ, 1, "FileRead", fileReadV1);
  add(V1.FILE_LSEEK, 1, "FileLseek", fileLseekV1);
  add(V1.FILE_UNLINK, 1, "FileUnlink", fileUnlinkV1);
  for (
    const [name, port] of [
      ["NetWrite", V1.NET_WRITE],
      ["NetRead", V1.NET_READ],
      ["NetStat", V1.NET_STAT],
    ] as const
  ) add(port, 1, name, unsupported(name, port));

  add(V2.EXIT, 2, "Exit", exitV2);
  add(V2.SERIAL_WRITE_BYTE, 2, "SerialWriteByte", serialWriteByte);
  add(V2.SERIAL_WRITE_BUFFER, 2, "SerialWriteBuffer", serialWriteBufferV2);
  add(V2.FILE_WRITE, 2, "FileWrite", fileWriteV2);
  add(V2.SERIAL_READ_BYTE, 2, "SerialReadByte", serialReadByteOut);
  add(V2.SERIAL_READ_BUFFER, 2, "SerialReadBuffer", serialReadBuffer);
  add(V2.FILE_OPEN, 2, "FileOpen", fileOpenV2);
  add(V2.FILE_CLOSE, 2, "FileClose", fileCloseV2);
  add(V2.FILE_READ, 2, "FileRead", fileReadV2);
  add(V2.FILE_LSEEK, 2, "FileLseek", fileLseekV2);
  add(V2.FILE_UNLINK, 2, "FileUnlink", fileUnlinkV2);
  add(V2.GETDENTS, 2, "Getdents", getdents);
  add(V2.FILE_STAT, 2, "FileStat", fileStat);
  add(V2.FILE_FSTAT, 2, "FileFstat", fileFstat);
  add(V2.MKDIR, 2, "Mkdir", mkdir);
  for (
    const [name, port] of [
      ["SharedMemOpen", V2.SHARED_MEM_OPEN],
      ["SharedMemClose", V2.SHARED_MEM_CLOSE],
    ] as const
  ) add(port, 2, name, unsupported(name, port));
  return { slots };
}
