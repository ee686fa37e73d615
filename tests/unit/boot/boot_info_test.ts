import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "../../../src/memory/guest_memory.ts";
import {
  BOOT_INFO_FIELDS,
  type BootInfo,
  PLATFORM_UHYVE,
  writeBootInfo,
} from "../../../src/boot/boot_info.ts";

const GUEST = 0x1_0000_0000;
const ADDR = GUEST + 0x9000;

function sample(overrides: Partial<BootInfo> = {}): BootInfo {
  return {
    physAddrStart: GUEST,
    physAddrEnd: GUEST + 0x400_0000,
    serialPortBase: 0x1030,
    deviceTree: GUEST + 0x5000,
    kernelImageStart: GUEST + 0x40000,
    kernelImageEnd: GUEST + 0x40000 + 0x1_2345,
    tls: { start: GUEST + 0x5_0000, filesz: 0x10, memsz: 0x58, align: 0x8 },
    numCpus: 4,
    cpuFreqKhz: 2_300_000,
    bootTimeNs: 1_700_000_000_123_456_789n,
    ...overrides,
  };
}

/** The 128 bytes expected for `info`, built independently with a DataView. */
function expected(info: BootInfo): Uint8Array {
  const out = new Uint8Array(128);
  const v = new DataView(out.buffer);
  const u64 = (o: number, n: number | bigint): void => v.setBigUint64(o, BigInt(n), true);
  u64(0x00, info.physAddrStart);
  u64(0x08, info.physAddrEnd);
  v.setUint16(0x10, info.serialPortBase, true);
  u64(0x18, info.deviceTree);
  u64(0x20, info.kernelImageStart);
  u64(0x28, info.kernelImageEnd);
  u64(0x30, info.tls?.start ?? 0);
  u64(0x38, info.tls?.filesz ?? 0);
  u64(0x40, info.tls?.memsz ?? 0);
  u64(0x48, info.tls?.align ?? 0);
  v.setUint32(0x50, 1, true);
  v.setUint8(0x58, 1);
  u64(0x60, info.numCpus);
  v.setUint32(0x68, info.cpuFreqKhz, true);
  const t = BigInt.asUintN(128, info.bootTimeNs);
  u64(0x70, t & 0xffff_ffff_ffff_ffffn);
  u64(0x78, t >> 64n);
  return out;
}

function ram(): GuestMemory {
  const mem = new GuestMemory(new ArrayBuffer(0x10000), GUEST);
  mem.u8.fill(0xaa);
  return mem;
}

Deno.test("writeBootInfo() writes every field of §4 at its offset, padding zeroed", () => {
  const mem = ram();
  const info = sample();
  writeBootInfo(mem, ADDR, info);
  assert.deepEqual(mem.bytes(ADDR, 128), expected(info));
  // spot checks against the table, byte by byte
  assert.equal(mem.readU32(ADDR + 0x50), 1);
  assert.equal(mem.readU8(ADDR + 0x58), 1);
  assert.equal(mem.readU16(ADDR + 0x10), 0x1030);
  assert.equal(mem.readU32(ADDR + 0x68), 2_300_000);
  assert.equal(mem.readU64(ADDR + 0x60), 4);
  for (
    const pad of [
      0x12,
      0x13,
      0x14,
      0x15,
      0x16,
      0x17,
      0x54,
      0x55,
      0x56,
      0x57,
      0x59,
      0x5f,
      0x6c,
      0x6f,
    ]
  ) {
    assert.equal(mem.readU8(ADDR + pad), 0, `padding at 0x${pad.toString(16)}`);
  }
  // bytes around the structure are untouched
  assert.equal(mem.readU8(ADDR - 1), 0xaa);
  assert.equal(mem.readU8(ADDR + 128), 0xaa);
});

Deno.test("writeBootInfo() writes a null TLS, no FDT and unknown frequency as zeros", () => {
  const mem = ram();
  const info = sample({ tls: null, deviceTree: 0, cpuFreqKhz: 0, serialPortBase: 0x800 });
  writeBootInfo(mem, ADDR, info);
  assert.deepEqual(mem.bytes(ADDR, 128), expected(info));
  assert.ok(mem.bytes(ADDR + 0x30, 0x20).every((b) => b === 0));
  assert.equal(mem.readU16(ADDR + 0x10), 0x800);
});

Deno.test("writeBootInfo() writes boot_time as a little-endian two's-complement i128", () => {
  const cases: [bigint, bigint, bigint][] = [
    [0n, 0n, 0n],
    [1_700_000_000_123_456_789n, 1_700_000_000_123_456_789n, 0n],
    [-1n, 0xffff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn],
    [-(2n ** 64n), 0n, 0xffff_ffff_ffff_ffffn],
    [2n ** 100n + 5n, 5n, 2n ** 36n],
    [-(2n ** 127n), 0n, 0x8000_0000_0000_0000n],
    [2n ** 127n - 1n, 0xffff_ffff_ffff_ffffn, 0x7fff_ffff_ffff_ffffn],
  ];
  for (const [ns, lo, hi] of cases) {
    const mem = ram();
    writeBootInfo(mem, ADDR, sample({ bootTimeNs: ns }));
    assert.equal(mem.readU64Big(ADDR + 0x70), lo, `low half of ${ns}`);
    assert.equal(mem.readU64Big(ADDR + 0x78), hi, `high half of ${ns}`);
  }
});

Deno.test("writeBootInfo() rejects values that do not fit, before writing anything", () => {
  const bad: Partial<BootInfo>[] = [
    { numCpus: 0 },
    { numCpus: 1.5 },
    { serialPortBase: 0x1_0000 },
    { serialPortBase: -1 },
    { cpuFreqKhz: 2 ** 32 },
    { physAddrEnd: -1 },
    { kernelImageStart: 2 ** 53 },
    { tls: { start: 0, filesz: 0, memsz: NaN, align: 0 } },
    { bootTimeNs: 2n ** 127n },
    { bootTimeNs: -(2n ** 127n) - 1n },
  ];
  for (const overrides of bad) {
    const mem = ram();
    assert.throws(
      () => writeBootInfo(mem, ADDR, sample(overrides)),
      RangeError,
      JSON.stringify(
        overrides,
        (_k, v) => typeof v === "bigint" ? String(v) : v,
      ),
    );
    assert.ok(mem.u8.every((b) => b === 0xaa));
  }
});

Deno.test("writeBootInfo() throws GuestMemoryError when the 128 bytes leave RAM", () => {
  const mem = ram();
  assert.throws(() => writeBootInfo(mem, GUEST + 0x10000 - 127, sample()), GuestMemoryError);
  assert.ok(mem.u8.every((b) => b === 0xaa));
});

Deno.test("BOOT_INFO_FIELDS lists the offsets of §4", () => {
  assert.deepEqual({ ...BOOT_INFO_FIELDS }, {
    physAddrStart: 0x00,
    physAddrEnd: 0x08,
    serialPortBase: 0x10,
    deviceTree: 0x18,
    kernelImageStart: 0x20,
    kernelImageEnd: 0x28,
    tlsStart: 0x30,
    tlsFilesz: 0x38,
    tlsMemsz: 0x40,
    tlsAlign: 0x48,
    platformTag: 0x50,
    hasPci: 0x58,
    numCpus: 0x60,
    cpuFreqKhz: 0x68,
    bootTimeNs: 0x70,
  });
  assert.equal(PLATFORM_UHYVE, 1);
});
