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

/** How a write to guest stdout/stderr ended. */
export type StdioWriteResult = "done" | "unmapped" | "stalled";

/**
 * Writes a guest-virtual range to `out`, going on after the output's
 * `progress` when an earlier try stalled. "unmapped": part of the range is
 * unmapped (nothing is written then); "stalled": the reader is not reading,
 * retry the call later.
 */
export function writeVirtual(
  ctx: HypercallContext,
  out: GuestOutput,
  vaddr: number,
  len: number,
): StdioWriteResult {
  if (len > ctx.mem.size) return "unmapped";
  const mem = ctx.mem;
  const from = out.progress < len ? out.progress : 0;
  let at = 0; // offset in the range of the current piece
  let stalledAt = -1;
  const mapped = ctx.translateRange(vaddr, len, (gpa, n) => {
    const start = at;
    at += n;
    if (stalledAt >= 0 || at <= from) return; // stalled, or written by an earlier try
    const skip = from > start ? from - start : 0;
    const span = mem.span(gpa + skip, n - skip);
    const taken = out.write(span.u8, mem.indexIn(span, gpa + skip), n - skip);
    if (taken < n - skip) stalledAt = start + skip + taken;
  });
  if (!mapped) return "unmapped";
  if (stalledAt >= 0) {
    out.progress = stalledAt;
    return "stalled";
  }
  out.progress = 0;
  return "done";
}
