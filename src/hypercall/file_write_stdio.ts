/**
 * The guest's stdout and stderr (fds 1 and 2) as FileWrite targets: which
 * output a fd names, and writing a guest-virtual range to it piecewise
 * through the guest's page tables. Pure.
 * @module
 */

import type { GuestOutput } from "../io/guest_output.ts";
import type { HypercallContext } from "./context.ts";

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
