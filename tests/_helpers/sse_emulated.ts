/**
 * The emulator side of the differential SSE tests: runs a
 * {@linkcode NativeCase} through dhyve's decoder and executor over real page
 * tables (the data page mapped where the native helper maps it, the page
 * after it not), and compares the outcome with the host CPU's.
 * @module
 */

import { decodeSse, executeSse, type SseState } from "../../src/emulate/sse.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";
import { GuestVirtualMemory } from "../../src/memory/guest_virtual.ts";
import {
  NATIVE_CODE_ADDRESS,
  NATIVE_DATA_ADDRESS,
  type NativeCase,
  type NativeResult,
  WINDOW,
} from "./sse_native.ts";

const CODE = NATIVE_CODE_ADDRESS;
const DATA = NATIVE_DATA_ADDRESS;

const PT_BASE = 0x1000;
const DATA_GPA = 0x8000;

/** Guest RAM with page tables mapping DATA (read/write) and leaving DATA + 4 KiB unmapped. */
export function emulatorMemory(): { ram: GuestMemory; vm: GuestVirtualMemory } {
  const ram = new GuestMemory(new ArrayBuffer(0x10000));
  const va = DATA;
  const idx = (shift: bigint): number => Number((va >> shift) & 511n);
  const pml4 = PT_BASE;
  const pdpt = PT_BASE + 0x1000;
  const pd = PT_BASE + 0x2000;
  const pt = PT_BASE + 0x3000;
  ram.writeU64(pml4 + idx(39n) * 8, pdpt | 3);
  ram.writeU64(pdpt + idx(30n) * 8, pd | 3);
  ram.writeU64(pd + idx(21n) * 8, pt | 3);
  ram.writeU64(pt + idx(12n) * 8, DATA_GPA | 3);
  const vm = new GuestVirtualMemory(ram);
  vm.cr3 = pml4;
  return { ram, vm };
}

/** What the emulator did with a case, in the native helper's terms. */
export interface Outcome {
  status: number;
  faultAddress: bigint;
  rflags: bigint;
  mxcsr: number;
  gpr: BigUint64Array;
  xmm: Uint8Array;
  mem: Uint8Array;
  note: string;
}

/** Runs `c` in the emulator (status 4: not decoded, 6: wrong length, 7: unsupported). */
export function emulate(c: NativeCase, ram: GuestMemory, vm: GuestVirtualMemory): Outcome {
  ram.fill(DATA_GPA, 4096);
  ram.write(DATA_GPA + c.memOffset, c.mem);
  const state: SseState = {
    xmm: c.xmm.slice(),
    mxcsr: c.mxcsr,
    gpr: c.gpr.slice(),
    rflags: Number(c.rflags),
    rip: CODE,
    fsBase: 0n,
    gsBase: 0n,
  };
  const insn = decodeSse(c.code, state);
  const base = {
    faultAddress: 0n,
    rflags: BigInt(state.rflags),
    mxcsr: state.mxcsr,
    gpr: state.gpr,
    xmm: state.xmm,
    mem: ram.bytes(DATA_GPA + c.memOffset, WINDOW).slice(),
  };
  if (insn === null) return { ...base, status: 4, note: "not decoded" };
  if (insn.length !== c.code.length) {
    return { ...base, status: 6, note: `decoded length ${insn.length}` };
  }
  const result = executeSse(insn, state, vm);
  const after = {
    rflags: BigInt(state.rflags),
    mxcsr: state.mxcsr,
    mem: ram.bytes(DATA_GPA + c.memOffset, WINDOW).slice(),
  };
  if (result.kind === "done") {
    const ripOk = state.rip === CODE + BigInt(c.code.length);
    return { ...base, ...after, status: 0, note: ripOk ? insn.mnemonic : "RIP not advanced" };
  }
  if (result.kind === "unsupported") {
    return {
      ...base,
      ...after,
      status: /unmasked/.test(result.reason) ? 3 : 7,
      note: result.reason,
    };
  }
  return {
    ...base,
    ...after,
    status: result.vector === 13 ? 1 : result.vector === 14 ? 2 : 8,
    faultAddress: result.address ?? 0n,
    note: `vector ${result.vector}`,
  };
}

/** The arithmetic RFLAGS bits (CF PF AF ZF SF OF). */
export const FLAGS_MASK = 0x8d5n;

/** Bytes as one run of hex digits. */
export function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function xmmDiff(a: Uint8Array, b: Uint8Array): string {
  const out: string[] = [];
  for (let i = 0; i < 16; i++) {
    const x = a.subarray(i * 16, i * 16 + 16);
    const y = b.subarray(i * 16, i * 16 + 16);
    if (hexBytes(x) !== hexBytes(y)) {
      out.push(`xmm${i}: native ${hexBytes(x)} emulated ${hexBytes(y)}`);
    }
  }
  return out.join("; ");
}

/** The differences between the native and the emulated outcome of `nc`, or null. */
export function compare(
  label: string,
  nc: NativeCase,
  n: NativeResult,
  e: Outcome,
): string | null {
  const problems: string[] = [];
  if (n.status !== e.status) {
    problems.push(
      `status native ${n.status} (detail ${
        n.detail.toString(16)
      }) emulated ${e.status} (${e.note})`,
    );
  } else if (n.status === 0) {
    const d = xmmDiff(n.xmm, e.xmm);
    if (d !== "") problems.push(d);
    for (let i = 0; i < 16; i++) {
      if (n.gpr[i] !== e.gpr[i]) {
        problems.push(
          `gpr${i}: native ${n.gpr[i]!.toString(16)} emulated ${e.gpr[i]!.toString(16)}`,
        );
      }
    }
    if ((n.rflags & FLAGS_MASK) !== (e.rflags & FLAGS_MASK)) {
      problems.push(
        `rflags: native ${(n.rflags & FLAGS_MASK).toString(16)} emulated ${
          (e.rflags & FLAGS_MASK).toString(16)
        }`,
      );
    }
    if (n.mxcsr !== e.mxcsr) {
      problems.push(`mxcsr: native ${n.mxcsr.toString(16)} emulated ${e.mxcsr.toString(16)}`);
    }
    if (e.note === "RIP not advanced") problems.push(e.note);
  } else if (n.status === 2 && n.faultAddress !== e.faultAddress) {
    problems.push(
      `#PF address native ${n.faultAddress.toString(16)} emulated ${e.faultAddress.toString(16)}`,
    );
  }
  if (hexBytes(n.mem) !== hexBytes(e.mem)) {
    problems.push(`memory: native ${hexBytes(n.mem)} emulated ${hexBytes(e.mem)}`);
  }
  if (problems.length === 0) return null;
  return `${label} [${hexBytes(nc.code)}] mxcsr ${nc.mxcsr.toString(16)} rflags ${
    nc.rflags.toString(16)
  } ` +
    `memOffset ${nc.memOffset}\n  in xmm: ${hexBytes(nc.xmm)}\n  in mem: ${
      hexBytes(nc.mem)
    }\n  in gpr: ${Array.from(nc.gpr, (v) => v.toString(16)).join(" ")}\n  ${
      problems.join("\n  ")
    }`;
}
