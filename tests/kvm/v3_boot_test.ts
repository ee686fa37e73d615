/**
 * Boots our own C guests with a `UHYVEIF` note of 3 (uhyve 0.9.1 kernels)
 * under real KVM, PIE and fixed-address: they get the v2 boot state (RAM from
 * 4 GiB, serial port base 0x1030; the guest runtime checks both before `main`),
 * print, and exit with their code. An unknown note (0, 4) is one line and
 * exit 65. Needs /dev/kvm, `--allow-ffi`, `--allow-read`, `--allow-write`
 * (the guest build cache) and `--allow-run` (gcc, deno).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { GUEST_ADDRESS_ALIGN, INTERFACE_RANGES } from "../../src/loader/layout.ts";
import {
  buildGuest,
  FIXED_LINK_ADDRESS,
  guestVariantName,
  v3GuestVariants,
} from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { lines as nonEmptyLines, runDhyve as dhyve } from "../_helpers/cli.ts";
import { runGuest } from "../_helpers/run_guest.ts";

const GIB = 1024 * 1024 * 1024;

kvmTest("a v3 guest boots with the v2 boot state, prints on every path and exits 0", async (t) => {
  for (const variant of v3GuestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("hello", variant, { aslr: false });
      const context = `error: ${run.result.error}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
      assert.equal(run.result.error, null, context);
      assert.equal(run.result.exitCode, 0, context);
      const link = variant.pie ? "pie" : "fixed";
      assert.equal(
        run.stdout,
        `Hello from dhyve guest (v3, ${link})!\nhello via fd 1\nhello via serial byte\n`,
      );
      assert.equal(run.stderr, "hello via fd 2\n");
      assert.equal(run.result.kernel.interfaceVersion, 3);
      assert.equal(run.result.kernel.kind, variant.pie ? "pie" : "fixed");
      assert.equal(run.result.layout.guestAddress, 4 * GIB, "RAM starts at the v2 range's 4 GiB");
      const kernelAddress = variant.pie ? 4 * GIB + 0x40000 : FIXED_LINK_ADDRESS[3];
      assert.equal(run.result.layout.kernelAddress, kernelAddress);
    });
  }
});

kvmTest("a v3 guest's exit code is dhyve's: 7 → 7, -1 → 255", async (t) => {
  for (const variant of v3GuestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const seven = await runGuest("exit_code", variant, { args: ["7"] });
      assert.equal(seven.result.error, null, seven.stdout);
      assert.equal(seven.result.guestExitCode, 7, seven.stdout);
      assert.equal(seven.result.exitCode, 7);
      const minus = await runGuest("exit_code", variant, { args: ["-1"] });
      assert.equal(minus.result.guestExitCode, -1, minus.stdout);
      assert.equal(minus.result.exitCode, 255);
    });
  }
});

kvmTest("a v3 PIE guest with ASLR lands anywhere in the v2 range, 2 MiB aligned", async () => {
  const { lo, hi } = INTERFACE_RANGES[3];
  const seen = new Set<number>();
  for (const r of [0, 0.37, 0.999]) {
    const run = await runGuest("hello", { iface: 3, pie: true }, {
      aslr: true,
      random: () => r,
    });
    assert.equal(run.result.exitCode, 0, run.stdout);
    const g = run.result.layout.guestAddress;
    assert.ok(g >= lo && g + 64 * 1024 * 1024 <= hi, `0x${g.toString(16)} in the v2 range`);
    assert.equal(g % GUEST_ADDRESS_ALIGN, 0);
    seen.add(g);
  }
  assert.equal(seen.size, 3, "three different placements");
});

kvmTest(
  "dhyve runs a v3 kernel from the command line: output on stdout, its exit code",
  async () => {
    const kernel = await buildGuest("exit_code", { iface: 3, pie: false });
    const run = await dhyve([kernel, "--", "5"]);
    assert.equal(run.code, 5, run.stderr);
    assert.equal(run.stdout, "");
    const hello = await dhyve([await buildGuest("hello", { iface: 3, pie: true })]);
    assert.equal(hello.code, 0, hello.stderr);
    assert.match(hello.stdout, /^Hello from dhyve guest \(v3, pie\)!\n/);
  },
);

kvmTest("dhyve stops a kernel with an unknown UHYVEIF version: one line, exit 65", async (t) => {
  for (const note of [0, 4, 0xffff_ffff]) {
    await t.step(`UHYVEIF ${note}`, async () => {
      const kernel = await buildGuest("hello", { iface: 2, pie: true, uhyveIfNote: note });
      const run = await dhyve([kernel]);
      const context = `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
      assert.equal(run.code, EXIT_CODE.BAD_KERNEL, context);
      assert.equal(run.stdout, "", context);
      const lines = nonEmptyLines(run.stderr);
      assert.equal(lines.length, 1, context);
      assert.match(
        lines[0]!,
        new RegExp(
          `^dhyve: error: .*Unsupported uhyve interface version ${note}: dhyve supports 1, 2 and 3$`,
        ),
      );
    });
  }
});
