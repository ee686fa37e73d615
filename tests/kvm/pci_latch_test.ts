/**
 * The PCI configuration address a guest latches at port 0xCF8 belongs to
 * the PCI device, not to one call of the run loop: a guest that writes and
 * reads it back 30 000 times on the main thread (which the loop leaves every
 * 50 ms so the event loop can run) always reads what it wrote. Before the
 * device held it, every such pause reset it to 0.
 * @module
 */

import assert from "node:assert/strict";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

kvmTest(
  "PCI: the 0xCF8 latch survives the run loop's pauses (30 000 write/read pairs)",
  async () => {
    const stdout = new CaptureSink();
    const result = await runVm(await buildGuest("pci_latch", { iface: 2, pie: true }), {
      stdout,
      stderr: new CaptureSink(),
      timeoutMs: 120_000,
    });
    assert.equal(stdout.text(), "pci_latch: 30000 pairs, 0 mismatches\n", result.error ?? "");
    assert.equal(result.exitCode, 0);
    const exits = result.stats[0]!.totalExits;
    assert.ok(exits >= 60_000, `${exits} exits: every access reached the host`);
  },
);
