/**
 * The CPUID table given to every vCPU (hermit-abi.md §3.4).
 *
 * Owns the changes uhyve makes to KVM's supported-CPUID list. Pure: entries
 * in, entries out; must not import kvm.ts or libc.ts.
 * @module
 */

export type { CpuidEntry } from "../abi/kvm.ts";
import type { CpuidEntry } from "../abi/kvm.ts";
import { encodeUtf8 } from "../utf8.ts";

/** Leaf 1: feature information. */
export const CPUID_LEAF_FEATURES = 0x1;
/** Leaf 0xA: architectural performance monitoring. */
export const CPUID_LEAF_PERFMON = 0xa;
/** Leaves 0x80000002–0x80000004: processor brand string. */
export const CPUID_LEAF_BRAND = [0x8000_0002, 0x8000_0003, 0x8000_0004] as const;

/** Leaf 1 ECX bit 31: running under a hypervisor. */
export const CPUID_ECX_HYPERVISOR = 0x8000_0000;
/** Leaf 1 ECX bit 24: TSC-deadline timer mode. */
export const CPUID_ECX_TSC_DEADLINE = 0x0100_0000;
/** Leaf 1 EDX bit 5: RDMSR/WRMSR. */
export const CPUID_EDX_MSR = 0x20;

/** The brand string the guest sees (Hermit prints it as "Model:"). */
export const BRAND_STRING = "uhyve - unikernel hypervisor";

/** The 48 brand bytes as 12 little-endian u32s: the string, a NUL, then zeros. */
function brandWords(): readonly number[] {
  const bytes = new Uint8Array(48);
  bytes.set(encodeUtf8(BRAND_STRING));
  const view = new DataView(bytes.buffer);
  return Array.from({ length: 12 }, (_, i) => view.getUint32(i * 4, true));
}

const BRAND_WORDS = brandWords();

const REQUIRED_LEAVES = [CPUID_LEAF_FEATURES, CPUID_LEAF_PERFMON, ...CPUID_LEAF_BRAND];

/**
 * Returns a copy of KVM's supported-CPUID list adjusted as uhyve does:
 * - leaf 1: ECX |= hypervisor (bit 31) | TSC-deadline (bit 24), EDX |= MSR
 *   (bit 5), all else passed through;
 * - leaf 0xA: EAX = 0 (no architectural perfmon);
 * - leaves 0x80000002–4: the brand string "uhyve - unikernel hypervisor".
 *
 * The brand is written cleanly: NUL-terminated, rest zero (0x80000003 EDX = 0,
 * 0x80000004 all zero). uhyve leaves the junk bytes "rne" after the NUL in
 * 0x80000003 EDX (0x656E7200) because it reuses a scratch buffer; the string
 * the guest reads up to the NUL is the same.
 *
 * Every entry of a changed leaf is changed (KVM lists each of these leaves
 * once). Other entries are copied unchanged; the input is not modified. All
 * values are unsigned 32-bit.
 *
 * @throws {Error} naming the leaf if leaf 1, 0xA or 0x80000002–4 is missing
 *   (uhyve panics in that case)
 */
export function adjustCpuid(entries: readonly CpuidEntry[]): CpuidEntry[] {
  for (const leaf of REQUIRED_LEAVES) {
    if (!entries.some((e) => e.function === leaf)) {
      throw new Error(
        `Cannot set up CPUID: leaf 0x${
          leaf.toString(16)
        } is missing from the host's supported list`,
      );
    }
  }
  return entries.map((entry) => {
    const e: CpuidEntry = {
      function: entry.function >>> 0,
      index: entry.index >>> 0,
      flags: entry.flags >>> 0,
      eax: entry.eax >>> 0,
      ebx: entry.ebx >>> 0,
      ecx: entry.ecx >>> 0,
      edx: entry.edx >>> 0,
    };
    if (e.function === CPUID_LEAF_FEATURES) {
      e.ecx = (e.ecx | CPUID_ECX_HYPERVISOR | CPUID_ECX_TSC_DEADLINE) >>> 0;
      e.edx = (e.edx | CPUID_EDX_MSR) >>> 0;
    } else if (e.function === CPUID_LEAF_PERFMON) {
      e.eax = 0;
    } else {
      const part = CPUID_LEAF_BRAND.indexOf(e.function as typeof CPUID_LEAF_BRAND[number]);
      if (part >= 0) {
        e.eax = BRAND_WORDS[part * 4] ?? 0;
        e.ebx = BRAND_WORDS[part * 4 + 1] ?? 0;
        e.ecx = BRAND_WORDS[part * 4 + 2] ?? 0;
        e.edx = BRAND_WORDS[part * 4 + 3] ?? 0;
      }
    }
    return e;
  });
}
