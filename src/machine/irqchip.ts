/**
 * Where a VM's interrupt controllers live.
 *
 * - `"kernel"`: KVM_CREATE_IRQCHIP, as uhyve: the PIC, the IOAPIC and the
 *   LAPICs all in KVM. `--net` needs it (its interrupt is an irqfd routed to
 *   an IOAPIC pin) and `--pit` too (KVM's PIT feeds KVM's PIC and IOAPIC).
 * - `"split"` (KVM_CAP_SPLIT_IRQCHIP), for every other run: the LAPICs stay
 *   in KVM (timers, IPIs, halts: what a Hermit kernel uses), dhyve answers
 *   the IOAPIC's registers (`src/devices/ioapic.ts`), and there is no PIC
 *   (its ports read all ones and ignore writes, as any unclaimed port).
 *
 * Why split: creating KVM's PIC and IOAPIC registers their devices on KVM's
 * I/O buses, which queues SRCU callbacks, and the guest RAM's memory slot
 * (and closing the VM) then waits for a grace period: 5–10 ms on kvm_pvm,
 * longer than the rest of a small guest's start-up (docs/performance.md).
 * A split VM never waits. Where KVM lacks the capability, `"kernel"`.
 * @module
 */

import { CAP } from "../abi/kvm.ts";
import { IOAPIC_PINS } from "../devices/ioapic.ts";
import type { Kvm, VmFd } from "../kvm.ts";

/** Where the interrupt controllers live (see the module comment). */
export type IrqchipMode = "kernel" | "split";

/** What decides the mode: the options that need KVM's IOAPIC and PIC. */
export interface IrqchipNeeds {
  /** `--net`: an irqfd routed to an IOAPIC pin. */
  readonly net: boolean;
  /** `--pit`: KVM's PIT. */
  readonly pit: boolean;
}

/** Whether interrupt controllers in `mode` serve a run with `needs`: KVM's serve every run. */
export function irqchipServes(mode: IrqchipMode, needs: IrqchipNeeds): boolean {
  return mode === "kernel" || !(needs.net || needs.pit);
}

/** The mode for a run with `needs` on `kvm`'s host. */
export function irqchipMode(kvm: Kvm, needs: IrqchipNeeds): IrqchipMode {
  if (!irqchipServes("split", needs)) return "kernel";
  return kvm.checkExtension(CAP.SPLIT_IRQCHIP) > 0 ? "split" : "kernel";
}

/**
 * Gives a VM without vCPUs its interrupt controllers in `mode` and returns
 * the mode it got: a KVM that advertises the split but refuses it gets its
 * own irqchip instead (KVM's error, if that fails too, is thrown).
 */
export function createIrqchip(
  vm: Pick<VmFd, "createIrqchip" | "enableSplitIrqchip">,
  mode: IrqchipMode,
): IrqchipMode {
  if (mode === "split") {
    try {
      vm.enableSplitIrqchip(IOAPIC_PINS);
      return "split";
    } catch {
      // KVM's own below.
    }
  }
  vm.createIrqchip();
  return "kernel";
}

/**
 * What a command line asks for, read before it is parsed (the early VM of
 * `src/machine/early_vm.ts`): `--net`/`-n` or `--pit` among the options
 * before the kernel. A guess on the safe side of nothing: a config file that
 * adds `net` or `pit` makes `runVm` replace the early VM.
 */
export function argvIrqchipNeeds(argv: readonly string[]): IrqchipNeeds {
  let net = false;
  let pit = false;
  for (const arg of argv) {
    if (arg === "--") break;
    if (arg === "--net" || arg.startsWith("--net=") || /^-[A-Za-z]*n/.test(arg)) net = true;
    if (arg === "--pit" || arg.startsWith("--pit=")) pit = true;
  }
  return { net, pit };
}
