/**
 * Unit tests of `placeInitrd()`: where `--hermit-image-mode internal` puts the
 * image in guest RAM (the next 4 KiB page after the kernel, as uhyve 0.9.1)
 * and the clear error when it does not fit. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { LayoutError } from "../../../src/loader/errors.ts";
import { INITRD_ALIGN, placeInitrd } from "../../../src/loader/layout.ts";

const MIB = 0x10_0000;

Deno.test("placeInitrd() starts at the first page boundary at or after the kernel's end", () => {
  const guestAddress = 0x1_0000_0000;
  assert.deepEqual(placeInitrd({ guestAddress, kernelEnd: guestAddress + 0x9c600 }, 64 * MIB, 10), {
    start: guestAddress + 0x9d000,
    end: guestAddress + 0x9d00a,
  });
  assert.deepEqual(placeInitrd({ guestAddress, kernelEnd: guestAddress + 0x9d000 }, 64 * MIB, 1), {
    start: guestAddress + 0x9d000,
    end: guestAddress + 0x9d001,
  });
});

Deno.test("placeInitrd() keeps the image's whole pages inside RAM, for any sizes", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0x7f }).map((n) => n * 0x20_0000),
      fc.integer({ min: 0x40000, max: 32 * MIB }),
      fc.integer({ min: 1, max: 40 * MIB }),
      (guestAddress, kernelOffset, length) => {
        const memorySize = 64 * MIB;
        const kernelEnd = guestAddress + kernelOffset;
        let placed: { start: number; end: number };
        try {
          placed = placeInitrd({ guestAddress, kernelEnd }, memorySize, length);
        } catch (error) {
          assert.ok(error instanceof LayoutError);
          const pagesEnd = Math.ceil(
            (Math.ceil(kernelEnd / INITRD_ALIGN) * INITRD_ALIGN + length) /
              INITRD_ALIGN,
          ) * INITRD_ALIGN;
          assert.ok(pagesEnd > guestAddress + memorySize, "refused only when it does not fit");
          return;
        }
        assert.equal(placed.start % INITRD_ALIGN, 0);
        assert.ok(placed.start >= kernelEnd && placed.start - kernelEnd < INITRD_ALIGN);
        assert.equal(placed.end - placed.start, length);
        const pagesEnd = Math.ceil(placed.end / INITRD_ALIGN) * INITRD_ALIGN;
        assert.ok(pagesEnd <= guestAddress + memorySize);
      },
    ),
  );
});

Deno.test("placeInitrd() refuses an image that does not fit, naming the -m that would do", () => {
  assert.throws(
    () => placeInitrd({ guestAddress: 0, kernelEnd: 0x20_0000 }, 16 * MIB, 15 * MIB),
    (e: unknown) => {
      assert.ok(e instanceof LayoutError);
      assert.equal(
        e.message,
        "The Hermit image (15 MiB) does not fit in 16 MiB of guest memory after the kernel " +
          "with --hermit-image-mode internal; use -m 18MiB or more, or --hermit-image-mode external",
      );
      return true;
    },
  );
  assert.throws(
    () => placeInitrd({ guestAddress: 0, kernelEnd: 0x1000 }, 16 * MIB, 0),
    LayoutError,
  );
});
