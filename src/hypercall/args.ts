/**
 * Cmdsize (0x740) and Cmdval (0x780), v1 only: how Hermit kernels before 0.10
 * get argv and the environment. Unlike uhyve 0.8, the sizes and the copies
 * describe the same lists, and argv[0] is the kernel path with the user's
 * arguments after it (uhyve's copy overwrites argv[0]). Pure.
 * @module
 */

import { CMDSIZE, CMDVAL, MAX_ARGC_ENVC, V1 } from "./abi.ts";
import {
  type GuestCommandLine,
  type HandlerResult,
  type HypercallContext,
  RESUME,
} from "./context.ts";
import { hex } from "../hex.ts";
import { badParameterBlock, protocolError } from "./protocol.ts";

/**
 * Checks that a command line fits what Cmdsize can describe.
 * @returns an error message, or null when it fits.
 */
export function checkCommandLine(cmdline: GuestCommandLine): string | null {
  if (cmdline.argv.length > MAX_ARGC_ENVC) {
    return `Too many kernel arguments: ${cmdline.argv.length - 1} given, ` +
      `at most ${MAX_ARGC_ENVC - 1} fit (argv[0] is the kernel path)`;
  }
  if (cmdline.env.length > MAX_ARGC_ENVC) {
    return `Too many environment variables: ${cmdline.env.length} given, at most ${MAX_ARGC_ENVC} fit`;
  }
  return null;
}

/** Cmdsize: fills argc, argsz[], envc and envsz[] (sizes include the NUL). */
export function cmdsize(ctx: HypercallContext, arg: number): HandlerResult {
  const p = CMDSIZE;
  if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("Cmdsize", V1.CMDSIZE, arg, p.size);
  const { argv, env } = ctx.cmdline;
  const argc = Math.min(argv.length, MAX_ARGC_ENVC);
  const envc = Math.min(env.length, MAX_ARGC_ENVC);
  ctx.mem.writeI32(arg + p.argc, argc);
  for (let i = 0; i < argc; i++) ctx.mem.writeI32(arg + p.argsz + 4 * i, argv[i]!.length + 1);
  ctx.mem.writeI32(arg + p.envc, envc);
  for (let i = 0; i < envc; i++) ctx.mem.writeI32(arg + p.envsz + 4 * i, env[i]!.length + 1);
  return RESUME;
}

function copyStrings(
  ctx: HypercallContext,
  array: number,
  strings: readonly Uint8Array[],
  what: string,
): HandlerResult {
  const n = Math.min(strings.length, MAX_ARGC_ENVC);
  if (n === 0) return RESUME;
  if (!ctx.mem.contains(array, 8 * n)) {
    return protocolError(
      "Cmdval",
      V1.CMDVAL,
      `passed an ${what} array at ${hex(array)} (${n} pointers) outside guest memory`,
    );
  }
  for (let i = 0; i < n; i++) {
    const dst = ctx.mem.readU64(array + 8 * i);
    const s = strings[i]!;
    if (!ctx.mem.contains(dst, s.length + 1)) {
      return protocolError(
        "Cmdval",
        V1.CMDVAL,
        `passed ${what}[${i}] at ${hex(dst)} with no room for ${
          s.length + 1
        } bytes in guest memory`,
      );
    }
    ctx.mem.write(dst, s);
    ctx.mem.writeU8(dst + s.length, 0);
  }
  return RESUME;
}

/** Cmdval: copies argv and env into the buffers the guest allocated after Cmdsize. */
export function cmdval(ctx: HypercallContext, arg: number): HandlerResult {
  const p = CMDVAL;
  if (!ctx.mem.contains(arg, p.size)) return badParameterBlock("Cmdval", V1.CMDVAL, arg, p.size);
  const argvArray = ctx.mem.readU64(arg + p.argv);
  const envArray = ctx.mem.readU64(arg + p.envp);
  const result = copyStrings(ctx, argvArray, ctx.cmdline.argv, "argv");
  if (result !== RESUME) return result;
  return copyStrings(ctx, envArray, ctx.cmdline.env, "env");
}
