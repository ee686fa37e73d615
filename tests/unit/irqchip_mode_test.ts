/**
 * `createIrqchip` (`src/machine/irqchip.ts`): a KVM that advertises the
 * split interrupt controller but refuses it gets its own instead, and the
 * caller learns which it got. (Real KVM in `tests/kvm/irqchip_test.ts`.)
 * @module
 */

import assert from "node:assert/strict";
import { createIrqchip } from "../../src/machine/irqchip.ts";

function fakeVm(splitWorks: boolean): { calls: string[]; vm: Parameters<typeof createIrqchip>[0] } {
  const calls: string[] = [];
  return {
    calls,
    vm: {
      createIrqchip: () => void calls.push("KVM_CREATE_IRQCHIP"),
      enableSplitIrqchip: (pins: number) => {
        calls.push(`KVM_CAP_SPLIT_IRQCHIP ${pins}`);
        if (!splitWorks) throw new Error("EINVAL");
      },
    },
  };
}

Deno.test("createIrqchip: split when KVM takes it, KVM's own when it refuses or when asked", () => {
  const ok = fakeVm(true);
  assert.equal(createIrqchip(ok.vm, "split"), "split");
  assert.deepEqual(ok.calls, ["KVM_CAP_SPLIT_IRQCHIP 24"]);
  const refused = fakeVm(false);
  assert.equal(createIrqchip(refused.vm, "split"), "kernel");
  assert.deepEqual(refused.calls, ["KVM_CAP_SPLIT_IRQCHIP 24", "KVM_CREATE_IRQCHIP"]);
  const kernel = fakeVm(true);
  assert.equal(createIrqchip(kernel.vm, "kernel"), "kernel");
  assert.deepEqual(kernel.calls, ["KVM_CREATE_IRQCHIP"]);
});
