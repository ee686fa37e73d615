/**
 * The VM the command line makes before the rest of dhyve loads
 * (`src/machine/early_vm.ts`): which command lines make one, that `runVm` takes it
 * (and a library call without one still runs), and, through `main.ts` with
 * `DHYVE_TRACE_STARTUP`, that a run makes it before the bundle's other
 * modules load while `--help` and a run without `--allow-ffi` make none.
 * Needs /dev/kvm, `--allow-ffi`, `--allow-read`, `--allow-write` and
 * `--allow-run` (guest builds, subprocesses).
 * @module
 */

import assert from "node:assert/strict";
import { argvWantsVm, openVmEarly, takeEarlyVm } from "../../src/machine/early_vm.ts";
import { runVm } from "../../src/vm.ts";
import { NullSink } from "../../src/io/guest_output.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { describeRun, runDhyve, traceMarks } from "../_helpers/cli.ts";

const V2 = { iface: 2, pie: true } as const;
const quiet = { stdout: new NullSink(), stderr: new NullSink() };

Deno.test("early VM: only a command line that asks for a run makes one", () => {
  const runs: string[][] = [
    ["kernel"],
    ["-v", "kernel"],
    ["-m", "64M", "kernel"],
    ["kernel", "--", "--help", "-h"], // the guest's arguments
    ["-e", "A=1", "--net", "passt", "kernel"],
  ];
  for (const argv of runs) assert.equal(argvWantsVm(argv), true, argv.join(" "));
  const none: string[][] = [
    [],
    ["--help"],
    ["-h", "kernel"],
    ["-vh", "kernel"],
    ["kernel", "-V"],
    ["--version"],
    ["--print-permissions", "kernel"],
    ["-v", "-q"],
  ];
  for (const argv of none) assert.equal(argvWantsVm(argv), false, argv.join(" "));
});

kvmTest("early VM: runVm takes the VM made before it and runs the guest in it", async () => {
  const noop = await buildGuest("noop", V2);
  assert.equal(takeEarlyVm(), null, "nothing is waiting before openVmEarly");
  openVmEarly(["--help"]);
  assert.equal(takeEarlyVm(), null, "--help makes no VM");
  openVmEarly([noop]);
  const result = await runVm(noop, quiet);
  assert.equal(result.exitCode, 0);
  assert.equal(takeEarlyVm(), null, "the run took the early VM (and closed it)");
  // A second run in the same process (a library caller) makes its own VM.
  assert.equal((await runVm(noop, quiet)).exitCode, 0);
});

kvmTest("early VM: handed over once, then closed by its owner", () => {
  openVmEarly(["kernel"]);
  const early = takeEarlyVm();
  assert.ok(early !== null, "a VM was made");
  assert.equal(takeEarlyVm(), null, "handed over once");
  try {
    // It has its irqchip: a second KVM_CREATE_IRQCHIP fails (EEXIST).
    assert.throws(() => early.vm.createIrqchip(), /interrupt controller/);
  } finally {
    early.vm.close();
    early.kvm.close();
  }
});

kvmTest("early VM: main.ts makes it before the rest loads, and only for a run", async () => {
  const noop = await buildGuest("noop", V2);
  const perms = ["--allow-ffi", "--allow-read", "--allow-env=DHYVE_TRACE_STARTUP"];
  const env = { DHYVE_TRACE_STARTUP: "1" };
  const run = await runDhyve([noop], { perms, env });
  assert.equal(run.code, 0, describeRun(run));
  const marks = traceMarks(run.stderr);
  assert.deepEqual(marks.slice(0, 3), ["kvmlayer", "early", "modules"], marks.join(" "));
  assert.ok(marks.indexOf("vm") > marks.indexOf("runvm"), marks.join(" "));

  const help = await runDhyve(["--help"], { perms, env });
  assert.equal(help.code, 0, describeRun(help));
  assert.equal(traceMarks(help.stderr).includes("early"), false, help.stderr);

  // Without --allow-ffi: no VM, no prompt, and the CLI's own message.
  const noFfi = await runDhyve([noop], { perms: perms.slice(1), env });
  assert.equal(noFfi.code, 77, describeRun(noFfi));
  assert.match(noFfi.stderr, /add --allow-ffi/);
  assert.equal(traceMarks(noFfi.stderr).includes("early"), false, noFfi.stderr);
});
