/**
 * A register dump for error reports (shown with -v). Best effort: a failure
 * to read the registers yields a note, never another error.
 * @module
 */

import { SREGS } from "../abi/kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { Regs, Sregs, type VcpuFd } from "../kvm.ts";
import type { RegName } from "../abi/kvm.ts";

const GPRS: readonly RegName[] = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
];

function h(v: bigint | number): string {
  return `0x${v.toString(16).padStart(16, "0")}`;
}

/** Multi-line dump of the vCPU's registers, or a note if they cannot be read. */
export function registerDump(vcpu: VcpuFd, mem: GuestMemory): string {
  try {
    const regs = new Regs();
    const sregs = new Sregs();
    vcpu.getRegs(regs);
    vcpu.getSregs(sregs);
    const lines = [`vCPU ${vcpu.id} registers:`];
    for (let i = 0; i < GPRS.length; i += 3) {
      lines.push(
        "  " + GPRS.slice(i, i + 3).map((r) => `${r.padStart(6)}=${h(regs.getBig(r))}`).join(" "),
      );
    }
    lines.push(
      "  " + (["cr0", "cr2", "cr3", "cr4", "efer"] as const)
        .map((r) => `${r.padStart(6)}=${h(sregs.getU64(SREGS[r]))}`).join(" "),
    );
    lines.push(`  guest RAM: ${h(mem.base)}..${h(mem.end)}`);
    return lines.join("\n");
  } catch (error) {
    return `vCPU ${vcpu.id} registers unavailable: ${
      error instanceof Error ? error.message : error
    }`;
  }
}
