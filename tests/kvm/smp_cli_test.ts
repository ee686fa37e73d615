/**
 * `-c/--cpu-count` and `-a/--affinity` on the command line (`main.ts` as a
 * subprocess, run the way a user runs it): bad counts and lists end with one
 * error line and exit 64; multi-vCPU runs end promptly when an application
 * processor exits while the boot CPU spins, at a fault and at --timeout; -a
 * pins each vCPU thread; vCPU Workers that write straight to the process's
 * stdout never mix their lines. Needs /dev/kvm,
 * `--allow-run` (deno, gcc), `--allow-read` and `--allow-write` (the guest
 * build cache).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { type CliRun, runDhyve, spawnDhyve } from "../_helpers/cli.ts";

const PAYLOAD = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
const decoder = new TextDecoder();

/** Runs `deno run --allow-ffi --allow-read --allow-env main.ts <args>` from the repository root. */
function dhyve(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runDhyve(args, { perms: ["--allow-ffi", "--allow-read", "--allow-env"], env });
}

function context(run: CliRun): string {
  return `exit ${run.code} after ${run.ms.toFixed(0)} ms\nstdout:\n${run.stdout}\n` +
    `stderr:\n${run.stderr}`;
}

/** Asserts exit 64 and exactly one `dhyve: error:` line matching `pattern`, nothing on stdout. */
function assertUsageError(run: CliRun, pattern: RegExp): void {
  assert.equal(run.code, EXIT_CODE.USAGE, context(run));
  const lines = run.stderr.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, context(run));
  assert.match(lines[0]!, /^dhyve: error: /);
  assert.match(lines[0]!, pattern);
  assert.equal(run.stdout, "", context(run));
}

kvmTest(
  "dhyve -c with 0, a word, an absurd or a fractional count: exit 64, one line",
  async (t) => {
    const kernel = await buildGuest("smp_count", { iface: 1, pie: true });
    const cases: [string, string[], RegExp][] = [
      ["-c 0", ["-c", "0"], /vCPU count 0\b.*1 to 256/],
      ["-c abc", ["-c", "abc"], /vCPU count "abc"/],
      ["-c 100000", ["-c", "100000"], /vCPU count 100000\b/],
      ["-c 1.5", ["-c", "1.5"], /vCPU count "1.5"/],
      ["--cpu-count=0", ["--cpu-count=0"], /vCPU count 0\b/],
    ];
    for (const [name, args, pattern] of cases) {
      await t.step(name, async () => assertUsageError(await dhyve([...args, kernel]), pattern));
    }
    await t.step("HERMIT_CPU_COUNT=0", async () => {
      assertUsageError(await dhyve([kernel], { HERMIT_CPU_COUNT: "0" }), /vCPU count 0\b/);
    });
  },
);

kvmTest("dhyve -a with a list that does not fit -c or the host: exit 64, one line", async (t) => {
  const kernel = await buildGuest("smp_count", { iface: 1, pie: true });
  const absent = navigator.hardwareConcurrency;
  const cases: [string, string[], RegExp][] = [
    ["-c 2 -a 0", ["-c", "2", "-a", "0"], /1 core.*2 vCPU|one .*per vCPU/],
    ["-c 1 -a 0,1", ["-c", "1", "-a", "0,1"], /one .*per vCPU/],
    [`-c 2 -a 0,${absent}`, ["-c", "2", "-a", `0,${absent}`], new RegExp(`\\b${absent}\\b`)],
    ["-c 2 -a 1,1", ["-c", "2", "-a", "1,1"], /twice/],
  ];
  for (const [name, args, pattern] of cases) {
    await t.step(name, async () => assertUsageError(await dhyve([...args, kernel]), pattern));
  }
});

kvmTest("dhyve -c 2 -a 0,1 and -c 4 (oversubscribed) bring every CPU online", async () => {
  const kernel = await buildGuest("smp_count", { iface: 2, pie: true });
  const pinned = await dhyve(["-c", "2", "-a", "0,1", kernel]);
  assert.equal(pinned.code, 0, context(pinned));
  assert.equal(pinned.stdout, "all 2 cpus online\n");
  const four = await dhyve(["--cpu-count", "4", kernel]);
  assert.equal(four.code, 0, context(four));
  assert.equal(four.stdout, "all 4 cpus online\n");
});

kvmTest("dhyve -c 2 smp_exit: the AP's exit code, and the process ends within 5 s", async () => {
  for (const variant of [{ iface: 1, pie: true }, { iface: 2, pie: false }] as const) {
    const kernel = await buildGuest("smp_exit", variant);
    const run = await dhyve(["-c", "2", kernel]);
    assert.equal(run.code, 7, context(run));
    assert.equal(run.stdout, "smp_exit: cpu 1 exits with 7\n");
    assert.equal(run.stderr, "");
    assert.ok(run.ms < 5000, `the whole process took ${run.ms.toFixed(0)} ms`);
  }
});

kvmTest("dhyve -c 2 smp_exit fault: one clear error line, exit 82, within 5 s", async () => {
  const kernel = await buildGuest("smp_exit", { iface: 1, pie: true });
  const run = await dhyve(["-c", "2", kernel, "fault"]);
  assert.equal(run.code, EXIT_CODE.GUEST_PROTOCOL, context(run));
  assert.equal(run.stdout, "smp_exit: cpu 1 faults\n");
  assert.match(run.stderr, /^dhyve: error: .*0x1234/m);
  assert.ok(run.ms < 5000, `the whole process took ${run.ms.toFixed(0)} ms`);
});

kvmTest(
  "dhyve -c 2 smp_serial: lines written straight to stdout by 2 Workers stay whole",
  async (t) => {
    for (const mode of ["buffer", "byte"]) {
      await t.step(mode, async () => {
        const kernel = await buildGuest("smp_serial", { iface: 1, pie: true });
        const run = await dhyve(["-c", "2", kernel, mode, "40"]);
        assert.equal(run.code, 0, context(run));
        const expected: string[] = [];
        for (let cpu = 0; cpu < 2; cpu++) {
          for (let i = 0; i < 40; i++) expected.push(`cpu ${cpu} line ${i}: ${PAYLOAD}`);
        }
        const got = run.stdout.split("\n");
        assert.equal(got.pop(), "", "the output ends with a newline");
        const valid = new Set(expected);
        for (const line of got) {
          assert.ok(valid.has(line), `a broken line: ${JSON.stringify(line)}`);
        }
        assert.deepEqual(got.toSorted(), expected.toSorted(), "every line exactly once");
      });
    }
  },
);

kvmTest(
  "dhyve -c 2 --timeout 1s spin: exit 85 with one error line, soon after the limit",
  async () => {
    const kernel = await buildGuest("spin", { iface: 2, pie: true });
    const run = await dhyve(["-c", "2", "--timeout", "1s", kernel]);
    assert.equal(run.code, EXIT_CODE.TIMEOUT, context(run));
    assert.equal(run.stdout, "spin: spinning\n");
    assert.match(run.stderr, /^dhyve: error: .*time limit/m);
    assert.ok(run.ms < 5000, `the whole process took ${run.ms.toFixed(0)} ms`);
  },
);

/**
 * Cpus_allowed_list of every thread of process `pid`, except the kernel's own
 * KVM helper threads (kvm-nx-lpage-recovery inherits its creator's mask).
 * Deno reads /proc/<pid> only with --allow-all, so a shell reads it.
 */
async function threadAffinities(pid: number): Promise<string[]> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/task/*/status 2>/dev/null`],
    stdout: "piped",
    stderr: "null",
  }).output();
  return decoder.decode(out.stdout).split(/^(?=Name:)/m)
    .filter((status) => !/^Name:\s*kvm-/.test(status))
    .flatMap((status) => /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1] ?? []);
}

kvmTest("dhyve -c 2 -a 1,0: each vCPU thread may run on its one host core only", async () => {
  const kernel = await buildGuest("spin", { iface: 1, pie: true });
  const child = spawnDhyve(["-c", "2", "-a", "1,0", kernel]);
  const output = child.output();
  const watchdog = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    // Poll until both vCPU threads have pinned themselves: one thread on core 0 only,
    // one on core 1 only; every other thread floats.
    let threads: string[] = [];
    for (let i = 0; i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      threads = await threadAffinities(child.pid);
      if (threads.includes("0") && threads.includes("1")) break;
    }
    child.kill("SIGTERM");
    const result = await output;
    assert.equal(result.code, EXIT_CODE.SIGTERM, decoder.decode(result.stderr));
    assert.equal(threads.filter((l) => l === "0").length, 1, `threads: ${threads.join(" ")}`);
    assert.equal(threads.filter((l) => l === "1").length, 1, `threads: ${threads.join(" ")}`);
    const single = threads.filter((l) => /^\d+$/.test(l));
    assert.equal(single.length, 2, `only the vCPU threads are pinned: ${threads.join(" ")}`);
  } finally {
    clearTimeout(watchdog);
  }
}, { skip: navigator.hardwareConcurrency < 2 ? "needs 2 host cores" : null });
