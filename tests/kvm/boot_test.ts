/**
 * Boots our own C test guests (`tests/guests/`) under real KVM through
 * {@linkcode runVm}: output streams, exit codes, argv/env for both interface
 * versions, placement with and without ASLR, the legacy mapping, and the
 * guests that break the rules. Needs /dev/kvm, `--allow-ffi`, `--allow-read`,
 * `--allow-write` (the guest build cache) and `--allow-run` (gcc).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import {
  GUEST_ADDRESS_ALIGN,
  INTERFACE_RANGES,
  PIE_KERNEL_OFFSET,
} from "../../src/loader/layout.ts";
import { UsageError } from "../../src/params.ts";
import { runVm } from "../../src/vm.ts";
import {
  buildGuest,
  FIXED_LINK_ADDRESS,
  guestVariantName,
  guestVariants,
} from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { type GuestRun, runGuest } from "../_helpers/run_guest.ts";

const MIB = 1024 * 1024;

/** Asserts a clean guest exit with `code`, showing the guest's output on failure. */
function assertExited(run: GuestRun, code: number): void {
  const context = `error: ${run.result.error}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
  assert.equal(run.result.error, null, context);
  assert.equal(run.result.guestExitCode, code, context);
  assert.equal(run.result.exitCode, code & 0xff, context);
}

kvmTest("runVm() runs hello: four lines, fd 2 on stderr, the rest on stdout, exit 0", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("hello", variant);
      assertExited(run, 0);
      const iface = `v${variant.iface}`;
      const link = variant.pie ? "pie" : "fixed";
      assert.equal(
        run.stdout,
        `Hello from dhyve guest (${iface}, ${link})!\nhello via fd 1\nhello via serial byte\n`,
      );
      assert.equal(run.stderr, "hello via fd 2\n");
      assert.equal(run.result.errorDetail, null);
      assert.equal(run.result.kernel.interfaceVersion, variant.iface);
      assert.equal(run.result.kernel.kind, variant.pie ? "pie" : "fixed");
    });
  }
});

kvmTest("runVm() passes the guest's exit code through: 7 → 7", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      assertExited(await runGuest("exit_code", variant, { args: ["7"] }), 7);
    });
  }
});

kvmTest("runVm() maps guest exit code -1 to process status 255", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("exit_code", variant, { args: ["-1"] });
      assert.equal(run.result.error, null);
      assert.equal(run.result.guestExitCode, -1);
      assert.equal(run.result.exitCode, 255);
    });
  }
});

kvmTest("runVm() keeps the low 8 bits of a large exit code and the whole guest code", async () => {
  const run = await runGuest("exit_code", { iface: 1, pie: true }, { args: ["300"] });
  assert.equal(run.result.guestExitCode, 300);
  assert.equal(run.result.exitCode, 44);
  assertExited(await runGuest("exit_code", { iface: 2, pie: true }), 42); // no argument
});

kvmTest("runVm() gives v1 guests argv[0] = kernel path, then the args and the env", async (t) => {
  for (const variant of guestVariants().filter((v) => v.iface === 1)) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("args", variant, {
        args: ["a1", "bb", "--", "-x"],
        env: [["A", "b"], ["PATH", "/bin:/usr/bin"], ["EMPTY", ""]],
      });
      assertExited(run, 0);
      assert.equal(
        run.stdout,
        [
          "argc=5",
          `argv[0]=${run.kernel}`,
          "argv[1]=a1",
          "argv[2]=bb",
          "argv[3]=--", // v1 passes arguments verbatim
          "argv[4]=-x",
          "envc=3",
          "env[0]=A=b",
          "env[1]=PATH=/bin:/usr/bin",
          "env[2]=EMPTY=",
          "kargc=0",
          "",
        ].join("\n"),
      );
    });
  }
});

kvmTest("runVm() gives v2 guests app args, kernel args and env through the bootargs", async (t) => {
  for (const variant of guestVariants().filter((v) => v.iface === 2)) {
    await t.step(`${guestVariantName(variant)}: no --`, async () => {
      const run = await runGuest("args", variant, {
        args: ["a1", "bb"],
        env: [["A", "b"], ["GREETING", "hello world"]],
      });
      assertExited(run, 0);
      assert.equal(
        run.stdout,
        [
          "argc=3",
          "argv[0]=guest",
          "argv[1]=a1",
          "argv[2]=bb",
          "envc=2",
          "env[0]=A=b",
          "env[1]=GREETING=hello world", // quoted in the bootargs, one word in the guest
          "kargc=0",
          "",
        ].join("\n"),
      );
    });
    await t.step(`${guestVariantName(variant)}: kernel args -- app args`, async () => {
      const run = await runGuest("args", variant, {
        args: ["-freq", "100", "--", "x", "--", "y"],
        env: [["K", "v"]],
      });
      assertExited(run, 0);
      assert.equal(
        run.stdout,
        [
          "argc=4",
          "argv[0]=guest",
          "argv[1]=x",
          "argv[2]=--",
          "argv[3]=y",
          "envc=1",
          "env[0]=K=v",
          "kargc=2",
          "kargv[0]=-freq",
          "kargv[1]=100",
          "",
        ].join("\n"),
      );
    });
  }
});

kvmTest("runVm() runs noop to exit 0 with no output", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("noop", variant);
      assertExited(run, 0);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr, "");
    });
  }
});

kvmTest(
  "runVm() with ASLR places a PIE guest at the 2 MiB-aligned address random() picks",
  async (t) => {
    for (const variant of guestVariants().filter((v) => v.pie)) {
      await t.step(guestVariantName(variant), async () => {
        const memorySize = 64 * MIB;
        const run = await runGuest("hello", variant, { memorySize, random: () => 0.5 });
        assertExited(run, 0);
        const { lo, hi } = INTERFACE_RANGES[variant.iface];
        const ub = hi - (run.result.kernel.memSize + memorySize + PIE_KERNEL_OFFSET);
        const pick = lo + Math.floor(0.5 * (ub - lo + 1));
        const expected = pick - (pick % GUEST_ADDRESS_ALIGN);
        const { guestAddress, kernelAddress, aslrIgnored } = run.result.layout;
        assert.equal(guestAddress, expected);
        assert.equal(guestAddress % (2 * MIB), 0);
        assert.ok(guestAddress > lo, "the random base is not the lowest address");
        assert.equal(kernelAddress, guestAddress + 0x40000);
        assert.equal(aslrIgnored, false);
        assert.match(run.stdout, /^Hello from dhyve guest/);
      });
    }
  },
);

kvmTest("runVm() with ASLR on survives random() = 0 and a value just below 1", async (t) => {
  for (const variant of guestVariants().filter((v) => v.pie)) {
    for (const value of [0, 0.999999]) {
      await t.step(`${guestVariantName(variant)}: random() = ${value}`, async () => {
        const run = await runGuest("noop", variant, { random: () => value });
        assertExited(run, 0);
        assert.equal(run.result.layout.guestAddress % (2 * MIB), 0);
      });
    }
  }
});

kvmTest("runVm() with aslr: false places PIE guests at the lowest address", async (t) => {
  const lowest = { 1: 0, 2: 0x1_0000_0000, 3: 0x1_0000_0000 } as const;
  for (const variant of guestVariants().filter((v) => v.pie)) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("hello", variant, { aslr: false, random: () => 0.5 });
      assertExited(run, 0);
      assert.equal(run.result.layout.guestAddress, lowest[variant.iface]);
      assert.equal(run.result.layout.kernelAddress, lowest[variant.iface] + 0x40000);
    });
  }
});

kvmTest("runVm() loads fixed-address guests at their link address, ignoring ASLR", async (t) => {
  for (const variant of guestVariants().filter((v) => !v.pie)) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("noop", variant, { random: () => 0.5 });
      assertExited(run, 0);
      assert.equal(run.result.layout.guestAddress, INTERFACE_RANGES[variant.iface].lo);
      assert.equal(run.result.layout.kernelAddress, FIXED_LINK_ADDRESS[variant.iface]);
      assert.equal(run.result.layout.aslrIgnored, true);
    });
  }
});

kvmTest("runVm() runs guests without a GNU version note on the legacy 1 GiB mapping", async (t) => {
  for (const base of guestVariants()) {
    const variant = { ...base, versionNote: false };
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("hello", variant);
      assertExited(run, 0);
      assert.equal(run.result.kernel.legacyMapping, true);
      assert.equal(run.stderr, "hello via fd 2\n");
    });
  }
});

kvmTest("runVm() stops a guest that writes to an unknown port with GUEST_PROTOCOL", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("bad_port", variant);
      assert.equal(run.result.exitCode, EXIT_CODE.GUEST_PROTOCOL);
      assert.equal(run.result.guestExitCode, null);
      const error = run.result.error ?? "";
      assert.ok(error.includes("0x1234"), `error: ${error}`);
      assert.ok(!error.includes("\n"), "one line");
      assert.ok(!run.stdout.includes("continued"));
    });
  }
});

kvmTest("runVm() reports a triple fault as GUEST_TRIPLE_FAULT", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("triple", variant);
      assert.equal(run.result.exitCode, EXIT_CODE.GUEST_TRIPLE_FAULT, `${run.result.error}`);
      assert.equal(run.result.guestExitCode, null);
      assert.match(run.result.error ?? "", /triple.fault/i);
      assert.equal(run.stdout, "triple: faulting\n");
      assert.ok(run.result.errorDetail?.includes("rip="), "a register dump for -v");
    });
  }
});

kvmTest("runVm() runs with the minimum of 16 MiB guest memory", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runGuest("hello", variant, { memorySize: 16 * MIB });
      assertExited(run, 0);
      assert.match(run.stdout, /hello via serial byte\n$/);
    });
  }
});

kvmTest("runVm() rejects 15 MiB of guest memory with a UsageError before booting", async () => {
  const kernel = await buildGuest("noop", { iface: 1, pie: true });
  await assert.rejects(
    runVm(kernel, { memorySize: 15 * MIB, stdout: new CaptureSink() }),
    (e: unknown) => e instanceof UsageError && e.message.includes("at least 16 MiB"),
  );
});

kvmTest("runVm() reports its timings and counts the hypercalls of hello", async () => {
  const run = await runGuest("hello", { iface: 2, pie: true });
  assertExited(run, 0);
  const [stats] = run.result.stats;
  assert.ok(stats !== undefined);
  assert.equal(stats.hypercalls[0x1020], "hello via serial byte\n".length); // SerialWriteByte
  assert.equal(stats.hypercalls[0x1100], 2); // FileWrite fd 1 and fd 2
  assert.equal(stats.hypercalls[0x1010], 1); // Exit
  assert.ok(run.result.bootMs > 0 && run.result.runMs >= 0);
});
