/**
 * The file hypercalls end to end: the `files` test guest (`tests/guests/files.c`)
 * checks every call against a host directory mapped at /root/data, under each
 * `--file-isolation` mode, and the host checks what the guest left behind:
 * its new file on disk, nothing outside the map touched, the per-VM temp dir
 * gone. Isolation `none` runs in this process through {@linkcode runVm};
 * `normal` and `strict` run `main.ts` in a subprocess, since Landlock would
 * restrict this test process for good. Also: the command line that
 * `--print-permissions` prints runs the guest, and the same command without
 * read access to the mapped directory stops before the guest boots.
 * Needs /dev/kvm, `--allow-ffi`, `--allow-read`, `--allow-write`, `--allow-run`
 * (gcc, deno) and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import type { FileIsolation } from "../../src/params.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { MAIN } from "../_helpers/repo.ts";
import { type CliRun, runDeno } from "../_helpers/cli.ts";
import { exists, type Fixture, makeFixture } from "../_helpers/files_fixture.ts";

const VARIANTS: readonly GuestBuild[] = [
  { iface: 1, pie: true },
  { iface: 2, pie: true },
  { iface: 1, pie: false },
];

/** Asserts the guest's report: only "ok" lines, then the summary with 0 failed. */
function assertAllOk(stdout: string, context: string): void {
  const lines = stdout.split("\n").filter((line) => line !== "");
  const summary = lines.pop() ?? "";
  const failures = lines.filter((line) => !line.startsWith("ok "));
  assert.deepEqual(failures, [], `${context}:\n${stdout}`);
  assert.match(summary, /^files: \d+ checks, 0 failed$/, `${context}:\n${stdout}`);
  assert.ok(lines.length >= 50, `${context}: only ${lines.length} checks ran`);
}

/** Runs `deno <args>` from the repository root. */
function run(args: readonly string[]): Promise<CliRun> {
  return runDeno(args);
}

/** The dhyve arguments for one files-guest run. */
function dhyveArgs(fx: Fixture, kernel: string, isolation?: FileIsolation): string[] {
  return [
    "--file-mapping",
    `${fx.data}:/root/data`,
    "--tempdir",
    fx.tempParent,
    ...(isolation === undefined ? [] : ["--file-isolation", isolation]),
    kernel,
    fx.bigSum,
  ];
}

/** Splits a POSIX shell command line (plain words and '…' quoting, as shellQuote writes). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      assert.ok(end > i, `unterminated quote in ${line}`);
      word += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === " ") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

kvmTest("files guest passes every check in-process with --file-isolation none", async (t) => {
  const fx = makeFixture();
  try {
    for (const variant of VARIANTS) {
      const name = guestVariantName(variant);
      await t.step(name, async () => {
        const kernel = await buildGuest("files", variant);
        const out = new CaptureSink();
        const err = new CaptureSink();
        const result = await runVm(kernel, {
          args: [fx.bigSum],
          fileMappings: [`${fx.data}:/root/data`],
          tempDir: fx.tempParent,
          fileIsolation: "none",
          stdout: out,
          stderr: err,
        });
        const context = `${name}: ${result.error ?? ""}\n${err.text()}`;
        assertAllOk(out.text(), context);
        assert.equal(result.error, null, context);
        assert.equal(result.exitCode, 0, context);
        assert.equal(err.text(), "");
        fx.checkAfterRun(name);
      });
    }
  } finally {
    fx.cleanup();
  }
});

kvmTest("files guest passes every check with 2 vCPUs (file calls over the channel)", async () => {
  const fx = makeFixture();
  try {
    const kernel = await buildGuest("files", { iface: 2, pie: true });
    const out = new CaptureSink();
    const err = new CaptureSink();
    const result = await runVm(kernel, {
      args: [fx.bigSum],
      cpuCount: 2,
      fileMappings: [`${fx.data}:/root/data`],
      tempDir: fx.tempParent,
      fileIsolation: "none",
      stdout: out,
      stderr: err,
    });
    const context = `${result.error ?? ""}\n${err.text()}`;
    assertAllOk(out.text(), context);
    assert.equal(result.exitCode, 0, context);
    fx.checkAfterRun("2 vCPUs");
  } finally {
    fx.cleanup();
  }
});

for (const isolation of ["normal", "strict"] as const) {
  kvmTest(
    `files guest passes every check under Landlock (--file-isolation ${isolation}, subprocess)`,
    async (t) => {
      const fx = makeFixture();
      try {
        for (const variant of VARIANTS) {
          const name = `${guestVariantName(variant)}, ${isolation}`;
          await t.step(name, async () => {
            const kernel = await buildGuest("files", variant);
            const r = await run([
              "run",
              "--allow-ffi",
              "--allow-read",
              "--allow-write",
              "--allow-env",
              MAIN,
              ...dhyveArgs(fx, kernel, isolation),
            ]);
            const context = `${name}: exit ${r.code}\nstderr:\n${r.stderr}`;
            assertAllOk(r.stdout, context);
            assert.equal(r.code, 0, context);
            assert.equal(r.stderr, "", context);
            fx.checkAfterRun(name);
          });
        }
      } finally {
        fx.cleanup();
      }
    },
  );
}

kvmTest("main.ts --print-permissions prints a command that runs the files guest", async (t) => {
  const fx = makeFixture();
  try {
    const kernel = await buildGuest("files", { iface: 2, pie: true });
    const printed = await run(["run", "-A", MAIN, "--print-permissions", ...dhyveArgs(fx, kernel)]);
    assert.equal(printed.code, 0, printed.stderr);
    const lines = printed.stdout.split("\n").filter((line) => line !== "");
    assert.equal(lines.length, 1, printed.stdout);
    const line = lines[0]!;
    const words = shellWords(line);
    assert.deepEqual(words.slice(0, 2), ["deno", "run"], line);
    const flags = words.filter((w) => w.startsWith("--allow-"));
    const read = flags.find((f) => f.startsWith("--allow-read="));
    assert.ok(read !== undefined, line);
    const readPaths = read.slice("--allow-read=".length).split(",");
    assert.ok(readPaths.includes(fx.data), `${read} names ${fx.data}`);
    assert.ok(readPaths.includes(kernel), `${read} names the kernel`);
    // --allow-ffi is the one unscoped flag: Deno's pointer views need it whole.
    assert.ok(
      flags.every((f) => f.includes("=") || f === "--allow-ffi"),
      `only scoped flags besides --allow-ffi: ${flags.join(" ")}`,
    );
    assert.ok(words.includes(MAIN), line);

    await t.step("the printed command runs the guest", async () => {
      const r = await run(words.slice(1));
      const context = `exit ${r.code}\nstderr:\n${r.stderr}`;
      assertAllOk(r.stdout, context);
      assert.equal(r.code, 0, context);
      assert.equal(r.stderr, "", context);
      fx.checkAfterRun("minimal permissions");
    });

    await t.step("without read access to the mapped dir it stops before booting", async () => {
      const narrower = readPaths.filter((p) => p !== fx.data);
      const args = words.slice(1).map((w) => w === read ? `--allow-read=${narrower}` : w);
      const r = await run(args);
      const context = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
      assert.equal(r.code, EXIT_CODE.PERMISSION, context);
      assert.equal(r.stdout, "", `no guest output: ${context}`);
      const errors = r.stderr.split("\n").filter((line) => line !== "");
      assert.equal(errors.length, 1, context);
      assert.match(errors[0]!, /^dhyve: error: /, context);
      assert.ok(errors[0]!.includes(`--allow-read=${fx.data}`), context);
      assert.equal(exists(`${fx.data}/new.txt`), false, "the guest never ran");
    });
  } finally {
    fx.cleanup();
  }
});
