/**
 * Stops for guests that break the hypercall protocol: one clear line naming
 * the hypercall, the port and what was wrong. Pure.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { hex } from "../hex.ts";
import { VmStop } from "./context.ts";

/** A stop for a hypercall whose parameters are unusable. */
export function protocolError(call: string, port: number, what: string): VmStop {
  return new VmStop(
    "error",
    EXIT_CODE.GUEST_PROTOCOL,
    `Guest hypercall ${call} (port ${hex(port)}) ${what}`,
  );
}

/** A stop for a parameter block that does not lie wholly inside guest RAM. */
export function badParameterBlock(
  call: string,
  port: number,
  addr: number,
  size: number,
): VmStop {
  return protocolError(
    call,
    port,
    `passed a parameter block at ${hex(addr)} (${size} bytes) outside guest memory`,
  );
}
