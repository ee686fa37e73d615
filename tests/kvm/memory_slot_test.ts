/**
 * Guest RAM's memory slot and its end (`src/machine/build.ts`, steps 5 and
 * 9; `VmFd` in `src/kvm/vm.ts`). From 1 GiB of RAM on, a plain run makes the
 * slot on Deno's thread pool while it builds the boot state, and waits for
 * it before the first KVM_RUN; at the end the VM is closed before its RAM is
 * unmapped, so closing the VM a second time must not close another file.
 * What is checked: a guest with 4 GiB runs wherever ASLR puts its kernel;
 * the pool's ioctl resolves when the slot is in place and rejects with
 * KVM's own errno; a second close is a no-op. Needs /dev/kvm.
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { cString, libc } from "../../src/host/libc.ts";
import { CaptureSink, NullSink } from "../../src/io/guest_output.ts";
import { Kvm, KvmError, mapGuestMemory } from "../../src/kvm.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

kvmTest(
  "a guest with 4 GiB of RAM (its slot made on the thread pool) runs wherever ASLR puts it",
  async () => {
    const kernel = await buildGuest("hello", { iface: 2, pie: true });
    const places = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const stdout = new CaptureSink();
      const result = await runVm(kernel, { memorySize: 4 * GiB, stdout, stderr: new NullSink() });
      assert.equal(result.exitCode, 0, result.error ?? "");
      assert.match(stdout.text(), /Hello from dhyve guest \(v2, pie\)!/);
      const { guestAddress, kernelAddress } = result.layout;
      assert.ok(kernelAddress >= guestAddress && kernelAddress < guestAddress + 4 * GiB);
      places.add(kernelAddress);
    }
    // ASLR spreads the kernel over the 4 GiB: three runs, at least two places.
    assert.ok(places.size >= 2, `the kernel went to ${[...places].join(", ")}`);
  },
);

kvmTest(
  "the slot's ioctl on the thread pool resolves when it is in place, or rejects with errno",
  async () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    const mapping = mapGuestMemory(4 * MiB);
    try {
      const region = { slot: 0, guestPhysAddr: 0, size: 4 * MiB, hostAddress: mapping.address };
      await vm.setUserMemoryRegionAsync(region);
      // The slot is there: another slot over the same guest addresses is refused.
      await assert.rejects(
        vm.setUserMemoryRegionAsync({ ...region, slot: 1 }),
        (error: unknown) => error instanceof KvmError && error.errno === ERRNO.EEXIST,
      );
      // A size that is not a whole number of pages.
      await assert.rejects(
        vm.setUserMemoryRegionAsync({ ...region, slot: 2, guestPhysAddr: 8 * MiB, size: 100 }),
        (error: unknown) =>
          error instanceof KvmError && error.errno === ERRNO.EINVAL &&
          /map guest memory at 0x800000/.test(error.message),
      );
    } finally {
      vm.close();
      mapping.unmap();
    }
  },
);

kvmTest(
  "closing a VM twice closes nothing else (the RAM's end closes it before its own disposal)",
  () => {
    using kvm = Kvm.open();
    const vm = kvm.createVm();
    vm.close();
    // The lowest free fd: the VM's number, most likely, now a different file.
    const fd = libc().open(cString("/dev/null"), 0, 0);
    assert.ok(fd >= 0);
    try {
      vm.close();
      vm[Symbol.dispose]();
      assert.equal(libc().fstat(fd, new Uint8Array(144)), 0, "the second close hit another file");
    } finally {
      libc().close(fd);
    }
  },
);
