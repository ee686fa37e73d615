/**
 * Cost of the SSE emulator itself (decode + execute, no KVM): the JS work
 * dhyve adds per emulated instruction on hosts whose KVM cannot run SSE.
 * Two of rusty_demo's loops run whole by the run-ahead (SSE plus the integer
 * bookkeeping between, fetched from guest memory): the π loop and the
 * z-order matrix product. Then three mixes run one by one: the π loop's SSE
 * (scalar doubles, the fast path), the hashbrown probe Hermit's std runs
 * everywhere (pcmpeqb/pmovmskb through memory), and the exact path
 * (denormals: bigint arithmetic). Pure, needs no
 * permissions: `deno run bench/sse.ts`, or import {@linkcode sseBenchmarks}.
 * @module
 */

import { runAhead } from "../src/emulate/run_ahead.ts";
import { decodeSse, executeSse, type SseState } from "../src/emulate/sse.ts";
import { GuestMemory } from "../src/memory/guest_memory.ts";
import { GuestVirtualMemory } from "../src/memory/guest_virtual.ts";
import { median } from "./_util.ts";

/** One result row. */
export interface SseBenchRow {
  /** What was run. */
  name: string;
  /** Median microseconds per instruction (decode + execute). */
  usPerInstruction: number;
  /** Instructions per run. */
  instructions: number;
}

function code(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

/** Guest RAM with an identity map of its first 2 MiB page and RSP in it. */
function machine(): { state: SseState; memory: GuestVirtualMemory; view: DataView } {
  const ram = new GuestMemory(new ArrayBuffer(0x40_0000));
  ram.writeU64(0x1000, 0x2000 | 3);
  ram.writeU64(0x2000, 0x3000 | 3);
  ram.writeU64(0x3000, 0x20_0000 | 0x83);
  const memory = new GuestVirtualMemory(ram);
  memory.cr3 = 0x1000;
  const state: SseState = {
    xmm: new Uint8Array(256),
    mxcsr: 0x1fa0, // PE already set, as after the first inexact operation
    gpr: new BigUint64Array(16),
    rflags: 2,
    rip: 0x1000n,
    fsBase: 0n,
    gsBase: 0n,
  };
  state.gpr[4] = 0x10000n; // RSP
  return { state, memory, view: new DataView(state.xmm.buffer) };
}

function timeLoop(
  codes: readonly Uint8Array[],
  rounds: number,
  setup: (m: ReturnType<typeof machine>, i: number) => void,
): number {
  const m = machine();
  const samples: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      setup(m, i);
      for (const c of codes) {
        const insn = decodeSse(c, m.state);
        if (insn === null || executeSse(insn, m.state, m.memory).kind !== "done") {
          throw new Error("benchmark instruction failed");
        }
      }
    }
    samples.push((performance.now() - t0) * 1000 / (rounds * codes.length));
  }
  return median(samples.slice(2)); // the first rounds warm up the JIT
}

/** Runs the three mixes. */
export function sseBenchmarks(): SseBenchRow[] {
  // rusty_demo's sequential π loop body: u64 → f64, x = (i + 0.5) · step, 4 / (1 + x²), sum.
  const pi = [
    "66480f6ec1",
    "660f62c2",
    "660f5cc3",
    "66440f28c0",
    "66440f15c0",
    "f2440f58c0",
    "f2440f58c4",
    "f2440f59c5",
    "f2450f59c0",
    "f2440f58c6",
    "660f28c7",
    "f2410f5ec0",
    "f20f58c1",
  ].map(code);
  const piRow = timeLoop(pi, 20000, (m, i) => {
    const v = m.view;
    if (i === 0) {
      v.setUint32(32, 0x4330_0000, true); // xmm2, xmm3: the u64 → f64 magic
      v.setUint32(36, 0x4530_0000, true);
      v.setFloat64(48, 2 ** 52, true);
      v.setFloat64(56, 2 ** 84, true);
      v.setFloat64(64, 0.5, true);
      v.setFloat64(80, 1 / 5e6, true);
      v.setFloat64(96, 1, true);
      v.setFloat64(112, 4, true);
    }
    m.state.gpr[1] = BigInt(i + 1);
    v.setFloat64(16, v.getFloat64(0, true), true);
  });
  // hashbrown's group probe: broadcast a byte, compare 16 control bytes in memory, mask.
  const probe = [
    "660f6ec0",
    "660f60c0",
    "f20f70c000",
    "660f70c000",
    "660f7f842480000000",
    "f30f6f0c24",
    "660f74842480000000",
    "66440fd7f0",
  ].map(code);
  const probeRow = timeLoop(probe, 20000, (m, i) => {
    m.state.gpr[0] = BigInt(i & 0x7f);
  });
  // Denormal operands: the exact (bigint) path with every flag.
  const exact = ["f20f59c1", "f20f58c1", "f20f5ec1"].map(code);
  const exactRow = timeLoop(exact, 5000, (m) => {
    m.view.setBigUint64(0, 0x0000_0000_0000_1234n, true);
    m.view.setBigUint64(16, 0x3ff8_0000_0000_0000n, true);
  });
  return [
    ...runAheadRows(),
    {
      name: "π loop (scalar doubles, fast path)",
      usPerInstruction: piRow,
      instructions: pi.length,
    },
    {
      name: "hashbrown probe (integer, memory)",
      usPerInstruction: probeRow,
      instructions: probe.length,
    },
    {
      name: "denormals (exact bigint path)",
      usPerInstruction: exactRow,
      instructions: exact.length,
    },
  ];
}

/** rusty_demo's sequential π loop (unrolled twice), then RET to end the run. */
export const PI_LOOP_HEX = "66480f6ec1660f62c2660f5cc366440f28c066440f15c0f2440f58c0f2440f58c4" +
  "f2440f59c5f2450f59c0f2440f58c6660f28c7f2410f5ec0f20f58c1488d510166480f6eca660f62ca" +
  "660f5ccb66440f28c166440f15c1f2440f58c1f2440f58c4f2440f59c5f2450f59c0f2440f58c6660f28cf" +
  "f2410f5ec8f20f58c84883c1024883c0fe0f8574ffffffc3";

/** rusty_demo's z-order matrix product inner loop, then RET. */
const ZORDER_LOOP_HEX = "4809c648ffc64989f84909c848c1e7034809d7f3430f100c84f3410f590c3e" +
  "f30f58c189f781e7555555554c39ff72d0c3";

/** Sets up the π loop's constants: xmm2/xmm3 (u64 → f64), 0.5, 1/steps, 1, 4; the sum is xmm1. */
export function piLoopSetup(view: DataView, steps: number): void {
  view.setUint32(32, 0x4330_0000, true);
  view.setUint32(36, 0x4530_0000, true);
  view.setFloat64(48, 2 ** 52, true);
  view.setFloat64(56, 2 ** 84, true);
  view.setFloat64(64, 0.5, true);
  view.setFloat64(80, 1 / steps, true);
  view.setFloat64(96, 1, true);
  view.setFloat64(112, 4, true);
}

function runAheadRows(): SseBenchRow[] {
  const loops: [string, string, (m: ReturnType<typeof machine>) => void][] = [
    ["run-ahead: π loop (SSE + integer)", PI_LOOP_HEX, (m) => {
      piLoopSetup(m.view, 5e6);
      m.view.setFloat64(16, 0, true);
      m.state.gpr[0] = 2000n; // rax: steps left (two per pass)
      m.state.gpr[1] = 0n; // rcx: i
    }],
    ["run-ahead: z-order matrix product", ZORDER_LOOP_HEX, (m) => {
      const g = m.state.gpr;
      g[0] = 0xaaaa_aaaan; // rax
      g[1] = 0n; // rcx
      g[2] = 0n; // rdx
      g[6] = 0n; // rsi
      g[7] = 0n; // rdi
      g[12] = 0x10_0000n; // r12: a
      g[14] = 0x4_0000n; // r14: b
      g[15] = 0x4000n; // r15: the bound (128 iterations)
    }],
  ];
  const rows: SseBenchRow[] = [];
  for (const [name, hex, setup] of loops) {
    const m = machine();
    m.memory.write(0x8000n, code(hex));
    const one = new Uint8Array(4);
    new DataView(one.buffer).setFloat32(0, 1, true);
    for (let a = 0x4_0000; a < 0x12_0000; a += 4) m.memory.write(BigInt(a), one);
    const samples: number[] = [];
    let perRun = 0;
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now();
      let n = 0;
      for (let k = 0; k < 20; k++) {
        setup(m);
        m.state.rip = 0x8000n;
        n += runAhead(m.state, m.memory, { limit: 1e9, maxIntegerGap: 24 }).count;
      }
      samples.push((performance.now() - t0) * 1000 / n);
      perRun = n / 20;
    }
    rows.push({ name, usPerInstruction: median(samples.slice(2)), instructions: perRun });
  }
  return rows;
}

if (import.meta.main) {
  for (const row of sseBenchmarks()) {
    // deno-lint-ignore no-console
    console.log(
      `${row.name.padEnd(40)} ${row.usPerInstruction.toFixed(3)} µs/instruction ` +
        `(${row.instructions} instructions per run)`,
    );
  }
}
