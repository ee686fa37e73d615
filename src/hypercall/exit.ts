/**
 * The Exit hypercall (v1 0x540 with a pointer to an i32, v2 0x1010 with the
 * code in RDI): stops the VM with the guest's exit code. Pure.
 * @module
 */

import { EXIT_V1, V1 } from "./abi.ts";
import { type HandlerResult, type HypercallContext, VmStop } from "./context.ts";
import { badParameterBlock } from "./protocol.ts";

/** v1 Exit: `arg` is the guest-physical address of an i32. */
export function exitV1(ctx: HypercallContext, arg: number): HandlerResult {
  if (!ctx.mem.contains(arg, EXIT_V1.size)) {
    return badParameterBlock("Exit", V1.EXIT, arg, EXIT_V1.size);
  }
  return new VmStop("exit", ctx.mem.readI32(arg + EXIT_V1.arg));
}

/** v2 Exit: the low 32 bits of RDI are the exit code. */
export function exitV2(_ctx: HypercallContext, arg: number): HandlerResult {
  return new VmStop("exit", arg | 0);
}
