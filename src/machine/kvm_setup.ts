/**
 * The KVM steps of a run: open `/dev/kvm` and check it, create the VM with
 * its interrupt controller (and PIT, power management, x2APIC IDs as asked),
 * and set each vCPU's boot registers, CPUID and MSRs.
 * @module
 */

import { CAP, DISABLE_EXITS, KVM_API_VERSION, SREGS, X2APIC_API } from "../abi/kvm.ts";
import { adjustCpuid } from "../boot/cpuid.ts";
import { BOOT_INFO_OFFSET } from "../boot/layout.ts";
import { BOOT_MSRS, initialRegisters, initialSpecialRegisters } from "../boot/registers.ts";
import { EXIT_CODE } from "../exit_codes.ts";
import { Kvm, KvmError, Regs, Sregs, type VcpuFd, type VmFd } from "../kvm.ts";
import { logger } from "../log.ts";
import { VmError } from "./errors.ts";

const log = logger("vm");

/** Opens `/dev/kvm` and checks its API version and the capabilities dhyve needs. */
export function openKvm(): Kvm {
  const kvm = Kvm.open();
  let missing: ReturnType<Kvm["missingRequirement"]>;
  try {
    missing = kvm.missingRequirement();
  } catch (error) {
    kvm.close();
    if (!(error instanceof KvmError)) throw error;
    throw new VmError(
      `/dev/kvm is not a KVM device (${error.message}): load the KVM module ` +
        "(modprobe kvm_intel or modprobe kvm_amd) and check what /dev/kvm is",
      EXIT_CODE.KVM_UNAVAILABLE,
      { cause: error },
    );
  }
  if (missing === null) return kvm;
  kvm.close();
  throw new VmError(
    "version" in missing
      ? `/dev/kvm speaks KVM API version ${missing.version}, dhyve needs ${KVM_API_VERSION}`
      : `This host's KVM lacks ${missing.capability}, which dhyve needs`,
    EXIT_CODE.KVM_UNAVAILABLE,
  );
}

/** `--cpu-pm`: lets the guest halt, pause and mwait without exits, where KVM allows. */
function enableCpuPm(vm: VmFd): void {
  const supported = vm.checkExtension(CAP.X86_DISABLE_EXITS);
  const wanted = supported &
    (DISABLE_EXITS.MWAIT | DISABLE_EXITS.HLT | DISABLE_EXITS.PAUSE | DISABLE_EXITS.CSTATE);
  if (wanted === 0) {
    log.warn("--cpu-pm: this host's KVM cannot pass power management to the guest; ignored");
    return;
  }
  const err = vm.enableCap(CAP.X86_DISABLE_EXITS, [wanted]);
  if (err !== 0) log.warn(`--cpu-pm: KVM refused it (errno ${err}); ignored`);
}

/** What the VM needs from the run's options. */
export interface VmOptions {
  /** In-kernel PIT (`--pit`). */
  readonly pit?: boolean | undefined;
  /** Power management without exits (`--cpu-pm`). */
  readonly cpuPm?: boolean | undefined;
}

/**
 * Gives a VM that has its interrupt controllers (`src/machine/irqchip.ts`)
 * the PIT and the options asked for.
 */
export function configureVm(vm: VmFd, options: VmOptions): void {
  if (options.pit) vm.createPit2();
  if (options.cpuPm) enableCpuPm(vm);
  const x2apic = vm.enableCap(CAP.X2APIC_API, [
    X2APIC_API.USE_32BIT_IDS | X2APIC_API.DISABLE_BROADCAST_QUIRK,
  ]);
  if (x2apic !== 0) log.warn(`KVM_CAP_X2APIC_API could not be enabled (errno ${x2apic})`);
}

/** Sets a vCPU's boot state: long mode, the GDT, entry registers, CPUID, MSRs, runnable. */
export function setUpVcpu(
  vcpu: VcpuFd,
  options: {
    entry: number;
    guestAddress: number;
    stack: number;
    gdt: { base: number; limit: number };
    cpuid: ReturnType<typeof adjustCpuid>;
  },
): void {
  const sregs = new Sregs();
  vcpu.getSregs(sregs);
  const s = initialSpecialRegisters({ guestAddress: options.guestAddress, gdt: options.gdt });
  sregs.setU64(SREGS.cr0, s.cr0);
  sregs.setU64(SREGS.cr3, s.cr3);
  sregs.setU64(SREGS.cr4, s.cr4);
  sregs.setU64(SREGS.efer, s.efer);
  sregs.setSegment(SREGS.cs, s.cs);
  sregs.setSegment(SREGS.ds, s.ds);
  sregs.setSegment(SREGS.es, s.es);
  sregs.setSegment(SREGS.ss, s.ss);
  sregs.setDtable(SREGS.gdt, s.gdt);
  vcpu.setSregs(sregs);

  const r = initialRegisters({
    entry: options.entry,
    bootInfo: options.guestAddress + BOOT_INFO_OFFSET,
    cpuId: vcpu.id,
    stack: options.stack,
  });
  const regs = new Regs();
  regs.set("rip", r.rip);
  regs.set("rsp", r.rsp);
  regs.set("rdi", r.rdi);
  regs.set("rsi", r.rsi);
  regs.set("rflags", r.rflags);
  vcpu.setRegs(regs);

  vcpu.setCpuid(options.cpuid);
  vcpu.setRunnable();
  vcpu.setMsrs(BOOT_MSRS);
}
