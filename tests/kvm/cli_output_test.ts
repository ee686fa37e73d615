/**
 * Output options through subprocess runs of `main.ts`: `-o`,
 * `--stats[=json]`, host diagnostics on stderr only, a closed stdout. Needs
 * /dev/kvm, `--allow-run` (deno, gcc), `--allow-read`, `--allow-write` and
 * `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { assertRan, type CliRun, describeRun, lines, spawnDhyve } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import {
  decoder,
  dhyve,
  HELLO_V1,
  noop,
  PERMS,
  RUN_DEFAULTS,
  statsOf,
  V1,
  V2,
  withTempDir,
} from "../_helpers/cli_options.ts";

// Output: -o, --stats, diagnostics apart from guest output

kvmTest(
  "-o FILE gets all guest output (fds 1 and 2 too); stdout and stderr stay empty",
  async () => {
    const kernel = await buildGuest("hello", V1);
    await withTempDir(async (dir) => {
      const out = `${dir}/guest.txt`;
      const run = await dhyve(["-o", out, kernel], { perms: [...PERMS, `--allow-write=${dir}`] });
      assertRan(run, 0);
      assert.equal(run.stdout, "");
      assert.deepEqual(lines(await Deno.readTextFile(out)).sort(), [...HELLO_V1].sort());
    });
  },
);

kvmTest("-o FILE --stats: the guest output in the file, only the stats on stdout", async () => {
  const kernel = await buildGuest("hello", V1);
  await withTempDir(async (dir) => {
    const out = `${dir}/guest.txt`;
    const run = await dhyve(["-o", out, "--stats", kernel], {
      perms: [...PERMS, `--allow-write=${dir}`],
    });
    assertRan(run, 0);
    assert.match(run.stdout, /^Run statistics:\n/);
    for (const line of HELLO_V1) assert.ok(!run.stdout.includes(line), `"${line}" not on stdout`);
    assert.equal(lines(await Deno.readTextFile(out)).length, HELLO_V1.length);
  });
});

kvmTest("-o none discards the guest output", async () => {
  const kernel = await buildGuest("hello", V2);
  for (const none of ["none", "None"]) {
    const run = await dhyve(["-o", none, kernel]);
    assertRan(run, 0);
    assert.equal(run.stdout, "");
  }
});

kvmTest(
  "host diagnostics go to stderr only, prefixed dhyve:, never into the guest output",
  async () => {
    const kernel = await buildGuest("hello", V1);
    const run = await dhyve(["-vv", kernel]);
    assert.equal(run.code, 0, describeRun(run));
    assert.deepEqual(lines(run.stdout), [
      "Hello from dhyve guest (v1, pie)!",
      "hello via fd 1",
      "hello via serial byte",
    ]);
    const diagnostics = lines(run.stderr).filter((line) => line !== "hello via fd 2");
    assert.ok(diagnostics.length > 0, "-vv prints diagnostics");
    for (const line of diagnostics) assert.match(line, /^dhyve: /, describeRun(run));
    assert.ok(lines(run.stderr).includes("hello via fd 2"));
    // -q: errors only; a clean run prints nothing of dhyve's own.
    const quiet = await dhyve(["-q", kernel]);
    assert.equal(quiet.stderr, "hello via fd 2\n");
  },
);

kvmTest("--stats prints uhyve's table after the guest output, with a column per vCPU", async () => {
  const kernel = await buildGuest("hello", V1);
  const one = await dhyve(["--stats", kernel]);
  assert.equal(one.code, 0, describeRun(one));
  const stats = one.stdout.indexOf("Run statistics:");
  assert.ok(stats > 0, describeRun(one));
  assert.ok(one.stdout.lastIndexOf("hello via serial byte") < stats, "stats after the guest");
  assert.match(one.stdout, /^VM exits: +total +cpu0$/m);
  assert.match(one.stdout, /^ {2}Hypercall\(V1\(Exit\)\): +1 +1$/m);
  assert.match(one.stdout, /^CPU runtimes:\n {2}cpu 0: \d/m);

  const two = await dhyve(["--stats", "-c", "2", await buildGuest("exit_code", V1), "9"]);
  assert.equal(two.code, 9, describeRun(two));
  assert.match(two.stdout, /^Run statistics:\n/);
  assert.match(two.stdout, /^VM exits: +total +cpu0 +cpu1$/m);
  assert.match(two.stdout, /^ {2}cpu 0: /m);
  assert.match(two.stdout, /^ {2}cpu 1: /m);
  assert.doesNotMatch(two.stdout, /\n\n$/, "no blank line at the end");
});

kvmTest("--stats=json prints one JSON document with totalExits > 0", async () => {
  const run = await dhyve(["-o", "none", "--stats=json", await buildGuest("hello", V2)]);
  const doc = statsOf(run);
  assert.ok(doc.totalExits > 0);
  assert.ok(doc.bootMs > 0 && doc.runMs > 0);
  assert.equal(doc.cpus.length, 1);
  assert.equal(doc.cpus[0]!.exits, doc.totalExits);
  const names = doc.exits.map((e) => e.name);
  assert.ok(names.includes("Hypercall(V2(Exit))"), names.join(", "));
  assert.ok(names.includes("Hypercall(V2(SerialWriteBuffer))"), names.join(", "));
  const sum = doc.exits.reduce((n, e) => n + e.total, 0);
  assert.equal(sum, doc.totalExits);
  // After "--", --stats=json is a guest argument, not the flag.
  const asArg = await dhyve([await buildGuest("exit_code", V1), "--", "--stats=json"]);
  assert.equal(asArg.code, 1, describeRun(asArg));
  assert.doesNotMatch(asArg.stdout, /totalExits/);
});

/** Runs dhyve with its stdout closed before it writes (as `dhyve … | true`). */
async function withClosedStdout(args: string[]): Promise<CliRun> {
  const t0 = performance.now();
  const child = spawnDhyve(args, RUN_DEFAULTS);
  await child.stdout.cancel();
  const output = await child.output();
  const ms = performance.now() - t0;
  return { code: output.code, stdout: "", stderr: decoder.decode(output.stderr), ms };
}

kvmTest("a closed stdout (| head) ends quietly: no stack trace, no internal error", async () => {
  for (
    const [args, code] of [
      [["--stats", await noop()], 0],
      [["--stats=json", await buildGuest("exit_code", V1), "3"], 3],
      [[await buildGuest("hello", V1)], 0],
      [["--help"], 0],
    ] as const
  ) {
    const run = await withClosedStdout([...args]);
    assert.equal(run.code, code, describeRun(run));
    assert.doesNotMatch(run.stderr, / {4}at /, describeRun(run));
    assert.doesNotMatch(run.stderr, /Internal error|Uncaught/, describeRun(run));
  }
});
