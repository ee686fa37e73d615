/**
 * Runs our SSE test guest (`tests/guests/sse.c`) under real KVM. On hosts
 * whose KVM cannot run SSE (kvm_pvm) dhyve emulates each instruction in
 * userspace (src/emulate/sse.ts via src/vcpu/emulate.ts); elsewhere the CPU
 * runs them. Either way the guest's own checks must pass: arithmetic, moves,
 * comparisons, conversions, MXCSR, #NM under CR0.TS (lazy FPU switching),
 * #GP for a misaligned MOVAPS and a non-canonical address, #PF with CR2 (also
 * from FXSAVE/FXRSTOR/XSAVE/XRSTOR).
 * On kvm_pvm this needs the run loop to call emulateSseInstruction()
 * (src/vcpu/emulate.ts) on emulation failures. Needs /dev/kvm, `--allow-ffi`,
 * `--allow-read`, `--allow-write` (the guest build cache) and `--allow-run` (gcc).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import {
  buildGuest,
  type GuestBuild,
  guestVariantName,
  guestVariants,
} from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

async function runSse(
  variant: GuestBuild,
  args: string[] = [],
): Promise<{ result: VmResult; stdout: string; context: string }> {
  const kernel = await buildGuest("sse", variant);
  const out = new CaptureSink();
  const err = new CaptureSink();
  const result = await runVm(kernel, {
    fileIsolation: "none",
    args,
    stdout: out,
    stderr: err,
  });
  const stdout = out.text();
  return {
    result,
    stdout,
    context: `error: ${result.error}\nstdout:\n${stdout}\nstderr:\n${err.text()}`,
  };
}

const CHECKS = [
  "fp",
  "pcmpeqb/pmovmskb",
  "ucomisd",
  "conversions and MXCSR",
  "moves",
  "#NM",
  "exceptions",
  "fxsave/xsave",
];

/** Emulated instructions of the boot vCPU (0 where the CPU runs SSE itself). */
function emulated(result: VmResult): number {
  return result.stats.reduce((n, s) => n + s.emulated, 0);
}

kvmTest("runVm() runs the SSE guest: every check passes, emulated or not", async (t) => {
  for (const variant of guestVariants()) {
    await t.step(guestVariantName(variant), async () => {
      const run = await runSse(variant);
      assert.equal(run.result.error, null, run.context);
      assert.equal(run.result.exitCode, 0, run.context);
      const lines = run.stdout.split("\n");
      for (const check of CHECKS) {
        assert.ok(lines.includes(`sse: ${check} ok`), `${check}\n${run.context}`);
      }
      assert.ok(lines.includes("sse: all checks passed"), run.context);
    });
  }
});

kvmTest(
  "runVm() stops at an SSE instruction dhyve cannot emulate with one line naming it",
  async () => {
    const variant: GuestBuild = { iface: 2, pie: true };
    const baseline = await runSse(variant);
    const run = await runSse(variant, ["unsupported"]);
    if (emulated(baseline.result) === 0) {
      // This host's CPU runs SSE itself: RSQRTPS just works.
      assert.equal(run.result.exitCode, 0, run.context);
      assert.match(run.stdout, /sse: still running/);
      return;
    }
    assert.equal(run.result.exitCode, EXIT_CODE.GUEST_UNSUPPORTED_INSTRUCTION, run.context);
    assert.match(run.result.error ?? "", /^The guest ran the SSE instruction rsqrtps at RIP 0x/);
    assert.doesNotMatch(run.stdout, /still running/);
  },
);
