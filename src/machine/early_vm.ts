/**
 * The command line's first step, before the rest of dhyve loads: open
 * `/dev/kvm` and create the VM with its interrupt controllers.
 *
 * Why so early: KVM's own PIC and IOAPIC (`--net`, `--pit`: see
 * `src/machine/irqchip.ts`) start an SRCU grace period when they are made
 * (5–10 ms on kvm_pvm, see docs/performance.md) that the guest RAM's memory
 * slot waits for. Started here, it passes while Deno loads the bundle and the
 * CLI does its work, instead of inside `runVm`. A split interrupt controller
 * (every other run) has no such wait; its VM is made here all the same.
 *
 * `main.ts` calls {@linkcode openVmEarly} with the process's arguments and
 * then imports the rest; `runVm`'s VM step takes the VM with
 * {@linkcode takeEarlyVm} (the first run in the process, if one is there)
 * and does everything else as before (PIT, `--cpu-pm`, x2APIC IDs). Any
 * problem here is silent: the VM step then opens KVM itself and reports it
 * with its usual message and exit code. This module imports only the KVM
 * layer, so the VM exists before the CLI's modules are read.
 * @module
 */

import { Kvm, type VmFd } from "../kvm.ts";
import { traceMark } from "../startup_trace.ts";
import { argvIrqchipNeeds, createIrqchip, type IrqchipMode, irqchipMode } from "./irqchip.ts";

/** A VM made before `runVm` ran, waiting for it. */
export interface EarlyVm {
  /** `/dev/kvm`, open and checked. */
  readonly kvm: Kvm;
  /** The VM, with its interrupt controllers. */
  readonly vm: VmFd;
  /** Where they are: the mode the command line's options seemed to ask for. */
  readonly irqchip: IrqchipMode;
}

traceMark("kvmlayer");

let waiting: EarlyVm | null = null;

/**
 * Whether `argv` asks for a run at all: not `--help`, `--version` or
 * `--print-permissions` (alone or in a cluster of short flags, such as `-vh`),
 * and something that can be a kernel. Conservative: a run this misses only
 * starts as it did before.
 */
export function argvWantsVm(argv: readonly string[]): boolean {
  let positional = false;
  for (const arg of argv) {
    if (arg === "--") break;
    if (arg === "--help" || arg === "--version" || arg === "--print-permissions") return false;
    if (/^-[A-Za-z]+$/.test(arg) && /[hV]/.test(arg)) return false;
    if (!arg.startsWith("-")) positional = true;
  }
  return positional;
}

/**
 * Opens KVM and creates the VM with its interrupt controllers, for the run
 * `argv` asks for (nothing when it asks for none, see {@linkcode argvWantsVm}),
 * split unless `argv` names `--net` or `--pit`.
 * Never throws and never prompts: without the FFI permission, or without a
 * usable `/dev/kvm`, it leaves the work (and the message) to `runVm`.
 */
export function openVmEarly(argv: readonly string[]): void {
  if (waiting !== null || !argvWantsVm(argv)) return;
  if (!granted()) return;
  let kvm: Kvm | null = null;
  let vm: VmFd | null = null;
  try {
    kvm = Kvm.open();
    if (kvm.missingRequirement() !== null) throw new Error("KVM lacks what dhyve needs");
    vm = kvm.createVm();
    const irqchip = createIrqchip(vm, irqchipMode(kvm, argvIrqchipNeeds(argv)));
    waiting = { kvm, vm, irqchip };
    traceMark("early");
  } catch {
    // runVm opens KVM again and says what is wrong. (Closing an fd never throws.)
    vm?.close();
    kvm?.close();
  }
}

/**
 * The VM {@linkcode openVmEarly} made, handed over once (the caller owns and
 * closes it), or null.
 */
export function takeEarlyVm(): EarlyVm | null {
  const vm = waiting;
  waiting = null;
  return vm;
}

/** Deno's FFI permission, asked without a prompt (the CLI says what is missing). */
function granted(): boolean {
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}
