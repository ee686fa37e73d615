/**
 * One vCPU per Worker: a synchronous KVM_RUN loop on its own OS thread.
 * Guest RAM and `kvm_run` are the main thread's mappings, reached by
 * address. Serial output is line-buffered here (lines from two vCPUs never
 * interleave mid-line); file hypercalls go to the main thread through the
 * file channel. The first vCPU to stop the VM claims the stop in the shared
 * control word and reports it; the main thread then kicks the others.
 * @module
 */

/// <reference lib="deno.worker" />

import type { XsaveComponent } from "../emulate/xsave.ts";
import { flushAll, GuestOutput, type OutputSink } from "../io/guest_output.ts";
import { currentThreadId, pinCurrentThread, Regs, ThreadTicker, VcpuFd } from "../kvm.ts";
import { DEAD_TICKS, haltedForGood } from "./halted.ts";
import { HostRam } from "../host/mappings.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { vcpuContext } from "./context.ts";
import { ChannelFiles } from "./file_channel.ts";
import { netRegisters } from "../net/net_device.ts";
import { CONTROL, haltedWord, type WorkerInit, type WorkerMessage } from "./protocol.ts";
import { loadEmulator, OUTCOME, vcpuBuses, VcpuLoop } from "./run_loop.ts";
import { hostOutputSink, hostStdin } from "./host_stdio.ts";
import { VcpuStats } from "./stats.ts";

/** How often a Worker looks again at output waiting for a slow reader. */
const OUTPUT_POLL_MS = 10;
/** How often a vCPU checks whether it is halted for good. */
const HALT_CHECK_MS = 250;

function post(message: WorkerMessage, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

/** Forwards output to the main thread (when the host program gave its own sinks). */
class PostSink implements OutputSink {
  readonly #stream: 1 | 2;
  constructor(stream: 1 | 2) {
    this.#stream = stream;
  }
  writeSync(p: Uint8Array): number {
    const bytes = p.slice();
    post({ type: "output", stream: this.#stream, bytes }, [bytes.buffer]);
    return p.length;
  }
}

/** Reports this vCPU once it has been halted for good on DEAD_TICKS ticks in a row. */
function checkHalted(
  vcpu: VcpuFd,
  regs: Regs,
  control: Int32Array,
  word: number,
  line: () => { text: string; at: number },
): void {
  if (Atomics.load(control, CONTROL.STOP) !== 0) return;
  const h = haltedForGood(vcpu, regs);
  if (h === null) {
    Atomics.store(control, word, 0);
    return;
  }
  if (Atomics.add(control, word, 1) + 1 === DEAD_TICKS) {
    post({ type: "halted", cpu: h.cpu, rip: h.rip, line: line() });
  }
}

/** The more recent of the two outputs' last lines. */
function lastLine(stdout: GuestOutput, stderr: GuestOutput): { text: string; at: number } {
  stdout.flush();
  stderr.flush();
  const a = stdout.lastLine();
  const b = stderr.lastLine();
  return a.at >= b.at ? a : b;
}

function start(init: WorkerInit): void {
  const control = new Int32Array(init.control);
  Atomics.store(control, CONTROL.TIDS + init.cpu, currentThreadId());
  if (init.affinity !== null) {
    const err = pinCurrentThread(init.affinity);
    if (err !== 0) {
      post({ type: "warning", message: `Cannot pin vCPU ${init.cpu} to core ${init.affinity}` });
    }
  }
  const vcpu = new VcpuFd(init.vcpuFd, init.cpu, init.runSize, init.runAddress);
  vcpu.enableSyncRegs(init.syncRegs);
  const mem = new GuestMemory(new HostRam(init.memAddress, init.memSize), init.guestAddress);
  const stdout = new GuestOutput(init.output === "stdio" ? hostOutputSink(1) : new PostSink(1));
  const stderr = new GuestOutput(init.output === "stdio" ? hostOutputSink(2) : new PostSink(2));
  const ctx = vcpuContext({
    vcpu,
    mem,
    stdout,
    stderr,
    cmdline: init.cmdline,
    files: new ChannelFiles(init.files, init.cpu, mem),
    stdin: hostStdin(),
    warn: (message) => post({ type: "warning", message }),
  });
  const stats = new VcpuStats(init.cpu);
  const net = init.net === null ? null : netRegisters(init.net, mem);
  const loop = new VcpuLoop({
    vcpu,
    mem,
    ctx,
    stats,
    control,
    xsaveLayout: new Map<number, XsaveComponent>(init.xsaveLayout),
    buses: vcpuBuses(vcpu, { ctx, stats, net, ioapic: init.ioapic }),
  });
  // A slow tick on this thread: KVM_RUN returns now and then even while the
  // guest is halted, so the vCPU can see whether it is halted for good.
  const ticker = ThreadTicker.start(currentThreadId(), HALT_CHECK_MS);
  const halted = haltedWord(init.cpuCount, init.cpu);
  const regs = new Regs();
  let outcome = loop.run();
  while (outcome === OUTCOME.INTERRUPTED || outcome === OUTCOME.WAITING) {
    // Waiting for stdin: sleep a little, but wake at once when the VM stops.
    if (outcome === OUTCOME.WAITING) Atomics.wait(control, CONTROL.STOP, 0, 10);
    else checkHalted(vcpu, regs, control, halted, () => lastLine(stdout, stderr));
    outcome = loop.run();
  }
  ticker?.stop();
  const stop = loop.stop;
  if (
    outcome === OUTCOME.STOPPED && stop !== null &&
    Atomics.compareExchange(control, CONTROL.STOP, 0, 1) === 0
  ) {
    post({
      type: "stop",
      cpu: init.cpu,
      stop: { kind: stop.kind, code: stop.code, message: stop.message, detail: stop.detail },
    });
  }
  // Output a slow reader has not taken yet: wait for it, unless a signal or
  // the time limit ended the run (then the main thread says to drop it).
  while (!flushAll(stdout, stderr)) {
    if (Atomics.wait(control, CONTROL.DROP_OUTPUT, 0, OUTPUT_POLL_MS) === "not-equal") break;
  }
  post({ type: "done", cpu: init.cpu, stats: stats.toRecord() });
}

self.onmessage = async (event: MessageEvent<WorkerInit>): Promise<void> => {
  try {
    await loadEmulator(); // the run loop below is synchronous: it cannot load it later
    start(event.data);
  } catch (error) {
    post({
      type: "fatal",
      cpu: event.data.cpu,
      message: error instanceof Error ? error.message : String(error),
    });
  }
  self.close();
};
