/**
 * The hypercall region of the port space as a bus device: an OUT to a
 * hypercall port runs its handler from the table (v1 with the OUT value, v2
 * with RDI); an OUT to any other port of the region is a protocol error; an
 * IN from SerialReadByte (v2) reads one byte of the guest's stdin, and from
 * anywhere else all ones. Nothing is allocated per call. Pure: RDI comes
 * from the run loop's `RdiSource`.
 * @module
 */

import type { BusDevice, DeviceResult } from "../bus/bus.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { V2 } from "../hypercall/abi.ts";
import { type HypercallContext, RESUME, VmStop } from "../hypercall/context.ts";
import { hex } from "../hex.ts";
import { readSerialByte } from "../hypercall/serial_input.ts";
import { hypercallAt, type HypercallTable, MAX_HYPERCALL_PORT } from "../hypercall/table.ts";

/** First port of the hypercall region (v1's FileWrite). */
export const HYPERCALL_REGION_START = 0x400;
/** End of the hypercall region (exclusive). */
export const HYPERCALL_REGION_END = MAX_HYPERCALL_PORT;

/** Where a v2 hypercall's argument comes from: the vCPU's RDI, as a signed number. */
export interface RdiSource {
  /** RDI: addresses (< 2^53) read as themselves, a sign-extended negative stays negative. */
  rdi(): number;
}

/** The hypercall ports of one vCPU. */
export class HypercallPorts implements BusDevice {
  /** Bus device name. */
  readonly name = "hypercalls";
  readonly #table: HypercallTable;
  readonly #ctx: HypercallContext;
  readonly #counts: Float64Array;
  readonly #regs: RdiSource;

  /** `counts[port]` is bumped for each hypercall made. */
  constructor(table: HypercallTable, ctx: HypercallContext, counts: Float64Array, regs: RdiSource) {
    this.#table = table;
    this.#ctx = ctx;
    this.#counts = counts;
    this.#regs = regs;
  }

  /** A hypercall (OUT): runs its handler; unknown ports stop the VM. */
  write(port: number, size: number, data: Uint8Array, at: number): DeviceResult {
    const entry = hypercallAt(this.#table, port);
    if (entry === undefined) {
      return new VmStop(
        "error",
        EXIT_CODE.GUEST_PROTOCOL,
        `The guest wrote to I/O port ${hex(port)}, which is not a hypercall dhyve knows`,
      );
    }
    this.#counts[port]!++;
    const arg = entry.version === 2
      ? this.#regs.rdi()
      : size === 4
      ? (data[at]! | data[at + 1]! << 8 | data[at + 2]! << 16 | data[at + 3]! << 24) >>> 0
      : size === 2
      ? data[at]! | data[at + 1]! << 8
      : data[at]!;
    return entry.handle(this.#ctx, arg);
  }

  /** An IN: SerialReadByte gives one byte of stdin (all ones at its end); other ports all ones. */
  read(port: number, _size: number, n: number, data: Uint8Array, at: number): DeviceResult {
    if (port !== V2.SERIAL_READ_BYTE) {
      data.fill(0xff, at, at + n);
      return RESUME;
    }
    this.#counts[port]!++;
    const byte = readSerialByte(this.#ctx);
    data.fill(byte < 0 ? 0xff : 0, at, at + n);
    if (byte >= 0) data[at] = byte;
    return RESUME;
  }
}
