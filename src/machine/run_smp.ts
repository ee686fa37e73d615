/**
 * Running several vCPUs: one Worker each, started together (Hermit releases
 * its application processors itself, through its CPU_ONLINE counter). The
 * main thread serves file hypercalls, listens for SIGINT/SIGTERM, and when
 * the first vCPU stops the VM it kicks the others out of KVM_RUN
 * (`immediate_exit` plus a signal to each vCPU thread), then collects every
 * Worker's counters.
 *
 * Exit code rule: the first vCPU to stop the VM (in time) decides it; a
 * signal or an internal error that comes first decides it instead.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";
import type { GuestFiles } from "../hypercall/file.ts";
import { VmStop } from "../hypercall/context.ts";
import type { GuestCommandLine } from "../hypercall/context.ts";
import type { XsaveLayout } from "../emulate/xsave.ts";
import type { OutputSink } from "../io/guest_output.ts";
import { signalThread, type VcpuFd } from "../kvm.ts";
import { deadGuestStop, type Supervisor } from "./supervisor.ts";
import { keepAlarmHandler } from "../host/ticker.ts";
import { DEAD_TICKS, type HaltedVcpu } from "../vcpu/halted.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { NetShared } from "../net/net_device.ts";
import { createFileChannel, FileChannelServer } from "../vcpu/file_channel.ts";
import {
  CONTROL,
  controlWords,
  haltedWord,
  type WorkerInit,
  type WorkerMessage,
} from "../vcpu/protocol.ts";
import { VcpuStats } from "../vcpu/stats.ts";
import { workerUrl } from "../locations.ts";

/** The signal that kicks a vCPU thread out of KVM_RUN (its handler does nothing). */
const KICK_SIGNAL = 12; // SIGUSR2 (SIGUSR1 would start Deno's inspector)
let kickHandlerInstalled = false;

/**
 * Installs a do-nothing SIGUSR2 handler once per process and keeps it: when
 * Deno's last listener goes, the default action (terminate) comes back, and
 * a late kick would kill the process.
 */
function installKickHandler(): void {
  if (kickHandlerInstalled) return;
  kickHandlerInstalled = true;
  Deno.addSignalListener("SIGUSR2", () => {});
}

/** How long stopped vCPUs get to report before their Workers are terminated. */
const DRAIN_MS = 5000;

/** What {@linkcode runSmp} needs. */
export interface SmpOptions {
  /** Every vCPU, created and initialised. */
  vcpus: readonly VcpuFd[];
  /** Guest RAM (for the file channel). */
  mem: GuestMemory;
  /** Host address of guest RAM. */
  memAddress: number;
  /** KVM copies registers into kvm_run on exits. */
  syncRegs: boolean;
  /** XSAVE layout for FPU-state emulation. */
  xsaveLayout: XsaveLayout;
  /** argv/env. */
  cmdline: GuestCommandLine;
  /** The guest's files. */
  files: GuestFiles;
  /** Host program sinks; null means each Worker writes to stdout/stderr itself. */
  sinks: { stdout: OutputSink; stderr: OutputSink } | null;
  /** Host core per vCPU, or null. */
  affinity: readonly number[] | null;
  /** The run's supervisor: signals and --timeout (a stop it records kicks every vCPU). */
  supervisor: Supervisor;
  /** Diagnostics from Workers. */
  warn: (message: string) => void;
  /** The virtio-net device (`--net`), or null. */
  net?: NetShared | null;
  /** The IOAPIC's state when the VM's interrupt controller is split, else null. */
  ioapic?: SharedArrayBuffer | null;
}

/** How a multi-vCPU run ended. */
export interface SmpResult {
  /** Why the VM stopped. */
  stop: VmStop;
  /** Counters of every vCPU. */
  stats: VcpuStats[];
  /**
   * Some Worker did not end in time and was terminated; it may still be
   * inside a host call that touches guest RAM, so RAM must stay mapped.
   */
  abandoned: boolean;
}

/** Runs all vCPUs in Workers until the VM stops; returns the stop and every vCPU's counters. */
export function runSmp(options: SmpOptions): Promise<SmpResult> {
  const { vcpus, mem } = options;
  const n = vcpus.length;
  const control = new Int32Array(new SharedArrayBuffer(4 * controlWords(n)));
  const channel = createFileChannel(n);
  const server = new FileChannelServer(channel, n, options.files, mem);
  const stats: (VcpuStats | undefined)[] = new Array(n);
  const workers: Worker[] = [];
  const supervisor = options.supervisor;
  /** vCPUs that reported themselves halted for good (their words say whether they still are). */
  const halted: ({ cpu: number; rip: number; line: { text: string; at: number } } | undefined)[] =
    new Array(n).fill(undefined);
  let remaining = n;

  const kickAll = (): void => {
    for (const v of vcpus) v.setImmediateExit(true);
    for (let i = 0; i < n; i++) {
      const tid = Atomics.load(control, CONTROL.TIDS + i);
      if (tid !== 0) signalThread(tid, KICK_SIGNAL);
    }
  };
  /** Tells the Workers not to wait for a stalled reader of their output. */
  const dropOutput = (): void => {
    Atomics.store(control, CONTROL.DROP_OUTPUT, 1);
    Atomics.notify(control, CONTROL.DROP_OUTPUT);
  };
  const claim = (s: VmStop): void => {
    Atomics.compareExchange(control, CONTROL.STOP, 0, 1);
    supervisor.claim(s);
    kickAll();
  };

  installKickHandler();
  keepAlarmHandler(); // the Workers' halt-check ticks: SIGALRM must never kill the process
  supervisor.whenHostStops(() => {
    dropOutput();
    Atomics.compareExchange(control, CONTROL.STOP, 0, 1);
    kickAll();
  });

  return new Promise((resolve) => {
    let drainTimer: ReturnType<typeof setTimeout> | undefined;
    const finish = (): void => {
      if (drainTimer !== undefined) clearTimeout(drainTimer);
      server.stop();
      for (const w of workers) w.terminate();
      resolve({
        stop: supervisor.stop ??
          new VmStop("error", EXIT_CODE.INTERNAL, "Every vCPU ended without a result"),
        stats: stats.map((s, i) => s ?? new VcpuStats(i)),
        abandoned: remaining > 0,
      });
    };
    const ended = (): void => {
      remaining--;
      if (remaining === 0) finish();
      else if (drainTimer === undefined && supervisor.stop !== null) {
        drainTimer = setTimeout(() => {
          options.warn(`${remaining} vCPU(s) did not stop within ${DRAIN_MS} ms; ending them`);
          finish();
        }, DRAIN_MS);
      }
    };

    for (let cpu = 0; cpu < n; cpu++) {
      const worker = new Worker(workerUrl("vcpu"), { type: "module" });
      workers.push(worker);
      worker.onmessage = (event: MessageEvent<WorkerMessage>): void => {
        const m = event.data;
        switch (m.type) {
          case "output":
            (m.stream === 1 ? options.sinks?.stdout : options.sinks?.stderr)?.writeSync(m.bytes);
            break;
          case "warning":
            options.warn(m.message);
            break;
          case "stop":
            supervisor.claim(new VmStop(m.stop.kind, m.stop.code, m.stop.message, m.stop.detail));
            kickAll();
            break;
          case "fatal":
            claim(new VmStop("error", EXIT_CODE.INTERNAL, `vCPU ${m.cpu} failed: ${m.message}`));
            ended();
            break;
          case "halted": {
            halted[m.cpu] = m;
            const all = halted.every((h, i) =>
              h !== undefined && Atomics.load(control, haltedWord(n, i)) >= DEAD_TICKS
            );
            if (all && halted.length === n) {
              claim(deadGuestStop(halted as HaltedVcpu[], halted.map((h) => h!.line)));
            }
            break;
          }
          case "done":
            stats[m.cpu] = VcpuStats.fromRecord(m.cpu, m.stats);
            ended();
            break;
        }
      };
      worker.onerror = (event: ErrorEvent): void => {
        event.preventDefault();
        claim(new VmStop("error", EXIT_CODE.INTERNAL, `vCPU ${cpu} failed: ${event.message}`));
        ended();
      };
      const v = vcpus[cpu]!;
      const init: WorkerInit = {
        cpu,
        cpuCount: n,
        vcpuFd: v.fd,
        runAddress: v.runMapping.address,
        runSize: v.runMapping.size,
        memAddress: options.memAddress,
        memSize: mem.size,
        guestAddress: mem.base,
        syncRegs: options.syncRegs,
        xsaveLayout: [...options.xsaveLayout],
        cmdline: options.cmdline,
        control: control.buffer as SharedArrayBuffer,
        files: channel,
        output: options.sinks === null ? "stdio" : "post",
        affinity: options.affinity?.[cpu] ?? null,
        net: options.net ?? null,
        ioapic: options.ioapic ?? null,
      };
      worker.postMessage(init);
    }
  });
}
