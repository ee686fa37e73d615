/**
 * One vCPU on the main thread (the fastest start-up: no Worker). KVM_RUN
 * blocks this thread, so a thread timer interrupts it regularly (EINTR):
 * the event loop then gets a turn, and the supervisor's signal listeners and
 * clock run. Hypercalls waiting for stdin, or for a reader of stdout/stderr
 * that stopped reading, return WAITING and are retried after a pause, so
 * nothing here blocks. A vCPU found halted for good on two ticks in a row
 * ends the run (a dead guest).
 * @module
 */

import { traceMark } from "../startup_trace.ts";
import { currentThreadId, Regs, ThreadTicker } from "../kvm.ts";
import { logger } from "../log.ts";
import { flushAll } from "../io/guest_output.ts";
import { VmStop } from "../hypercall/context.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { loadEmulator, OUTCOME, type VcpuLoop } from "../vcpu/run_loop.ts";
import { DEAD_TICKS, haltedForGood } from "../vcpu/halted.ts";
import { deadGuestStop, type Supervisor } from "./supervisor.ts";
import { sleep, yieldTurn } from "../host/sleep.ts";

const log = logger("vm");

/** How often a guest waiting for stdin (or a stalled reader) is tried again. */
const INPUT_POLL_MS = 10;
/** Period of the tick that interrupts a halted guest. */
const TICK_MS = 100;
/** How long to wait for a signal's listener after KVM_RUN was interrupted. */
const SIGNAL_GRACE_MS = 50;

/** How often a busy single-vCPU run lets the event loop see signals and the clock. */
export const YIELD_EVERY_MS = 50;

/**
 * Runs `loop` (built with `yieldEveryMs`) until the VM stops; returns the
 * supervisor's stop: the guest's, a signal's, the time limit's, or a dead
 * guest's. `ready` is called once the run is set up, right before the first
 * KVM_RUN (the machine gives the VM its RAM there).
 */
export async function runOneVcpu(
  loop: VcpuLoop,
  supervisor: Supervisor,
  timeoutMs?: number,
  ready?: () => Promise<void>,
): Promise<VmStop> {
  const { vcpu, ctx } = loop.options;
  // A tick aimed at this thread interrupts KVM_RUN even when the guest is
  // halted, so signal listeners and the deadline are seen within a tick.
  const tick = (): void => supervisor.poke();
  Deno.addSignalListener("SIGALRM", tick);
  const ticker = ThreadTicker.start(currentThreadId(), Math.min(TICK_MS, timeoutMs ?? TICK_MS));
  if (ticker === null) log.debug("No thread timer: signals may wait for the next guest exit");
  const regs = new Regs();
  let deadTicks = 0;
  try {
    await ready?.();
    traceMark("loop");
    while (supervisor.stop === null) {
      const outcome = loop.run();
      if (outcome === OUTCOME.INTERRUPTED) {
        await supervisor.wait(SIGNAL_GRACE_MS);
        const halted = supervisor.stop === null ? haltedForGood(vcpu, regs) : null;
        deadTicks = halted === null ? 0 : deadTicks + 1;
        if (halted !== null && deadTicks >= DEAD_TICKS) {
          flushAll(ctx.stdout, ctx.stderr);
          supervisor.claim(deadGuestStop([halted], [ctx.stdout.lastLine(), ctx.stderr.lastLine()]));
        }
      } else if (outcome === OUTCOME.YIELDED) {
        await yieldTurn();
      } else if (outcome === OUTCOME.WAITING) {
        await sleep(INPUT_POLL_MS);
      } else if (outcome === OUTCOME.NEEDS_EMULATOR) {
        await loadEmulator();
      } else {
        supervisor.claim(
          loop.stop ??
            new VmStop("error", EXIT_CODE.INTERNAL, "The vCPU stopped without a reason"),
        );
      }
    }
    // The guest's last lines wait for a slow reader; a signal or the limit cuts that short.
    await supervisor.drain(ctx.stdout, ctx.stderr);
    return supervisor.stop;
  } finally {
    ticker?.stop();
    Deno.removeSignalListener("SIGALRM", tick);
  }
}
