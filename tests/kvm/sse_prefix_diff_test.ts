/**
 * The x86 front end's prefix rules (src/emulate/decode.ts) against the host
 * CPU: hand-picked encodings where dhyve's three old decoders disagreed — the
 * order of legacy prefixes, REX that is not last, F2/F3/66 as mandatory
 * prefixes (with REX.W too), null segment overrides, the address-size
 * override (32-bit wrap-around, also RIP-relative) and RIP-relative operands
 * with an immediate after the displacement — run natively by
 * tests/_helpers/sse_native.c and by the emulator, and compared bit for bit
 * (registers, MXCSR, memory, #PF address). Needs gcc.
 * @module
 */

import assert from "node:assert/strict";
import { compare, emulate, emulatorMemory } from "../_helpers/sse_emulated.ts";
import {
  buildSseNative,
  gccAvailable,
  NATIVE_CODE_ADDRESS,
  NATIVE_DATA_ADDRESS,
  type NativeCase,
  runNative,
  WINDOW,
} from "../_helpers/sse_native.ts";

const RAX = 0;
const RCX = 1;
const RDX = 2;
/** Far from anything a process maps below 4 GiB: a 67-prefixed access faults there. */
const LOW_ADDRESS = 0x1234_5000n;

interface PrefixCase {
  name: string;
  code: number[];
  /** Registers to set (the rest are a fixed pattern). */
  gpr?: Record<number, bigint>;
  /** Code bytes are patched with the disp32 that makes a RIP-relative operand hit DATA. */
  ripDispAt?: number;
}

const CASES: PrefixCase[] = [
  // Mandatory prefixes: the last F2/F3 wins; either beats 66 wherever it stands.
  { name: "f3 f2: addsd", code: [0xf3, 0xf2, 0x0f, 0x58, 0xc1] },
  { name: "f2 f3: addss", code: [0xf2, 0xf3, 0x0f, 0x58, 0xc1] },
  { name: "66 f3: addss", code: [0x66, 0xf3, 0x0f, 0x58, 0xc1] },
  { name: "f3 66: addss", code: [0xf3, 0x66, 0x0f, 0x58, 0xc1] },
  { name: "66 f2: addsd", code: [0x66, 0xf2, 0x0f, 0x58, 0xc1] },
  { name: "f2 66: addsd", code: [0xf2, 0x66, 0x0f, 0x58, 0xc1] },
  { name: "66 66: addpd", code: [0x66, 0x66, 0x0f, 0x58, 0xc1] },
  // REX counts only right before the opcode.
  { name: "44 66: REX ignored (addpd xmm0)", code: [0x44, 0x66, 0x0f, 0x58, 0xc1] },
  { name: "66 44: addpd xmm8", code: [0x66, 0x44, 0x0f, 0x58, 0xc1] },
  { name: "48 66: movd (REX.W ignored)", code: [0x48, 0x66, 0x0f, 0x6e, 0xc0] },
  { name: "66 48: movq", code: [0x66, 0x48, 0x0f, 0x6e, 0xc0] },
  { name: "48 f2 2e: cvtsd2si eax (REX ignored)", code: [0x48, 0xf2, 0x2e, 0x0f, 0x2d, 0xc1] },
  { name: "f2 48: cvtsd2si rax", code: [0xf2, 0x48, 0x0f, 0x2d, 0xc1] },
  { name: "66 f2 48: cvtsd2si rax", code: [0x66, 0xf2, 0x48, 0x0f, 0x2d, 0xc1] },
  { name: "41 44: the last REX (xmm8)", code: [0x41, 0x44, 0x0f, 0x58, 0xc1] },
  { name: "44 41: the last REX (xmm0, xmm9)", code: [0x44, 0x41, 0x0f, 0x58, 0xc1] },
  // Null segment overrides, before and after the mandatory prefix and REX.
  { name: "2e 3e 26 36: addps [rax]", code: [0x2e, 0x3e, 0x26, 0x36, 0x0f, 0x58, 0x00] },
  { name: "66 2e 44: movdqa xmm8, [rax]", code: [0x66, 0x2e, 0x44, 0x0f, 0x6f, 0x00] },
  { name: "f3 3e: movss [rax+rcx*2]", code: [0xf3, 0x3e, 0x0f, 0x10, 0x04, 0x48] },
  // Address-size override: registers read as 32 bits, the address wraps at 4 GiB.
  {
    name: "67: [eax] faults at the low address",
    code: [0x67, 0x0f, 0x58, 0x00],
    gpr: { [RAX]: 0xdead_beef_0000_0000n | LOW_ADDRESS },
  },
  {
    name: "67: [eax+ecx*8+disp8] wraps at 4 GiB",
    code: [0x67, 0x66, 0x0f, 0x6f, 0x44, 0xc8, 0x10],
    gpr: { [RAX]: 0xffff_fff0n, [RCX]: (LOW_ADDRESS >> 3n) | 0xffff_0000_0000_0000n },
  },
  {
    name: "67: [rip+disp32] is EIP-relative",
    code: [0x67, 0x0f, 0x58, 0x05, 0x00, 0x50, 0x34, 0x12],
  },
  // RIP-relative operands count from the end of the instruction, immediates included.
  {
    name: "rip-relative with imm8: shufps",
    code: [0x0f, 0xc6, 0x05, 0, 0, 0, 0, 0x1b],
    ripDispAt: 3,
  },
  {
    name: "rip-relative with imm8 and prefixes: 2e 66 44 0f 3a 0f palignr",
    code: [0x2e, 0x66, 0x44, 0x0f, 0x3a, 0x0f, 0x05, 0, 0, 0, 0, 0x05],
    ripDispAt: 7,
  },
  // LOCK makes an SSE instruction #UD.
  { name: "f0: lock addps is #UD", code: [0xf0, 0x0f, 0x58, 0x00] },
];

function nativeCase(c: PrefixCase): NativeCase {
  const code = new Uint8Array(c.code);
  if (c.ripDispAt !== undefined) {
    const disp = NATIVE_DATA_ADDRESS - (NATIVE_CODE_ADDRESS + BigInt(code.length));
    new DataView(code.buffer).setInt32(c.ripDispAt, Number(BigInt.asIntN(32, disp)), true);
  }
  const gpr = new BigUint64Array(16);
  for (let i = 0; i < 16; i++) gpr[i] = 0x0101_0101_0101_0101n * BigInt(i + 1);
  gpr[RAX] = NATIVE_DATA_ADDRESS;
  gpr[RCX] = 4n;
  gpr[RDX] = 0n;
  for (const [r, v] of Object.entries(c.gpr ?? {})) gpr[Number(r)] = v;
  const xmm = new Uint8Array(256);
  const xv = new DataView(xmm.buffer);
  for (let i = 0; i < 32; i++) xv.setFloat64(i * 8, 1.25 * (i + 1) + i / 7, true);
  const mem = new Uint8Array(WINDOW);
  const mv = new DataView(mem.buffer);
  for (let i = 0; i < WINDOW / 8; i++) mv.setFloat64(i * 8, 3.5 * (i + 1) - i / 3, true);
  return { code, mxcsr: 0x1f80, memOffset: 0, rflags: 0x2n, gpr, xmm, mem };
}

const haveGcc = await gccAvailable();
if (!haveGcc) {
  // deno-lint-ignore no-console
  console.error("SKIP: gcc is not available: SSE prefix differential tests skipped");
}

Deno.test({
  name: "the x86 front end applies prefixes as the host CPU does (order, REX, 66/F2/F3, 67, RIP)",
  ignore: !haveGcc,
  async fn(): Promise<void> {
    const binary = await buildSseNative();
    const natives = CASES.map(nativeCase);
    const { results } = await runNative(binary, natives);
    const { ram, vm } = emulatorMemory();
    const failures: string[] = [];
    CASES.forEach((c, i) => {
      const problem = compare(c.name, natives[i]!, results[i]!, emulate(natives[i]!, ram, vm));
      if (problem !== null) failures.push(problem);
    });
    assert.deepEqual(failures, []);
    // The cases must exercise what they name: faults where a fault is meant, else success.
    const statuses = results.map((r) => r.status);
    assert.deepEqual(
      CASES.filter((_, i) => statuses[i] !== 0).map((c) => c.name),
      [
        "67: [eax] faults at the low address",
        "67: [eax+ecx*8+disp8] wraps at 4 GiB",
        "67: [rip+disp32] is EIP-relative",
        "f0: lock addps is #UD",
      ],
    );
  },
});
