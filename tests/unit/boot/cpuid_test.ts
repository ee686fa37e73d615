import assert from "node:assert/strict";
import { adjustCpuid, BRAND_STRING, type CpuidEntry } from "../../../src/boot/cpuid.ts";

function leaf(fn: number, regs: Partial<CpuidEntry> = {}): CpuidEntry {
  return { function: fn, index: 0, flags: 0, eax: 0x11, ebx: 0x22, ecx: 0x33, edx: 0x44, ...regs };
}

function supported(): CpuidEntry[] {
  return [
    leaf(0x0, { eax: 0xd }),
    leaf(0x1, { ecx: 0x7ffa_3203, edx: 0x178b_fbff }),
    leaf(0x7, { index: 0, flags: 1, ebx: 0x219c_07ab }),
    leaf(0xa, { eax: 0x0730_0403, ebx: 0xff, edx: 0x603 }),
    leaf(0x4000_0000, { ebx: 0x4b4d_564b }),
    leaf(0x8000_0000, { eax: 0x8000_0008 }),
    leaf(0x8000_0002),
    leaf(0x8000_0003),
    leaf(0x8000_0004),
  ];
}

function find(entries: CpuidEntry[], fn: number): CpuidEntry {
  const e = entries.find((x) => x.function === fn);
  assert.ok(e, `leaf 0x${fn.toString(16)}`);
  return e;
}

Deno.test("adjustCpuid() sets hypervisor and TSC-deadline in leaf 1 ECX and MSR in EDX", () => {
  const out = find(adjustCpuid(supported()), 1);
  assert.equal(out.ecx, (0x7ffa_3203 | 0x8000_0000 | 0x0100_0000) >>> 0);
  assert.equal(out.edx, 0x178b_fbff | 0x20);
  assert.equal(out.eax, 0x11);
  assert.equal(out.ebx, 0x22);
  // bits already present stay; the result is unsigned
  const again = find(
    adjustCpuid([...supported().filter((e) => e.function !== 1), leaf(1, { ecx: -1, edx: 0 })]),
    1,
  );
  assert.equal(again.ecx, 0xffff_ffff);
  assert.equal(again.edx, 0x20);
});

Deno.test("adjustCpuid() clears leaf 0xA EAX only", () => {
  const out = find(adjustCpuid(supported()), 0xa);
  assert.deepEqual(out, leaf(0xa, { eax: 0, ebx: 0xff, edx: 0x603 }));
});

Deno.test("adjustCpuid() writes the brand string 'uhyve - unikernel hypervisor'", () => {
  const out = adjustCpuid(supported());
  const bytes = new Uint8Array(48);
  const view = new DataView(bytes.buffer);
  [0x8000_0002, 0x8000_0003, 0x8000_0004].forEach((fn, i) => {
    const e = find(out, fn);
    [e.eax, e.ebx, e.ecx, e.edx].forEach((r, j) => view.setUint32(i * 16 + j * 4, r, true));
  });
  const text = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  assert.equal(text, "uhyve - unikernel hypervisor");
  assert.equal(text, BRAND_STRING);
  assert.ok(bytes.subarray(28).every((b) => b === 0));
  // the register values of §3.4 (ASCII packed little-endian)
  assert.deepEqual(
    find(out, 0x8000_0002),
    leaf(0x8000_0002, {
      eax: 0x7679_6875, // "uhyv"
      ebx: 0x202d_2065, // "e - "
      ecx: 0x6b69_6e75, // "unik"
      edx: 0x656e_7265, // "erne"
    }),
  );
  assert.deepEqual(
    find(out, 0x8000_0003),
    leaf(0x8000_0003, {
      eax: 0x7968_206c, // "l hy"
      ebx: 0x7672_6570, // "perv"
      ecx: 0x726f_7369, // "isor"
      edx: 0, // clean NUL (uhyve leaves 0x656E7200 here)
    }),
  );
  assert.deepEqual(find(out, 0x8000_0004), leaf(0x8000_0004, { eax: 0, ebx: 0, ecx: 0, edx: 0 }));
});

Deno.test("adjustCpuid() passes other leaves through and does not modify its input", () => {
  const input = supported();
  const snapshot = structuredClone(input);
  const out = adjustCpuid(input);
  assert.deepEqual(input, snapshot);
  assert.equal(out.length, input.length);
  for (const fn of [0x0, 0x7, 0x4000_0000, 0x8000_0000]) {
    assert.deepEqual(find(out, fn), find(input, fn));
  }
  assert.deepEqual(out.map((e) => e.function), input.map((e) => e.function));
  assert.ok(out.every((e, i) => e !== input[i]));
});

Deno.test("adjustCpuid() throws an Error naming a missing required leaf", () => {
  for (const fn of [0x1, 0xa, 0x8000_0002, 0x8000_0003, 0x8000_0004]) {
    const entries = supported().filter((e) => e.function !== fn);
    assert.throws(
      () => adjustCpuid(entries),
      (e: unknown) => e instanceof Error && e.message.includes(`0x${fn.toString(16)}`),
      `leaf 0x${fn.toString(16)}`,
    );
  }
});
