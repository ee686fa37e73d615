/**
 * Instructions the host's KVM could not run, handled in userspace. On
 * kvm_pvm (nested KVM) the instruction emulator fails on `xgetbv`, which
 * every Hermit kernel runs at boot: dhyve executes it (and `xsetbv`) against
 * the vCPU's XCR0 and resumes. Anything else is described in one line.
 * @module
 */

import type { Regs, VcpuFd } from "../kvm.ts";
import { hex } from "../hypercall/protocol.ts";

const XGETBV = [0x0f, 0x01, 0xd0] as const;
const XSETBV = [0x0f, 0x01, 0xd1] as const;
/** XCR0 with x87 and SSE state enabled: the architectural minimum. */
const XCR0_DEFAULT = 3n;

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/**
 * Emulates `xgetbv`/`xsetbv` with ECX = 0 (XCR0). Returns false when `bytes`
 * are some other instruction, or the register number is not 0 (the guest
 * then sees the failure described by {@linkcode describeInstruction}).
 */
export function emulateXcrAccess(vcpu: VcpuFd, regs: Regs, bytes: Uint8Array): boolean {
  const isGet = startsWith(bytes, XGETBV);
  if (!isGet && !startsWith(bytes, XSETBV)) return false;
  vcpu.getRegs(regs);
  if ((regs.get("rcx") & 0xffff_ffff) !== 0) return false;
  if (isGet) {
    const xcr0 = vcpu.xcr0() ?? XCR0_DEFAULT;
    regs.setBig("rax", xcr0 & 0xffff_ffffn);
    regs.setBig("rdx", xcr0 >> 32n);
  } else {
    const value = (regs.getBig("rdx") & 0xffff_ffffn) << 32n | (regs.getBig("rax") & 0xffff_ffffn);
    if (vcpu.setXcr0(value) !== 0) return false;
  }
  regs.set("rip", regs.get("rip") + 3);
  vcpu.setRegs(regs);
  return true;
}

/** True for encodings in the SSE/SSE2+ opcode space (0F map with vector opcodes). */
export function looksLikeSse(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && [0x66, 0xf2, 0xf3].includes(bytes[i]!)) i++;
  if (i < bytes.length && (bytes[i]! & 0xf0) === 0x40) i++; // REX
  if (bytes[i] !== 0x0f) return false;
  const op = bytes[i + 1];
  if (op === undefined) return false;
  return op === 0x38 || op === 0x3a || (op >= 0x10 && op <= 0x17) || (op >= 0x28 && op <= 0x2f) ||
    (op >= 0x50 && op <= 0x7f) || (op >= 0xc2 && op <= 0xc6) || op >= 0xd0 ||
    op === 0xae; // fxsave/fxrstor/xsave family
}

/** One line for an instruction the host could not run. */
export function describeInstruction(rip: number, bytes: Uint8Array | null): string {
  const shown = bytes === null
    ? "(instruction bytes unreadable)"
    : `(bytes ${
      Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ")
    })`;
  const what = bytes !== null && looksLikeSse(bytes) ? "an SSE instruction" : "an instruction";
  return `The guest ran ${what} at RIP ${hex(rip)} ${shown} that this host's KVM cannot ` +
    "execute: its instruction emulator failed (nested KVM such as kvm_pvm cannot emulate SSE); " +
    "on a host with hardware KVM the guest would run on";
}
