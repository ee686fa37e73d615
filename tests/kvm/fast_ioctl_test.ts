/**
 * KVM_RUN's two ioctls (`src/kvm/vcpu.ts`, `src/host/libc.ts`): a run starts
 * with the cold one (no fast-call trampoline built at start-up) and binds the
 * fast one after `COLD_RUNS` exits, which the start-up trace marks
 * (`fastrun`). Checked through `main.ts`, so that each run is a fresh process.
 * @module
 */

import assert from "node:assert/strict";
import { COLD_RUNS } from "../../src/kvm/vcpu.ts";
import { describeRun, runDhyve, traceMarks } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const V2 = { iface: 2, pie: true } as const;
const perms = ["--allow-ffi", "--allow-read", "--allow-env=DHYVE_TRACE_STARTUP"];
const env = { DHYVE_TRACE_STARTUP: "1" };

kvmTest("KVM_RUN: a short run never binds the fast ioctl, a long one does, once", async () => {
  const loop = await buildGuest("serial_loop", V2);
  // A few exits below the threshold: the cold call serves the whole run.
  const short = await runDhyve([loop, String(COLD_RUNS - 100)], { perms, env });
  assert.equal(short.code, 0, describeRun(short));
  assert.equal(traceMarks(short.stderr).includes("fastrun"), false, short.stderr);
  assert.equal(short.stdout.length, COLD_RUNS - 100, "every byte arrived");

  // Past it: bound once, after the guest started, and the output is still whole.
  const long = await runDhyve([loop, String(COLD_RUNS + 5000)], { perms, env });
  assert.equal(long.code, 0, describeRun(long));
  const marks = traceMarks(long.stderr);
  assert.equal(marks.filter((m) => m === "fastrun").length, 1, marks.join(" "));
  assert.ok(marks.indexOf("fastrun") > marks.indexOf("loop"), marks.join(" "));
  assert.equal(long.stdout.length, COLD_RUNS + 5000, "every byte arrived");
});
