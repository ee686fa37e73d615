/**
 * Instructions the host's KVM could not run, handled in userspace. On
 * kvm_pvm (nested KVM) the instruction emulator fails on `xgetbv`, which
 * every Hermit kernel runs at boot: dhyve executes it (and `xsetbv`) against
 * the vCPU's XCR0 and resumes. Anything else is described in one line.
 * @module
 */

import { KVM_XSAVE_SIZE, SREGS } from "../abi/kvm.ts";
import { DecodeError, decodeModrm, type GprName } from "../emulate/decode.ts";
import {
  fxrstor,
  fxsave,
  xrstor,
  xsave,
  xsaveAreaSize,
  type XsaveLayout,
} from "../emulate/xsave.ts";
import { hex } from "../hypercall/protocol.ts";
import type { Regs, Sregs, VcpuFd } from "../kvm.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { translateRange } from "../memory/paging.ts";

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

const CR0_TS = 8;
const VECTOR_NM = 7;
const VECTOR_GP = 13;
const FS_BASE_OFFSET = SREGS.fs;
const GS_BASE_OFFSET = SREGS.gs;

/** Scratch buffers for the FPU-state instructions, made once per vCPU. */
export class FpuScratch {
  /** The vCPU's XSAVE image. */
  readonly state: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_XSAVE_SIZE);
  /** A copy of the guest's save area. */
  readonly area: Uint8Array<ArrayBuffer> = new Uint8Array(KVM_XSAVE_SIZE);
}

/** What {@linkcode emulateFpuStateAccess} did. */
export type FpuEmulation = "done" | "injected" | "not-handled";

/**
 * Runs FXSAVE/FXRSTOR/XSAVE/XSAVEOPT/XRSTOR (0F AE /0 /1 /4 /5 /6 with a
 * memory operand) against the vCPU state, as the CPU would: #NM when CR0.TS
 * is set, #GP for a misaligned area or a bad XRSTOR header. Returns
 * "not-handled" for other instructions or when the area is not mapped.
 */
export function emulateFpuStateAccess(
  env: {
    vcpu: VcpuFd;
    regs: Regs;
    sregs: Sregs;
    mem: GuestMemory;
    layout: XsaveLayout;
    scratch: FpuScratch;
  },
  bytes: Uint8Array,
): FpuEmulation {
  const { vcpu, regs, sregs, mem, layout, scratch } = env;
  vcpu.getRegs(regs);
  let insn;
  try {
    insn = decodeModrm(bytes, regs.getBig("rip"), (r: GprName) => regs.getBig(r));
  } catch (error) {
    if (error instanceof DecodeError) return "not-handled";
    throw error;
  }
  const op = insn.reg & 7;
  if (insn.map !== 2 || insn.opcode !== 0xae || insn.mod === 3 || ![0, 1, 4, 5, 6].includes(op)) {
    return "not-handled";
  }
  vcpu.getSregs(sregs);
  if ((sregs.getU64(SREGS.cr0) & CR0_TS) !== 0) {
    return vcpu.injectException(VECTOR_NM) === 0 ? "injected" : "not-handled";
  }
  let address = insn.address;
  if (insn.segment === 0x64) address += BigInt(sregs.getU64(FS_BASE_OFFSET));
  if (insn.segment === 0x65) address += BigInt(sregs.getU64(GS_BASE_OFFSET));
  address &= (1n << 64n) - 1n;
  const isFx = op === 0 || op === 1;
  const align = isFx ? 16n : 64n;
  if (address % align !== 0n) {
    return vcpu.injectException(VECTOR_GP, 0) === 0 ? "injected" : "not-handled";
  }
  let rfbm = 3n;
  if (!isFx) {
    const xcr0 = vcpu.xcr0() ?? 3n;
    rfbm = ((regs.getBig("rdx") & 0xffff_ffffn) << 32n | (regs.getBig("rax") & 0xffff_ffffn)) &
      xcr0;
  }
  const size = isFx ? 512 : xsaveAreaSize(rfbm, layout);
  if (size < 0 || size > scratch.area.length || address > BigInt(Number.MAX_SAFE_INTEGER)) {
    return "not-handled";
  }
  const vaddr = Number(address);
  const cr3 = sregs.getU64(SREGS.cr3);
  const area = scratch.area.subarray(0, size);
  let at = 0;
  if (
    !translateRange(mem, cr3, vaddr, size, (gpa, n) => {
      area.set(mem.bytes(gpa, n), at);
      at += n;
    })
  ) return "not-handled";

  vcpu.getXsave(scratch.state);
  const state = scratch.state;
  let ok = true;
  const storing = op === 0 || op === 4 || op === 6;
  if (op === 0) fxsave(state, area);
  else if (op === 1) fxrstor(state, area);
  else if (storing) xsave(state, area, rfbm, layout);
  else ok = xrstor(state, area, rfbm, layout);
  if (!ok) return vcpu.injectException(VECTOR_GP, 0) === 0 ? "injected" : "not-handled";

  if (storing) {
    at = 0;
    translateRange(mem, cr3, vaddr, size, (gpa, n) => {
      mem.write(gpa, area.subarray(at, at + n));
      at += n;
    });
  } else if (vcpu.setXsave(state) !== 0) {
    return "not-handled";
  }
  regs.set("rip", regs.get("rip") + insn.length);
  vcpu.setRegs(regs);
  return "done";
}
