/**
 * The container's limits → guest size (`src/oci/resources.ts`).
 * @module
 */

import assert from "node:assert/strict";
import { OciError } from "../../../src/oci/errors.ts";
import { cpuLimit, cpusetSize, dhyveReserve, guestMemory } from "../../../src/oci/resources.ts";

const MIB = 1024 * 1024;

Deno.test("cpusetSize() counts a cpuset list and refuses nonsense", () => {
  assert.equal(cpusetSize("0-1,3"), 3);
  assert.equal(cpusetSize("5"), 1);
  assert.equal(cpusetSize("0-3, 8-9"), 6);
  assert.equal(cpusetSize("3-1"), null);
  assert.equal(cpusetSize("a"), null);
});

Deno.test("cpuLimit(): ⌈quota/period⌉, the cpuset size, the smaller of the two", () => {
  assert.equal(cpuLimit(undefined), null);
  assert.equal(cpuLimit({ cpu: { quota: 200_000, period: 100_000 } }), 2);
  assert.equal(cpuLimit({ cpu: { quota: 150_000, period: 100_000 } }), 2);
  assert.equal(cpuLimit({ cpu: { quota: 10_000, period: 100_000 } }), 1);
  assert.equal(cpuLimit({ cpu: { quota: -1, period: 100_000 } }), null);
  assert.equal(cpuLimit({ cpu: { cpus: "0-3" } }), 4);
  assert.equal(cpuLimit({ cpu: { quota: 400_000, period: 100_000, cpus: "0-1" } }), 2);
  assert.throws(() => cpuLimit({ cpu: { cpus: "x" } }), OciError);
});

Deno.test("dhyveReserve() grows with the vCPU Workers", () => {
  assert.equal(dhyveReserve(1), 64 * MIB);
  assert.equal(dhyveReserve(2), 112 * MIB);
  assert.equal(dhyveReserve(4), 144 * MIB);
});

Deno.test("guestMemory(): the limit less the reserve, rounded down to 2 MiB", () => {
  assert.equal(guestMemory(undefined, 1, undefined), null);
  assert.equal(guestMemory(undefined, 1, 32 * MIB), 32 * MIB);
  assert.equal(guestMemory(256 * MIB, 1, undefined), 192 * MIB);
  assert.equal(guestMemory(256 * MIB + 3 * MIB, 1, undefined), 194 * MIB);
  assert.equal(guestMemory(512 * MIB, 2, undefined), 400 * MIB);
  assert.equal(guestMemory(256 * MIB, 1, 100 * MIB), 100 * MIB);
  assert.equal(guestMemory(0, 1, undefined), null, "0: no limit");
});

Deno.test("guestMemory() refuses a limit that leaves under 16 MiB, or a wish that does not fit", () => {
  assert.throws(
    () => guestMemory(64 * MIB, 1, undefined),
    (e: unknown) =>
      e instanceof OciError && e.exitCode === 64 && /too small.*at least 80 MiB/.test(e.message),
  );
  assert.equal(guestMemory(80 * MIB, 1, undefined), 16 * MIB);
  assert.throws(
    () => guestMemory(256 * MIB, 1, 200 * MIB),
    (e: unknown) => e instanceof OciError && /at most 192 MiB/.test(e.message),
  );
});
