/**
 * Unit tests of uhyve interface version 3 (uhyve 0.9.1): the loader accepts a
 * `UHYVEIF` note of 3 and gives it the v2 boot state (RAM range, serial port
 * base); versions it does not know stay one clear line. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { SERIAL_PORT_BASE } from "../../../src/hypercall/abi.ts";
import {
  INTERFACE_VERSIONS,
  type KernelImage,
  parseKernel,
  unsupportedInterfaceMessage,
} from "../../../src/loader/elf.ts";
import { ImageFormatError, LayoutError } from "../../../src/loader/errors.ts";
import { chooseLayout, INTERFACE_RANGES, PIE_KERNEL_OFFSET } from "../../../src/loader/layout.ts";
import { buildElf, gnuNote, hermitNote, uhyveIfNote } from "../../_helpers/elf_builder.ts";

type Placement = Pick<KernelImage, "kind" | "interfaceVersion" | "firstVaddr" | "memSize">;

const MIB = 0x10_0000;
const GIB = 1024 * MIB;
const PIE_V3: Placement = { kind: "pie", interfaceVersion: 3, firstVaddr: 0, memSize: 0x9c600 };

Deno.test("parseKernel() reads a UHYVEIF note of 3 as interface version 3", () => {
  const img = parseKernel(buildElf({ notes: [hermitNote(), uhyveIfNote(3), gnuNote([0, 13, 0])] }));
  assert.equal(img.interfaceVersion, 3);
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 13, patch: 0 });
  assert.equal(img.legacyMapping, false);
});

Deno.test("parseKernel() rejects every UHYVEIF version but 1, 2 and 3 with one line", () => {
  assert.deepEqual([...INTERFACE_VERSIONS], [1, 2, 3]);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (v) => {
      const elf = buildElf({ notes: [hermitNote(), uhyveIfNote(v)] });
      if (v >= 1 && v <= 3) {
        assert.equal(parseKernel(elf).interfaceVersion, v);
        return;
      }
      assert.throws(() => parseKernel(elf), (e: unknown) => {
        assert.ok(e instanceof ImageFormatError);
        assert.equal(
          e.message,
          `Unsupported uhyve interface version ${v}: dhyve supports 1, 2 and 3`,
        );
        return true;
      });
    }),
    { examples: [[0], [4], [5], [0xffff_ffff]] },
  );
  assert.equal(
    unsupportedInterfaceMessage(4),
    "Unsupported uhyve interface version 4: dhyve supports 1, 2 and 3",
  );
});

Deno.test("a v3 kernel gets the v2 boot state: RAM range and serial port base 0x1030", () => {
  assert.deepEqual(INTERFACE_RANGES[3], INTERFACE_RANGES[2]);
  assert.equal(INTERFACE_RANGES[3].lo, 4 * GIB);
  assert.equal(SERIAL_PORT_BASE[3], 0x1030);
  assert.equal(SERIAL_PORT_BASE[3], SERIAL_PORT_BASE[2]);
  assert.equal(SERIAL_PORT_BASE[1], 0x800);
});

Deno.test("chooseLayout() places a v3 PIE kernel exactly where it places a v2 one", () => {
  const noAslr = chooseLayout(PIE_V3, { memorySize: 64 * MIB, aslr: false });
  assert.equal(noAslr.guestAddress, 4 * GIB);
  assert.equal(noAslr.kernelAddress, 4 * GIB + PIE_KERNEL_OFFSET);
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.integer({ min: 8, max: 2048 }),
      (r, mib) => {
        const opts = { memorySize: mib * 2 * MIB, aslr: true, random: () => r };
        const v3 = chooseLayout(PIE_V3, opts);
        const v2 = chooseLayout({ ...PIE_V3, interfaceVersion: 2 }, opts);
        assert.deepEqual(v3, v2);
        assert.ok(v3.guestAddress >= INTERFACE_RANGES[3].lo);
        assert.ok(v3.guestAddress + opts.memorySize <= INTERFACE_RANGES[3].hi);
      },
    ),
  );
});

Deno.test("chooseLayout() takes a fixed v3 kernel at its link address above 4 GiB", () => {
  const exec: Placement = { ...PIE_V3, kind: "fixed", firstVaddr: 0x1_0080_0000 };
  const l = chooseLayout(exec, { memorySize: 64 * MIB, aslr: true });
  assert.equal(l.guestAddress, 4 * GIB);
  assert.equal(l.kernelAddress, 0x1_0080_0000);
  assert.equal(l.aslrIgnored, true);
  assert.throws(
    () => chooseLayout({ ...exec, firstVaddr: 0x80_0000 }, { memorySize: 64 * MIB, aslr: false }),
    (e: unknown) => {
      assert.ok(e instanceof LayoutError);
      assert.match(e.message, /a uhyve interface v3 kernel must start within 0x100000000-/);
      return true;
    },
  );
});

Deno.test("chooseLayout() names the v3 range when the memory does not fit", () => {
  assert.throws(
    () => chooseLayout(PIE_V3, { memorySize: 61 * GIB, aslr: false }),
    (e: unknown) => {
      assert.ok(e instanceof LayoutError);
      assert.match(e.message, /in the uhyve interface v3 range 0x100000000-0x1000000000;/);
      return true;
    },
  );
});
