/**
 * Run-ahead: after dhyve has emulated an SSE instruction KVM failed on, keep
 * going in userspace with the instructions that follow while they are
 * supported SSE instructions (src/emulate/sse.ts) or the register-only
 * integer instructions between them (src/emulate/int.ts), so that a guest
 * loop costs one KVM round trip per batch instead of one per SSE
 * instruction. It stops before anything else (a fault, a memory-touching
 * integer instruction, an unknown opcode, unmapped code), which KVM then runs
 * or reports. Pure: no KVM imports.
 * @module
 */

import { runIntegerOperands } from "./int.ts";
import {
  decodeOpcode,
  MAX_INSTRUCTION_LENGTH as MAX_INSTRUCTION,
  X86Instruction,
} from "./decode.ts";
import type { VirtualMemory } from "../memory/guest_virtual.ts";
import { decodeSseOperands, executeSse, SSE_CHANGED, type SseState } from "./sse.ts";

const RFLAGS_TF = 0x100;

/** Options and counters of {@linkcode runAhead}. */
export interface RunAheadOptions {
  /** At most this many instructions. */
  limit: number;
  /** Stop after this many integer instructions in a row (past the SSE code KVM is as fast). */
  maxIntegerGap: number;
  /** Counts per mnemonic, when given. */
  byMnemonic?: Map<string, number>;
}

/** What {@linkcode runAhead} did. */
export interface RunAheadResult {
  /** Instructions run. */
  count: number;
  /** Of those, integer instructions. */
  integer: number;
  /** SSE_CHANGED bits of everything written. */
  changed: number;
}

const fetched = new Uint8Array(MAX_INSTRUCTION);
const heads = Array.from({ length: MAX_INSTRUCTION }, (_, n) => fetched.subarray(0, n));

/** The (up to 15) bytes at `rip`, or null when not even one is mapped. */
function fetch(memory: VirtualMemory, rip: bigint): Uint8Array | null {
  if (memory.read(rip, fetched) === null) return fetched;
  const inPage = 0x1000 - Number(rip & 0xfffn); // the instruction may end before the next page
  if (inPage >= MAX_INSTRUCTION) return null;
  const head = heads[inPage]!;
  return memory.read(rip, head) === null ? head : null;
}

/** The front end's scratch instruction. */
const front = new X86Instruction();

function tally(map: Map<string, number> | undefined, mnemonic: string): void {
  if (map !== undefined) map.set(mnemonic, (map.get(mnemonic) ?? 0) + 1);
}

/**
 * Runs the instructions at `state.rip` against `state` and `memory` until
 * one is not supported or would fault, or `options.limit` is reached. Never
 * runs ahead while RFLAGS.TF (single-step) is set. `state` and memory hold
 * the effects of exactly the instructions counted.
 */
export function runAhead(
  state: SseState,
  memory: VirtualMemory,
  options: RunAheadOptions,
): RunAheadResult {
  const result: RunAheadResult = { count: 0, integer: 0, changed: 0 };
  if ((state.rflags & RFLAGS_TF) !== 0) return result;
  let sinceSse = 0;
  while (result.count < options.limit) {
    const bytes = fetch(memory, state.rip);
    if (bytes === null) break;
    // Each instruction's prefixes and opcode are read once, for both emulators.
    if (!decodeOpcode(bytes, front)) break;
    const insn = decodeSseOperands(bytes, front, state);
    if (insn !== null) {
      const r = executeSse(insn, state, memory);
      if (r.kind !== "done") break; // faults and the unsupported are left to KVM
      result.changed |= r.changed;
      result.count++;
      tally(options.byMnemonic, insn.mnemonic);
      sinceSse = 0;
      continue;
    }
    if (++sinceSse > options.maxIntegerGap) break;
    const step = runIntegerOperands(bytes, front, state);
    if (step === null) break;
    result.changed |= SSE_CHANGED.GPR | SSE_CHANGED.RFLAGS;
    result.count++;
    result.integer++;
    tally(options.byMnemonic, step.mnemonic);
  }
  return result;
}
