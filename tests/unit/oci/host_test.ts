/**
 * The pure helpers of `src/oci/host.ts`.
 * @module
 */

import assert from "node:assert/strict";
import { deviceNumbers, moduleCacheDir } from "../../../src/oci/host.ts";

Deno.test("deviceNumbers() splits a Linux dev_t as major()/minor() do", () => {
  assert.deepEqual(deviceNumbers(0x0ae8), { major: 10, minor: 232 }); // /dev/kvm
  assert.deepEqual(deviceNumbers(0x0103), { major: 1, minor: 3 }); // /dev/null
  // glibc's makedev(0x1234, 0x56789): minor bits above 8 and major bits above 12 move up.
  const dev = 0x89 + (0x234 << 8) + 0x56700 * 2 ** 12 + 0x1000 * 2 ** 32;
  assert.deepEqual(deviceNumbers(dev), { major: 0x1234, minor: 0x56789 });
});

Deno.test("moduleCacheDir() is in the checkout's .build", () => {
  assert.equal(moduleCacheDir("/opt/dhyve"), "/opt/dhyve/.build/oci-deno-dir");
});
