/**
 * `--gdb-port`: runs the VM under a GDB remote stub. Listens on loopback
 * only, waits for the debugger before the guest runs, then alternates
 * between serving packets (guest stopped) and running the guest until a
 * breakpoint, watchpoint, single step, Ctrl-C (0x03) or the guest's end.
 *
 * Every vCPU runs on the main thread, one after another in time slices
 * (KVM_RUN is cut short by a thread timer), so when one stops, all have
 * stopped: all-stop mode needs no cross-thread kicks, and any vCPU's
 * registers can be read. That costs SMP guests their parallelism while
 * debugging, nothing else. A debugger that detaches or disconnects leaves
 * the guest running to its end, without breakpoints.
 * @module
 */

import { DEBUG_VECTOR, RUN } from "../abi/kvm.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { VmStop } from "../hypercall/context.ts";
import { currentThreadId, ThreadTicker, type VcpuFd } from "../kvm.ts";
import {
  DEBUG_STOP,
  type DebugControl,
  EMULATED_STEP,
  INT3_STOP,
  INTERRUPTED,
  KICKED,
  type RunLoopOptions,
  runVcpu,
  WAITING,
  YIELDED,
} from "../vcpu/run_loop.ts";
import { timeoutStop } from "../vcpu/timeout.ts";
import { KvmGdbTarget } from "./kvm_target.ts";
import { encodePacket, type GdbInput, PacketDecoder } from "./packet.ts";
import { GdbSession, SIGNAL, type StopEvent } from "./protocol.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";

/** What {@linkcode runUnderDebugger} needs from the VM assembly. */
export interface DebugRunOptions {
  /** TCP port on 127.0.0.1 (and ::1 where possible); 0 picks a free one. */
  readonly port: number;
  /** The run-loop options of each vCPU (main-thread contexts), in vCPU order. */
  readonly loops: readonly RunLoopOptions[];
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Stop the VM after the guest ran this long (time stopped in the debugger not counted). */
  readonly timeoutMs?: number | undefined;
  /** Host-side notices for the user (listening port, load address). */
  readonly notify: (message: string) => void;
}

/** The guest's time slice before the next vCPU's turn (and a look at the socket). */
const SLICE_MS = 20;
const SIGALRM = 14;
/** How long a vCPU waiting for stdin sleeps before the next round. */
const INPUT_POLL_MS = 10;

let alarmHandlerKept = false;
/** A SIGALRM listener kept for the process's life (see vm.ts: the default action would kill it). */
function keepAlarmHandler(): void {
  if (alarmHandlerKept) return;
  alarmHandlerKept = true;
  Deno.addSignalListener("SIGALRM", () => {});
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The debugger's connection: decoded input queued, writes that never throw. */
class Connection {
  readonly #conn: Deno.Conn;
  readonly #decoder = new PacketDecoder();
  readonly #inbox: GdbInput[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#readLoop();
  }

  /** True once the debugger hung up (or the socket failed). */
  get closed(): boolean {
    return this.#closed;
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#inbox.push(...this.#decoder.push(buf.subarray(0, n)));
        this.#wake?.();
      }
    } catch {
      // A reset or a closed socket: the same as a hang-up.
    }
    this.#closed = true;
    this.#wake?.();
  }

  /** Takes queued input without waiting; null when none is queued. */
  poll(): GdbInput | null {
    return this.#inbox.shift() ?? null;
  }

  /** True when a Ctrl-C (0x03) is queued; removes it. */
  takeInterrupt(): boolean {
    const i = this.#inbox.findIndex((input) => input.type === "interrupt");
    if (i < 0) return false;
    this.#inbox.splice(i, 1);
    return true;
  }

  /** Waits for input; null when the connection closed or `abort` resolved first. */
  async next(abort: Promise<void>): Promise<GdbInput | null> {
    for (;;) {
      const input = this.#inbox.shift();
      if (input !== undefined) return input;
      if (this.#closed) return null;
      const woken = new Promise<boolean>((resolve) => (this.#wake = () => resolve(false)));
      const aborted = await Promise.race([woken, abort.then(() => true)]);
      this.#wake = null;
      if (aborted) return null;
      // Woken by a read that completed nothing (part of a packet): wait again.
    }
  }

  /** Sends raw bytes; a failed write marks the connection closed. */
  async send(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return;
    try {
      for (let done = 0; done < bytes.length;) done += await this.#conn.write(bytes.subarray(done));
    } catch {
      this.#closed = true;
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#closed = true;
  }
}

/** Listens on loopback and waits for one debugger; null if a stop signal came first. */
async function acceptDebugger(
  port: number,
  notify: (message: string) => void,
  abort: Promise<void>,
): Promise<Deno.Conn | null> {
  const listeners: Deno.Listener<Deno.TcpConn, Deno.NetAddr>[] = [];
  try {
    listeners.push(Deno.listen({ hostname: "127.0.0.1", port, transport: "tcp" }));
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new GdbListenError(
        `Deno may not listen for GDB on 127.0.0.1:${port}: add --allow-net=127.0.0.1,[::1] ` +
          "to the deno command",
        { cause: error },
      );
    }
    const why = error instanceof Error ? error.message : String(error);
    throw new GdbListenError(`Cannot listen for GDB on 127.0.0.1:${port}: ${why}`, {
      cause: error,
    });
  }
  const actual = listeners[0]!.addr.port;
  try {
    listeners.push(Deno.listen({ hostname: "::1", port: actual, transport: "tcp" }));
  } catch {
    // No IPv6 loopback here (or the port is taken there): 127.0.0.1 alone will do.
  }
  notify(
    `Waiting for a GDB connection on 127.0.0.1:${actual}` +
      (listeners.length > 1 ? ` and [::1]:${actual}` : "") + "...",
  );
  try {
    const accepted = await Promise.race([
      ...listeners.map((l) => l.accept()),
      abort.then(() => null),
    ]);
    if (accepted !== null) {
      const from = accepted.remoteAddr;
      notify(`Debugger connected from ${from.hostname}:${from.port}`);
      accepted.setNoDelay(true);
    }
    return accepted;
  } finally {
    for (const l of listeners) l.close();
  }
}

/** The listening socket could not be opened (port in use, no permission). */
export class GdbListenError extends Error {
  /** Error name. */
  override name = "GdbListenError";
  /** True when Deno's permissions (not the host) refused it. */
  get permission(): boolean {
    return this.cause instanceof Deno.errors.NotCapable;
  }
}

/** What running the guest ended with. */
type RunResult =
  | { readonly type: "debug"; readonly event: StopEvent }
  | { readonly type: "vm"; readonly stop: VmStop }
  | { readonly type: "disconnected" };

/**
 * Runs the VM under the debugger until it stops; returns how it stopped.
 * @throws {GdbListenError} when the port cannot be opened.
 */
export async function runUnderDebugger(options: DebugRunOptions): Promise<VmStop> {
  const { loops, notify } = options;
  const vcpus: VcpuFd[] = loops.map((l) => l.vcpu);
  const target = new KvmGdbTarget(vcpus, options.mem);
  const controls: DebugControl[] = loops.map(() => ({ stepping: false }));
  const debugLoops = loops.map((l, i) => ({
    ...l,
    yieldEveryMs: SLICE_MS,
    pending: l.pending ?? { entry: null, arg: 0 },
    debug: controls[i]!,
  }));
  const plainLoops: RunLoopOptions[] = debugLoops.map(({ debug: _, ...plain }) => plain);

  let signalled: VmStop | null = null;
  let wakeOnSignal: () => void = () => {};
  const signalPromise = new Promise<void>((resolve) => (wakeOnSignal = resolve));
  const listeners = ([["SIGINT", EXIT_CODE.SIGINT], ["SIGTERM", EXIT_CODE.SIGTERM]] as const).map(
    ([signal, code]) => {
      const listener = (): void => {
        signalled ??= new VmStop("error", code, `Stopped by ${signal}`);
        wakeOnSignal();
      };
      Deno.addSignalListener(signal, listener);
      return { signal, listener };
    },
  );
  keepAlarmHandler();
  let ranMs = 0;
  let nextThread = 1;
  try {
    const raw = await acceptDebugger(options.port, notify, signalPromise);
    if (raw === null) return signalled ?? new VmStop("error", EXIT_CODE.SIGINT, "Stopped");
    const conn = new Connection(raw);
    const session = new GdbSession(target);
    let lastReply: Uint8Array | null = null;

    const sendReply = async (payload: string | Uint8Array): Promise<void> => {
      lastReply = encodePacket(payload);
      await conn.send(lastReply);
    };

    /** Runs the guest; `step` single-steps that thread only (the others stay stopped). */
    const runGuest = async (step: number | null, detached: boolean): Promise<RunResult> => {
      const bp = session.breakpoints;
      const softWatch = !detached && bp.hardwareSlots.some((s) => s?.kind === "write");
      const watched = softWatch ? snapshotWatches(session, target) : [];
      const ticker = ThreadTicker.start(currentThreadId(), SIGALRM, SLICE_MS);
      let thread = step ?? nextThread;
      try {
        if (!detached) {
          // Step off a hardware breakpoint at the current RIP first, or it fires again at once.
          const threads = step === null ? vcpus.map((_, i) => i + 1) : [step];
          for (const t of threads) {
            if (bp.execSlotAt(target.pc(t)) < 0) continue;
            controls.forEach((c, i) => (c.stepping = i + 1 === t));
            target.arm(bp, t, t);
            const result = await runSlices(t, true);
            if (
              result !== null && !(result.type === "debug" && result.event.type === "signal" &&
                result.event.signal === SIGNAL.SIGTRAP && result.event.reason === undefined)
            ) {
              return result;
            }
            if (step !== null) return result ?? stepped(t);
          }
          controls.forEach((c, i) => (c.stepping = i + 1 === step || (softWatch && step === null)));
          const err = target.arm(bp, softWatch && step === null ? "all" : step);
          if (err !== 0) {
            notify(`KVM_SET_GUEST_DEBUG failed (errno ${err}); breakpoints may not fire`);
          }
        }
        for (;;) {
          const result = await runSlices(thread, step !== null, detached);
          if (result === null) {
            if (step === null) thread = (thread % vcpus.length) + 1;
            continue;
          }
          if (
            softWatch && step === null && result.type === "debug" &&
            result.event.type === "signal" && result.event.reason === undefined &&
            result.event.signal === SIGNAL.SIGTRAP
          ) {
            // A single step taken only to watch memory: report it only if a watched value changed.
            const changed = changedWatch(watched, target, thread);
            if (changed === null) continue;
            return { type: "debug", event: { ...result.event, reason: changed } };
          }
          return result;
        }
      } finally {
        ticker?.stop();
        if (step === null) nextThread = thread;
      }

      /**
       * Runs thread `t` for one slice; null when the slice ended with nothing
       * to report (the caller moves on to the next vCPU). With `stepping`, it
       * keeps going until the step completes.
       */
      async function runSlices(
        t: number,
        stepping: boolean,
        ignoreDebug = false,
      ): Promise<RunResult | null> {
        const loop = (ignoreDebug ? plainLoops : debugLoops)[t - 1]!;
        for (;;) {
          const started = performance.now();
          const stop = runVcpu(loop);
          ranMs += performance.now() - started;
          if (stop === DEBUG_STOP || stop === INT3_STOP || stop === EMULATED_STEP) {
            if (!ignoreDebug) {
              return { type: "debug", event: debugEvent(t, stop, vcpus[t - 1]!, session) };
            }
          } else if (stop === WAITING) {
            await sleep(INPUT_POLL_MS);
          } else if (stop === INTERRUPTED || stop === YIELDED || stop === KICKED) {
            await sleep(0); // the event loop's turn: socket input, signals
          } else {
            return { type: "vm", stop };
          }
          if (signalled !== null) return { type: "vm", stop: signalled };
          if (options.timeoutMs !== undefined && ranMs >= options.timeoutMs) {
            return { type: "vm", stop: timeoutStop(options.timeoutMs) };
          }
          if (!ignoreDebug && conn.closed) return { type: "disconnected" };
          if (!ignoreDebug && conn.takeInterrupt()) {
            return { type: "debug", event: { type: "signal", thread: t, signal: SIGNAL.SIGINT } };
          }
          if (!stepping) return null;
        }
      }
    };

    /** Removes every breakpoint and runs the guest to its end without the debugger. */
    const runDetached = async (): Promise<VmStop> => {
      session.breakpoints.removeAllSoftware(target.memory(1));
      session.breakpoints.removeAllHardware();
      target.disarm();
      controls.forEach((c) => (c.stepping = false));
      conn.close();
      for (;;) {
        const result = await runGuest(null, true);
        if (result.type === "vm") return result.stop;
      }
    };

    for (;;) {
      const input = await conn.next(signalPromise);
      if (signalled !== null) {
        await sendReply(session.stopReply({ type: "terminated", signal: SIGNAL.SIGKILL }));
        cleanUp(session, target);
        conn.close();
        return signalled;
      }
      if (input === null) {
        notify("The debugger disconnected; the guest runs on without it");
        return await runDetached();
      }
      if (input.type === "nack") {
        if (!session.noAck && lastReply !== null) await conn.send(lastReply);
        continue;
      }
      if (input.type === "ack" || input.type === "interrupt") continue;
      if (input.type === "bad-packet") {
        if (!session.noAck) await conn.send(Uint8Array.of(0x2d)); // "-": send it again
        continue;
      }
      if (!session.noAck) await conn.send(Uint8Array.of(0x2b)); // "+"
      const outcome = session.handle(input.payload);
      if (outcome.reply !== null) await sendReply(outcome.reply);
      const action = outcome.action;
      if (action.type === "detach") {
        notify("The debugger detached; the guest runs on without it");
        return await runDetached();
      }
      if (action.type === "kill") {
        cleanUp(session, target);
        conn.close();
        return new VmStop("error", EXIT_CODE.DEBUGGER_KILL, "Killed by the debugger");
      }
      if (action.type !== "resume") continue;
      const result = await runGuest(action.step, false);
      if (result.type === "disconnected") {
        notify("The debugger disconnected; the guest runs on without it");
        return await runDetached();
      }
      if (result.type === "debug") {
        await sendReply(session.stopReply(result.event));
        continue;
      }
      const stop = result.stop;
      const event: StopEvent = stop.kind === "exit"
        ? { type: "exited", code: stop.code }
        : signalled !== null
        ? { type: "terminated", signal: SIGNAL.SIGKILL }
        : { type: "exited", code: stop.code };
      await sendReply(session.stopReply(event));
      cleanUp(session, target);
      conn.close();
      return stop;
    }
  } finally {
    for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** A plain single-step stop on thread `t`. */
function stepped(t: number): RunResult {
  return { type: "debug", event: { type: "signal", thread: t, signal: SIGNAL.SIGTRAP } };
}

/** Restores the guest's code and turns KVM debugging off. */
function cleanUp(session: GdbSession, target: KvmGdbTarget): void {
  try {
    session.breakpoints.removeAllSoftware(target.memory(1));
    session.breakpoints.removeAllHardware();
    target.disarm();
  } catch {
    // The VM is going away; nothing more to restore.
  }
}

/** Decodes why thread `t` stopped (KVM_EXIT_DEBUG details are in kvm_run). */
function debugEvent(t: number, stop: VmStop, vcpu: VcpuFd, session: GdbSession): StopEvent {
  const trap = { type: "signal", thread: t, signal: SIGNAL.SIGTRAP } as const;
  if (stop === INT3_STOP) return { ...trap, reason: { kind: "swbreak" } };
  if (stop === EMULATED_STEP) return trap;
  const run = vcpu.runView;
  const exception = run.getUint32(RUN.debugException, true);
  if (exception === DEBUG_VECTOR.BP) return { ...trap, reason: { kind: "swbreak" } };
  const dr6 = run.getUint32(RUN.debugDr6, true);
  const slot = session.breakpoints.slotFromDr6(dr6);
  const armed = slot < 0 ? null : session.breakpoints.hardwareSlots[slot]!;
  if (armed !== null) {
    if (armed.kind === "exec") return { ...trap, reason: { kind: "hwbreak" } };
    const kind = armed.kind === "write" ? "watch" : armed.kind === "read" ? "rwatch" : "awatch";
    return { ...trap, reason: { kind, addr: armed.addr } };
  }
  // DR6.BS (a single step) or a #DB dhyve did not ask for: a plain SIGTRAP either way.
  return trap;
}

/** A watched write slot and the bytes it held at the last look. */
interface WatchedValue {
  readonly addr: number;
  readonly length: number;
  bytes: Uint8Array | null;
}

function snapshotWatches(session: GdbSession, target: KvmGdbTarget): WatchedValue[] {
  const mem = target.memory(session.generalThread);
  return session.breakpoints.hardwareSlots
    .filter((s) => s !== null && s.kind === "write")
    .map((s) => ({ addr: s!.addr, length: s!.length, bytes: mem.read(s!.addr, s!.length) }));
}

/** The first watched value that changed since the last look (and remembers the new bytes). */
function changedWatch(
  watched: WatchedValue[],
  target: KvmGdbTarget,
  thread: number,
): { kind: "watch"; addr: number } | null {
  const mem = target.memory(thread);
  for (const w of watched) {
    const now = mem.read(w.addr, w.length);
    const same = now !== null && w.bytes !== null && now.every((b, i) => b === w.bytes![i]);
    if (!same) {
      w.bytes = now;
      return { kind: "watch", addr: w.addr };
    }
  }
  return null;
}
