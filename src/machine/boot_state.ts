/**
 * Step 7 of a run: the kernel in guest RAM, the vCPUs with their boot
 * registers, and the boot state the kernel reads (GDT, FDT, boot info, page
 * tables), as uhyve 0.8 lays them out.
 * @module
 */

import { CAP } from "../abi/kvm.ts";
import { writeBootInfo } from "../boot/boot_info.ts";
import { adjustCpuid } from "../boot/cpuid.ts";
import { buildHermitFdt, FdtSizeError } from "../boot/fdt.ts";
import { writeGdt } from "../boot/gdt.ts";
import { BOOT_INFO_OFFSET, BOOT_STACK_SIZE, FDT_OFFSET } from "../boot/layout.ts";
import { type XsaveLayout, xsaveLayoutFromCpuid } from "../emulate/xsave.ts";
import { SERIAL_PORT_BASE } from "../hypercall/abi.ts";
import type { Kvm, VcpuFd, VmFd } from "../kvm.ts";
import { loadKernel } from "../loader/load.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { buildIdentityMap } from "../memory/paging.ts";
import { UsageError } from "../params.ts";
import type { FileMap } from "../sandbox/file_map.ts";
import type { PreparedKernel } from "./kernel.ts";
import { setUpVcpu } from "./kvm_setup.ts";

/** What the machine is made of once the boot state is written. */
export interface Machine {
  /** Every vCPU, set up to enter the kernel. */
  readonly vcpus: readonly VcpuFd[];
  /** KVM copies registers into kvm_run on exits. */
  readonly syncRegs: boolean;
  /** Where XSAVE components live (CPUID leaf 0xD), for FPU-state emulation. */
  readonly xsaveLayout: XsaveLayout;
}

/**
 * Step 7: load the kernel, create the vCPUs with their boot registers,
 * then the boot state the kernel reads (FDT, boot info, page tables).
 */
export function createMachine(
  stack: AsyncDisposableStack,
  m: {
    kvm: Kvm;
    vm: VmFd;
    mem: GuestMemory;
    kernel: PreparedKernel;
    plan: { memorySize: number; cpuCount: number; map: FileMap };
  },
): Machine {
  const { kvm, vm, mem, kernel, plan } = m;
  const { guestAddress, kernelAddress, kernelEnd } = kernel.layout;
  // The mapping is fresh (build.ts maps it for this run): a `.bss` needs no zeroing.
  const loaded = loadKernel(mem, kernel.bytes, kernel.image, kernelAddress, { zeroed: true });
  const initrd = kernel.initrd;
  // The pages after the initrd's end stay zero: the mapping is fresh.
  if (initrd !== null) mem.write(initrd.start, initrd.bytes);
  const cpuid = adjustCpuid(kvm.supportedCpuid());
  const gdt = writeGdt(mem, guestAddress);
  const stack0 = kernelAddress - BOOT_STACK_SIZE;
  const vcpus: VcpuFd[] = [];
  for (let id = 0; id < plan.cpuCount; id++) {
    const vcpu = stack.use(vm.createVcpu(id));
    vcpus.push(vcpu);
    setUpVcpu(vcpu, { entry: loaded.entry, guestAddress, stack: stack0, gdt, cpuid });
  }
  const tscKhz = vcpus[0]!.tscKhz();
  let fdt: Uint8Array;
  try {
    fdt = buildHermitFdt({
      guestAddress,
      memorySize: plan.memorySize,
      tscKhz,
      mounts: plan.map.mounts(),
      args: kernel.args,
      env: kernel.env,
      cpuCount: plan.cpuCount,
      ...(initrd !== null ? { initrd: { start: initrd.start, end: initrd.end } } : {}),
    });
  } catch (error) {
    if (error instanceof FdtSizeError) {
      throw new UsageError(
        "The kernel arguments, environment and vCPU list are too long to fit in the device " +
          "tree (16 KiB)",
      );
    }
    throw error;
  }
  mem.write(guestAddress + FDT_OFFSET, fdt);
  writeBootInfo(mem, guestAddress + BOOT_INFO_OFFSET, {
    physAddrStart: guestAddress,
    physAddrEnd: guestAddress + plan.memorySize,
    serialPortBase: SERIAL_PORT_BASE[kernel.image.interfaceVersion],
    deviceTree: guestAddress + FDT_OFFSET,
    kernelImageStart: kernelAddress,
    kernelImageEnd: kernelEnd,
    tls: loaded.tls,
    numCpus: plan.cpuCount,
    cpuFreqKhz: tscKhz ?? 0,
    bootTimeNs: wallClockNs(),
  });
  // As uhyve 0.9.1: the identity map reaches the initrd's end too.
  const mappedEnd = initrd === null ? kernelEnd : Math.max(kernelEnd, initrd.end);
  buildIdentityMap(mem, { guestAddress, kernelEnd: mappedEnd, legacy: kernel.image.legacyMapping });
  return {
    vcpus,
    syncRegs: kvm.checkExtension(CAP.SYNC_REGS) !== 0,
    xsaveLayout: xsaveLayoutFromCpuid(cpuid),
  };
}

/**
 * The wall clock in nanoseconds (as precise as the platform gives), like
 * uhyve's `SystemTime::now()`, for the boot info.
 */
function wallClockNs(): bigint {
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.floor((ms - whole) * 1e6));
}
