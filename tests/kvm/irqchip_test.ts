/**
 * Where a VM's interrupt controllers live (`src/machine/irqchip.ts`): split
 * (KVM's LAPICs, dhyve's IOAPIC, no PIC) for a plain run, KVM's own with
 * `--pit` or `--net`. A guest that programs the IOAPIC as Hermit does must
 * see the same registers from dhyve's model as from KVM's, and the early VM
 * of the command line is made in the mode its options ask for (or replaced).
 * Needs /dev/kvm.
 * @module
 */

import assert from "node:assert/strict";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { argvIrqchipNeeds } from "../../src/machine/irqchip.ts";
import { openVmEarly, takeEarlyVm } from "../../src/machine/early_vm.ts";
import type { VmParams } from "../../src/params.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { describeRun, runDhyve } from "../_helpers/cli.ts";

const V2 = { iface: 2, pie: true } as const;

/** The ioapic guest's two lines and its MMIO exits. */
async function probe(
  params: VmParams = {},
): Promise<{ ioapic: string; pic: string; mmio: number }> {
  const stdout = new CaptureSink();
  const result = await runVm(await buildGuest("ioapic", V2), {
    stdout,
    stderr: new CaptureSink(),
    timeoutMs: 60_000,
    ...params,
  });
  assert.equal(result.exitCode, 0, `${result.error ?? ""}\n${stdout.text()}`);
  const line = (prefix: string): string =>
    stdout.text().split("\n").find((l) => l.startsWith(prefix)) ?? `(no ${prefix} line)`;
  const stats = result.stats[0]!;
  return { ioapic: line("ioapic:"), pic: line("pic:"), mmio: stats.mmioReads + stats.mmioWrites };
}

Deno.test("irqchip: --net and --pit before the kernel ask for KVM's interrupt controller", () => {
  const cases: [string[], { net: boolean; pit: boolean }][] = [
    [["kernel"], { net: false, pit: false }],
    [["-v", "-m", "64M", "kernel", "x"], { net: false, pit: false }],
    [["--net", "tap0", "kernel"], { net: true, pit: false }],
    [["--net=passt", "kernel"], { net: true, pit: false }],
    [["-n", "tap0", "kernel"], { net: true, pit: false }],
    [["-vn", "tap0", "kernel"], { net: true, pit: false }],
    [["--pit", "kernel"], { net: false, pit: true }],
    [["kernel", "--", "--pit", "-n"], { net: false, pit: false }], // the guest's arguments
  ];
  for (const [argv, needs] of cases) {
    assert.deepEqual(argvIrqchipNeeds(argv), needs, argv.join(" "));
  }
});

kvmTest("irqchip: dhyve's IOAPIC answers a Hermit-style guest exactly as KVM's does", async () => {
  const kernel = await probe({ pit: true }); // KVM's PIC and IOAPIC
  const split = await probe();
  // KVM's own answers, which dhyve's model must repeat: version 0x11 with 24 pins, pins masked
  // at reset, the read-only bits and registers unchanged, all ones from a missing register.
  assert.equal(
    kernel.ioapic,
    "ioapic: version 170011/170011 id 0/5000000 arbitration 0/5000000 pin0 10000:0 " +
      "pin23 10000 pin5 8025:1000000 pin6 26 missing ffffffff past ffffffff select 34 elsewhere 0",
  );
  assert.equal(split.ioapic, kernel.ioapic);
  // KVM answered its own IOAPIC; dhyve's took every access as an MMIO exit.
  assert.equal(kernel.mmio, 0);
  assert.ok(split.mmio >= 30, `${split.mmio} MMIO exits`);
  // And only KVM's has a PIC: its mask reads back; an unclaimed port reads all ones.
  assert.equal(kernel.pic, "pic: mask fb");
  assert.equal(split.pic, "pic: mask ff");
});

kvmTest("irqchip: SMP vCPUs share one IOAPIC of dhyve's", async () => {
  const split = await probe({ cpuCount: 2 });
  assert.match(split.ioapic, /^ioapic: version 170011\/170011 .* pin5 8025:1000000 pin6 26 /);
  assert.ok(split.mmio >= 30);
});

kvmTest("irqchip: the early VM is split for a plain command line, KVM's for --pit or --net", () => {
  for (
    const [argv, mode] of [
      [["kernel"], "split"],
      [["--pit", "kernel"], "kernel"],
      [["--net", "passt", "kernel"], "kernel"],
    ] as const
  ) {
    openVmEarly(argv);
    const early = takeEarlyVm();
    assert.ok(early !== null, argv.join(" "));
    try {
      assert.equal(early.irqchip, mode, argv.join(" "));
    } finally {
      early.vm.close();
      early.kvm.close();
    }
  }
});

kvmTest(
  "irqchip: runVm replaces an early VM of the wrong kind (a config file's --pit)",
  async () => {
    const guest = await buildGuest("ioapic", V2);
    openVmEarly([guest]); // split: the command line named no --pit
    const kernel = await probe({ pit: true });
    assert.equal(takeEarlyVm(), null, "the run took the early VM");
    assert.equal(kernel.pic, "pic: mask fb", "the run has KVM's PIC after all");
  },
);

kvmTest("irqchip: runVm keeps an early VM with KVM's irqchip, which serves any run", async () => {
  const guest = await buildGuest("ioapic", V2);
  openVmEarly(["--pit", guest]); // KVM's own: the command line named --pit
  const run = await probe(); // a run without --pit (a config file said otherwise)
  assert.equal(takeEarlyVm(), null, "the run took the early VM");
  assert.equal(run.pic, "pic: mask fb", "the early VM's PIC, not a new split VM");
  assert.equal(run.mmio, 0, "KVM answered the IOAPIC");
});

kvmTest("irqchip: the command line runs the guest in either mode", async () => {
  const guest = await buildGuest("ioapic", V2);
  const plain = await runDhyve([guest]);
  const pit = await runDhyve(["--pit", guest]);
  assert.equal(plain.code, 0, describeRun(plain));
  assert.equal(pit.code, 0, describeRun(pit));
  assert.match(plain.stdout, /^pic: mask ff$/m);
  assert.match(pit.stdout, /^pic: mask fb$/m);
  const ioapicLine = (out: string): string | undefined =>
    out.split("\n").find((l) => l.startsWith("ioapic:"));
  assert.equal(ioapicLine(plain.stdout), ioapicLine(pit.stdout));
});
