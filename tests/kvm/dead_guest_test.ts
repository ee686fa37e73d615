/**
 * A guest that halts with interrupts disabled (`cli; hlt`, as Hermit 0.6.9
 * does after its own #GP) can never run again: the supervisor notices and
 * ends the run with exit 86 and one line naming the vCPU and the guest's last
 * output, instead of hanging until --timeout or a signal. With one vCPU on
 * the main thread and with two in Workers; a guest that merely waits (the
 * time limit ends it) is not taken for dead.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest, guestVariantName } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const MESSAGE =
  /^vCPU 0 halted with interrupts disabled at RIP 0x[0-9a-f]+.* nothing can wake it: the guest is dead \(its last output: "halt_cli: halting with interrupts off"\)$/;

for (const variant of [{ iface: 1, pie: true }, { iface: 2, pie: false }] as const) {
  for (const cpuCount of [1, 2]) {
    kvmTest(
      `dead guest (${
        guestVariantName(variant)
      }, ${cpuCount} vCPU): cli; hlt ends the run with exit 86`,
      async () => {
        const stdout = new CaptureSink();
        const t0 = performance.now();
        const result = await runVm(await buildGuest("halt_cli", variant), {
          cpuCount,
          stdout,
          stderr: new CaptureSink(),
          timeoutMs: 60_000, // a hang shows as exit 85 here, not as a stuck test
        });
        assert.equal(result.exitCode, EXIT_CODE.GUEST_HALTED, result.error ?? "");
        assert.equal(result.guestExitCode, null);
        assert.match(result.error ?? "", MESSAGE);
        if (cpuCount > 1) assert.match(result.error ?? "", /and 1 more vCPU\(s\) likewise/);
        assert.equal(stdout.text(), "halt_cli: halting with interrupts off\n");
        assert.ok(performance.now() - t0 < 60_000);
      },
    );
  }
}

kvmTest(
  "dead guest: a guest that only spins is not dead (the time limit ends it, 85)",
  async () => {
    const result = await runVm(await buildGuest("spin", { iface: 2, pie: true }), {
      stdout: new CaptureSink(),
      timeoutMs: 1500,
    });
    assert.equal(result.exitCode, EXIT_CODE.TIMEOUT, result.error ?? "");
  },
);
