/**
 * Unit tests of the device-tree parts added for uhyve 0.9.1 and main: the
 * `/cpus` node (uhyve main, on every architecture) and the initrd of
 * `--hermit-image-mode internal` (`/chosen` `linux,initrd-start`/`-end` and a
 * memory reservation). Checks the bytes with the test DTB reader. Runs with
 * no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { buildHermitFdt, FdtWriter, type HermitFdtOptions } from "../../../src/boot/fdt.ts";
import { findNode, parseFdt, propString, propU32, propU64s } from "../../_helpers/fdt_reader.ts";

function options(overrides: Partial<HermitFdtOptions> = {}): HermitFdtOptions {
  return {
    guestAddress: 0x1_0000_0000,
    memorySize: 0x400_0000,
    tscKhz: 2_000_000,
    mounts: ["/root"],
    args: ["a"],
    env: [],
    ...overrides,
  };
}

Deno.test("buildHermitFdt() writes uhyve main's /cpus node after the mounts, before the TSC", () => {
  const fdt = parseFdt(buildHermitFdt(options({ cpuCount: 3 })));
  assert.deepEqual(fdt.paths, [
    "/",
    "/memory@100000000",
    "/uhyve,mounts",
    "/cpus",
    "/cpus/cpu@0",
    "/cpus/cpu@1",
    "/cpus/cpu@2",
    "/hermit,tsc",
    "/chosen",
  ]);
  const cpus = findNode(fdt, "/cpus");
  assert.deepEqual([...(cpus?.props.keys() ?? [])], ["#address-cells", "#size-cells"]);
  assert.equal(propU32(cpus?.props.get("#address-cells")), 1);
  assert.equal(propU32(cpus?.props.get("#size-cells")), 0);
  for (const cpu of cpus?.children ?? []) {
    assert.deepEqual([...cpu.props.keys()], ["device_type"], "x86: no compatible, no reg");
    assert.equal(propString(cpu.props.get("device_type")), "cpu");
    assert.deepEqual(cpu.children, []);
  }
});

Deno.test("buildHermitFdt() names CPUs in decimal and lists exactly cpuCount of them", () => {
  const paths = parseFdt(buildHermitFdt(options({ cpuCount: 12 }))).paths;
  const cpus = paths.filter((p) => p.startsWith("/cpus/"));
  assert.deepEqual(cpus, Array.from({ length: 12 }, (_, i) => `/cpus/cpu@${i}`));
  assert.equal(
    parseFdt(buildHermitFdt(options({ cpuCount: 256, args: [] }))).paths.filter((p) =>
      p.startsWith("/cpus/")
    ).length,
    256,
  );
  assert.throws(() => buildHermitFdt(options({ cpuCount: 0 })), RangeError);
  assert.throws(() => buildHermitFdt(options({ cpuCount: 1.5 })), RangeError);
});

Deno.test("buildHermitFdt() without cpuCount or initrd writes the 0.8 tree unchanged", () => {
  const fdt = parseFdt(buildHermitFdt(options()));
  assert.ok(!fdt.paths.includes("/cpus"));
  assert.deepEqual([...(findNode(fdt, "/chosen")?.props.keys() ?? [])], ["bootargs"]);
  assert.deepEqual(fdt.reservations, []);
});

Deno.test("buildHermitFdt() announces an initrd in /chosen and reserves its pages", () => {
  const start = 0x1_0009_d000;
  const end = start + 0x2345;
  const blob = buildHermitFdt(options({ cpuCount: 1, initrd: { start, end } }));
  const fdt = parseFdt(blob);
  const chosen = findNode(fdt, "/chosen");
  assert.deepEqual([...(chosen?.props.keys() ?? [])], [
    "bootargs",
    "linux,initrd-start",
    "linux,initrd-end",
  ]);
  assert.deepEqual(propU64s(chosen?.props.get("linux,initrd-start")), [BigInt(start)]);
  assert.deepEqual(propU64s(chosen?.props.get("linux,initrd-end")), [BigInt(end)]);
  // The raw property: one big-endian u64 cell.
  assert.deepEqual(
    chosen?.props.get("linux,initrd-start"),
    new Uint8Array([0, 0, 0, 1, 0, 0x09, 0xd0, 0]),
  );
  assert.deepEqual(fdt.reservations, [{ address: BigInt(start), size: 0x3000n }]);
  assert.equal(fdt.header.offMemRsvmap, 40);
  assert.equal(fdt.header.offDtStruct, 40 + 16 + 16, "one entry plus the terminator");
  assert.ok(blob.subarray(56, 72).every((b) => b === 0), "terminating entry");
});

Deno.test("buildHermitFdt() reserves exactly one page for a page-sized initrd", () => {
  const fdt = parseFdt(buildHermitFdt(options({ initrd: { start: 0x20_0000, end: 0x20_1000 } })));
  assert.deepEqual(fdt.reservations, [{ address: 0x20_0000n, size: 0x1000n }]);
  assert.throws(() => buildHermitFdt(options({ initrd: { start: 8, end: 8 } })), RangeError);
  assert.throws(() => buildHermitFdt(options({ initrd: { start: 9, end: 8 } })), RangeError);
});

Deno.test("FdtWriter writes reservation entries big-endian, in order, before the terminator", () => {
  const w = new FdtWriter([{ address: 0x1_2345_6000, size: 0x1000 }, {
    address: 0x10,
    size: 0x20,
  }]);
  w.beginNode("");
  w.endNode();
  const blob = w.finish();
  assert.deepEqual(
    blob.subarray(40, 72),
    new Uint8Array([
      0,
      0,
      0,
      1,
      0x23,
      0x45,
      0x60,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x20,
    ]),
  );
  assert.deepEqual(parseFdt(blob).reservations, [
    { address: 0x1_2345_6000n, size: 0x1000n },
    { address: 0x10n, size: 0x20n },
  ]);
  assert.throws(() => new FdtWriter([{ address: -1, size: 1 }]), RangeError);
});
