/**
 * Unit tests of `src/params.ts`: memory sizes as uhyve spells them, the
 * memory and vCPU rules, and `-e KEY=VALUE` entries. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  DEFAULT_MEMORY_SIZE,
  formatSize,
  MAX_MEMORY_SIZE,
  MEMORY_ALIGN,
  MIN_MEMORY_SIZE,
  parseEnvEntry,
  parseMemorySize,
  UsageError,
  validateCpuCount,
  validateMemorySize,
} from "../../src/params.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

Deno.test("parseMemorySize() reads binary units: 64MiB, 1GiB, 4KiB, 1TiB", () => {
  assert.equal(parseMemorySize("64MiB"), 64 * MIB);
  assert.equal(parseMemorySize("1GiB"), GIB);
  assert.equal(parseMemorySize("4KiB"), 4 * KIB);
  assert.equal(parseMemorySize("1TiB"), 1024 * GIB);
});

Deno.test("parseMemorySize() reads a plain byte count: 16777216 and 64B", () => {
  assert.equal(parseMemorySize("16777216"), 16 * MIB);
  assert.equal(parseMemorySize("64B"), 64);
  assert.equal(parseMemorySize("0"), 0);
});

Deno.test("parseMemorySize() takes K/M/G and KB/MB/GB as binary, in any case, with spaces", () => {
  assert.equal(parseMemorySize("512M"), 512 * MIB);
  assert.equal(parseMemorySize("2G"), 2 * GIB);
  assert.equal(parseMemorySize("64MB"), 64 * MIB);
  assert.equal(parseMemorySize("64mib"), 64 * MIB);
  assert.equal(parseMemorySize(" 64 MiB "), 64 * MIB);
  assert.equal(parseMemorySize("8k"), 8 * KIB);
});

Deno.test("parseMemorySize() accepts a fraction that makes whole bytes", () => {
  assert.equal(parseMemorySize("1.5GiB"), 1.5 * GIB);
  assert.equal(parseMemorySize("0.5KiB"), 512);
});

Deno.test("parseMemorySize() rejects text that is not a size with a UsageError", () => {
  for (const text of ["", " ", "abc", "MiB", "-1MiB", "64XiB", "64iB", "64 i", "0x100", "64MiBs"]) {
    assert.throws(
      () => parseMemorySize(text),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`Invalid memory size "${text}"`) &&
        e.message.includes("64MiB"),
      `"${text}"`,
    );
  }
});

Deno.test("parseMemorySize() rejects sizes that are not whole bytes", () => {
  assert.throws(
    () => parseMemorySize("1.5B"),
    (e: unknown) => e instanceof UsageError && /not a whole number of bytes/.test(e.message),
  );
  assert.throws(() => parseMemorySize(`${"9".repeat(30)}TiB`), UsageError);
});

Deno.test("validateMemorySize() accepts 16 MiB up to 60 GiB in 2 MiB steps", () => {
  for (const size of [MIN_MEMORY_SIZE, 18 * MIB, DEFAULT_MEMORY_SIZE, GIB, MAX_MEMORY_SIZE]) {
    assert.equal(validateMemorySize(size), size);
  }
  assert.equal(DEFAULT_MEMORY_SIZE, 64 * MIB);
  assert.equal(MIN_MEMORY_SIZE, 16 * MIB);
  assert.equal(MEMORY_ALIGN, 2 * MIB);
});

Deno.test("validateMemorySize() rejects less than 16 MiB, naming the minimum", () => {
  for (const size of [0, -2 * MIB, 15 * MIB, 14 * MIB, Number.NaN]) {
    assert.throws(
      () => validateMemorySize(size),
      (e: unknown) =>
        e instanceof UsageError && e.message.includes("too small") &&
        e.message.includes("at least 16 MiB"),
      String(size),
    );
  }
  assert.throws(
    () => validateMemorySize(15 * MIB),
    { message: "Guest memory of 15 MiB is too small: use at least 16 MiB (-m 16MiB)" },
  );
});

Deno.test("validateMemorySize() rejects sizes that are not a multiple of 2 MiB, rounding up", () => {
  assert.throws(
    () => validateMemorySize(17 * MIB),
    (e: unknown) =>
      e instanceof UsageError && e.message.includes("not a multiple of 2 MiB") &&
      e.message.includes("use 18 MiB"),
  );
  assert.throws(() => validateMemorySize(64 * MIB + 1), /use 66 MiB/);
  assert.throws(() => validateMemorySize(64 * 1000 * 1000), UsageError);
});

Deno.test("validateMemorySize() rejects more than 60 GiB", () => {
  assert.throws(
    () => validateMemorySize(MAX_MEMORY_SIZE + MEMORY_ALIGN),
    (e: unknown) => e instanceof UsageError && /too large: at most 60 GiB/.test(e.message),
  );
});

Deno.test("formatSize() shows whole GiB and MiB, else bytes", () => {
  assert.equal(formatSize(2 * GIB), "2 GiB");
  assert.equal(formatSize(64 * MIB), "64 MiB");
  assert.equal(formatSize(1536 * MIB), "1536 MiB");
  assert.equal(formatSize(1000), "1000 bytes");
});

Deno.test("parseEnvEntry() splits at the first '=' and keeps empty values", () => {
  assert.deepEqual(parseEnvEntry("A=b"), ["A", "b"]);
  assert.deepEqual(parseEnvEntry("A="), ["A", ""]);
  assert.deepEqual(parseEnvEntry("A=b=c"), ["A", "b=c"]);
  assert.deepEqual(parseEnvEntry("PATH=/bin:/usr/bin"), ["PATH", "/bin:/usr/bin"]);
  assert.deepEqual(parseEnvEntry("K= spaced value "), ["K", " spaced value "]);
});

Deno.test("parseEnvEntry() rejects an entry without '=' or with an empty key", () => {
  for (const text of ["A", "", "=b", "="]) {
    assert.throws(
      () => parseEnvEntry(text),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`Invalid environment entry "${text}"`) &&
        e.message.includes("KEY=VALUE"),
      `"${text}"`,
    );
  }
});

Deno.test("validateCpuCount() accepts 1 to 256", () => {
  for (const n of [1, 2, 8, 256]) assert.equal(validateCpuCount(n), n);
});

Deno.test("validateCpuCount() rejects 0, negatives, fractions, NaN and more than 256", () => {
  for (const n of [0, -1, 1.5, Number.NaN, Infinity, 257, 2 ** 32]) {
    assert.throws(
      () => validateCpuCount(n),
      (e: unknown) => e instanceof UsageError && e.message.includes("from 1 to 256"),
      String(n),
    );
  }
});

Deno.test("UsageError is a TypeError named UsageError", () => {
  const e = new UsageError("x");
  assert.ok(e instanceof TypeError);
  assert.equal(e.name, "UsageError");
});
