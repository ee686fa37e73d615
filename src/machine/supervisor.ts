/**
 * The run supervisor, shared by every run mode (one vCPU on the main thread,
 * SMP Workers, the GDB stub): it listens for SIGINT/SIGTERM, keeps the
 * `--timeout` clock, records the first stop (the host's or the guest's),
 * lets a run wait for either, drains the guest's last output, and tells a
 * dead guest (every vCPU halted with interrupts off) from a waiting one.
 * Disposable: leaving the run removes its listeners and timer.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import { VmStop } from "../hypercall/context.ts";
import { flushAll, type GuestOutput } from "../io/guest_output.ts";
import type { HaltedVcpu } from "../vcpu/halted.ts";
import { signalStop, STOP_SIGNALS, timeoutStop } from "../vcpu/timeout.ts";
import { MAX_SLEEP_MS, sleep } from "../host/sleep.ts";

/** The longest single sleep of {@linkcode Supervisor.wait}. */
const WAIT_SLICE_MS = 10;
/** How often a drain looks again at output waiting for a slow reader. */
const DRAIN_POLL_MS = 10;

/** What a {@linkcode Supervisor} watches. */
export interface SupervisorOptions {
  /** Wall-clock limit in ms (`--timeout`); none when undefined or null. */
  readonly timeoutMs?: number | null | undefined;
}

/** One run's supervisor. */
export class Supervisor implements Disposable {
  #stop: VmStop | null = null;
  #byHost = false;
  #wake: () => void = () => {};
  #woken: Promise<void>;
  #onHostStop: ((stop: VmStop) => void) | undefined = undefined;
  readonly #listeners: { signal: Deno.Signal; listener: () => void }[] = [];
  #disposed = false;

  /** Starts listening for SIGINT/SIGTERM and, with a limit, the clock. */
  constructor(options: SupervisorOptions = {}) {
    this.#woken = this.#nextWake();
    for (const s of STOP_SIGNALS) {
      const listener = (): void => this.#hostStop(signalStop(s));
      Deno.addSignalListener(s.signal, listener);
      this.#listeners.push({ signal: s.signal, listener });
    }
    const limit = options.timeoutMs;
    if (limit !== undefined && limit !== null) void this.#clock(limit);
  }

  /** The first stop recorded (by the host or the guest), or null while the run goes on. */
  get stop(): VmStop | null {
    return this.#stop;
  }

  /** Records `stop` unless one came first; true when it is the run's stop. */
  claim(stop: VmStop): boolean {
    if (this.#stop !== null) return false;
    this.#stop = stop;
    this.#wake();
    return true;
  }

  /**
   * Sets what a host stop (a signal, the limit) must also do, e.g. kick the
   * vCPU Workers; runs it at once if the host already stopped the run.
   */
  whenHostStops(action: (stop: VmStop) => void): void {
    this.#onHostStop = action;
    if (this.#byHost && this.#stop !== null) action(this.#stop);
  }

  /** Resolves when the next stop is recorded or {@linkcode poke} is called. */
  get woken(): Promise<void> {
    return this.#woken;
  }

  /** Wakes whoever waits on {@linkcode woken} (a tick, say) without a stop. */
  poke(): void {
    this.#wake();
  }

  /** Waits until a stop is recorded, {@linkcode poke} is called, or `ms` pass. */
  async wait(ms: number): Promise<void> {
    let woken = false;
    const wake = this.#woken.then(() => void (woken = true));
    const end = performance.now() + ms;
    // In short sleeps: one still pending when the run ends keeps the process alive that long.
    for (let left = ms; !woken && left > 0; left = end - performance.now()) {
      await Promise.race([wake, sleep(Math.min(left, WAIT_SLICE_MS))]);
    }
  }

  /**
   * Writes out the guest's buffered output, however slowly its reader
   * reads; gives up when the host stopped the run (a signal, the time limit).
   */
  async drain(stdout: GuestOutput, stderr: GuestOutput): Promise<void> {
    while (!flushAll(stdout, stderr) && !this.#byHost) {
      await sleep(DRAIN_POLL_MS);
    }
  }

  /** Stops listening and the clock. */
  [Symbol.dispose](): void {
    this.#disposed = true;
    for (const { signal, listener } of this.#listeners) {
      Deno.removeSignalListener(signal, listener);
    }
    this.#listeners.length = 0;
  }

  /** A signal or the limit: the first stop still wins, but output is no longer waited for. */
  #hostStop(stop: VmStop): void {
    if (this.#byHost) return;
    this.#byHost = true;
    this.claim(stop);
    this.#wake();
    this.#onHostStop?.(stop);
  }

  /**
   * The `--timeout` clock: stops the run `limit` ms from now unless disposed
   * first. It sleeps in slices, so a disposed clock ends within one slice.
   */
  async #clock(limit: number): Promise<void> {
    const deadline = performance.now() + limit;
    for (;;) {
      const left = deadline - performance.now();
      if (this.#disposed) return;
      if (left <= 0) break;
      await sleep(Math.min(left, MAX_SLEEP_MS));
    }
    this.#hostStop(timeoutStop(limit));
  }

  #nextWake(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        resolve();
        this.#woken = this.#nextWake();
      };
    });
  }
}

/** A line of guest output and when it was written (epoch ms; 0: never). */
export interface OutputLine {
  /** The text. */
  readonly text: string;
  /** When (epoch milliseconds), 0 for no output at all. */
  readonly at: number;
}

/**
 * The stop for a dead guest: every vCPU halted with interrupts disabled and
 * nothing pending, so none can ever run again (exit 86). Names the first
 * vCPU (and how many others) and the guest's most recent output line.
 */
export function deadGuestStop(
  halted: readonly HaltedVcpu[],
  lines: readonly OutputLine[],
): VmStop {
  let last: OutputLine = { text: "", at: 0 };
  for (const line of lines) if (line.at > last.at) last = line;
  const words = last.at === 0 ? "it printed nothing" : `its last output: "${last.text}"`;
  const first = halted[0] ?? { cpu: 0, rip: 0 };
  const others = halted.length > 1 ? ` (and ${halted.length - 1} more vCPU(s) likewise)` : "";
  return new VmStop(
    "error",
    EXIT_CODE.GUEST_HALTED,
    `vCPU ${first.cpu} halted with interrupts disabled at RIP 0x${
      first.rip.toString(16)
    }${others} and nothing can wake it: the guest is dead (${words})`,
  );
}
