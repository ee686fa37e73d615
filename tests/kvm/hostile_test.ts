/**
 * Hostile guests (docs/security.md): the `hostile` test guest
 * (`tests/guests/hostile.c`) performs one misbehaviour per VM run, so a stop
 * cannot hide the cases after it. Guest mistakes must come back as the
 * expected −errno with the guest running on (and still served: "after=ok");
 * protocol violations must stop the VM with exit 82 and one line. After every
 * run the canary files outside the map are untouched, nothing appeared next
 * to the map, and the per-VM temp dir is gone.
 *
 * All cases run in this process through {@linkcode runVm} with
 * `--file-isolation none`, so the file map alone must hold (with a small
 * open-file and temp-space limit). The escape cases run again through
 * `main.ts` in a subprocess with the minimal Deno permissions and Landlock
 * (`normal`), i.e. behind all three fences. Needs /dev/kvm, `--allow-ffi`,
 * `--allow-read`, `--allow-write`, `--allow-run` (gcc, deno) and
 * `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { runVm } from "../../src/vm.ts";
import { buildGuest, type GuestBuild } from "../_helpers/guests.ts";
import { denoCommand, dhyveArgs } from "../_helpers/cli.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { MODULE_DIR } from "../_helpers/repo.ts";

const decoder = new TextDecoder();

/** The hostile guest, per interface: PIE, no GNU note (the whole RAM is mapped). */
const BUILDS: Readonly<Record<1 | 2, GuestBuild>> = {
  1: { iface: 1, pie: true, versionNote: false },
  2: { iface: 2, pie: true, versionNote: false },
};
/** Limits of the in-process runs (the CLI has no flags for them). */
const MAX_OPEN_FILES = 64;
const MAX_TEMP_BYTES = 256 * 1024;
const CANARY = "canary: must stay as it is\n";
const SECRET = "secret outside the map\n";

/** What one case must produce, per interface. */
type Expect =
  /** The guest's line after "case NAME: ", and exit 0. */
  | { readonly line: string }
  /** The VM stops: this exit code and one line matching `message`. */
  | { readonly stop: number; readonly message: RegExp };

/** One hostile case. */
interface Case {
  readonly name: string;
  readonly v1: Expect;
  /** Default: the same as v1. */
  readonly v2?: Expect;
}

const ok = (ret: string): Expect => ({ line: `ret=${ret} after=ok` });
const stop = (message: RegExp): Expect => ({ stop: EXIT_CODE.GUEST_PROTOCOL, message });
const outside = /passed a parameter block at 0x-?[0-9a-f]+ \(\d+ bytes\) outside guest memory/;

/** Every case with its expectation (docs/security.md lists them). */
const CASES: readonly Case[] = [
  // protocol violations: the VM stops with 82 and one line
  { name: "param-outside", v1: stop(outside) },
  { name: "param-straddle", v1: stop(outside) },
  { name: "param-wrap", v1: stop(outside) },
  { name: "exit-param-outside", v1: stop(/Exit \(port 0x540\) passed a parameter block/) },
  { name: "serial-outside", v1: stop(/SerialWriteBuffer .*buffer at .* outside guest memory/) },
  { name: "serial-wrap", v1: stop(/SerialWriteBuffer .*buffer at .* outside guest memory/) },
  { name: "unknown-port", v1: stop(/I\/O port 0x5c0, which is not a hypercall/) },
  { name: "serial-read-outside", v1: stop(/SerialReadByte \(port 0x1040\) passed a parameter/) },
  { name: "net-port", v1: stop(/NetWrite \(port 0x640\) is not supported/) },
  { name: "cmdsize-straddle", v1: stop(/Cmdsize \(port 0x740\) passed a parameter block/) },
  // v1 ports from a v2 guest (RAM above 4 GiB): the 32-bit address is outside RAM
  {
    name: "cmdval-bogus-array",
    v1: stop(/Cmdval \(port 0x780\) passed an? argv array at 0xdeadbeef000/),
    v2: stop(outside),
  },
  {
    name: "cmdval-bogus-entry",
    v1: stop(/Cmdval \(port 0x780\) passed argv\[0\] at 0x[0-9a-f]+ with no room/),
    v2: stop(outside),
  },
  // buffers: out of range, across the end, wrapping, huge
  { name: "read-buf-outside", v1: ok("-14") },
  { name: "read-buf-straddle", v1: ok("-14") },
  { name: "read-addr-wrap", v1: ok("-14") },
  { name: "read-len-wrap", v1: ok("-14") },
  { name: "read-huge", v1: ok("-14") },
  // v1 FileWrite has no result field: the file stays empty and the guest goes on
  { name: "write-buf-outside", v1: ok("none size=0"), v2: ok("-14 size=0") },
  { name: "write-addr-wrap", v1: ok("none size=0"), v2: ok("-14 size=0") },
  { name: "write-len-wrap", v1: ok("none size=0"), v2: ok("-14 size=0") },
  { name: "write-huge", v1: ok("none size=0"), v2: ok("-14 size=0") },
  // fds and whence
  { name: "write-fd0", v1: ok("none"), v2: ok("-9") },
  { name: "read-fd1", v1: ok("-9") },
  { name: "bad-fd", v1: ok("-9") },
  { name: "negative-fd", v1: ok("-9,-9,-9") },
  { name: "fd-int-min", v1: ok("-9") },
  { name: "bad-whence", v1: ok("-22,-22") },
  { name: "lseek-huge", v1: ok("-22,-22,-22") },
  { name: "close-stdio", v1: ok("0,0,0") },
  // paths
  { name: "path-outside", v1: ok("-14") },
  { name: "path-wrap", v1: ok("-14") },
  { name: "path-unterminated", v1: ok("-14,-14") },
  { name: "path-too-long", v1: ok("-36") },
  { name: "path-4095", v1: ok("-2") },
  { name: "path-4096", v1: ok("-36") },
  { name: "path-not-utf8", v1: ok("-22") },
  { name: "open-bad-flags", v1: ok("-22,-22") },
  { name: "read-dir", v1: ok("-21") },
  { name: "unlink-dirs", v1: ok("-21,-21") },
  // escapes: `..`, absolute host paths, symlinks out of the mapped directory
  { name: "dotdot", v1: ok("-2,-2") },
  { name: "dotdot-creat", v1: ok("fd") },
  { name: "abs-host-path", v1: ok("-2,-2") },
  { name: "abs-host-creat", v1: ok("fd") },
  { name: "symlink-escape", v1: ok("-13,-13") },
  { name: "symlink-dir-escape", v1: ok("-13,-13,-13") },
  { name: "symlink-dangling", v1: ok("-13") },
  // resource bounds
  { name: "emfile", v1: { line: `ret=-24 opened=${MAX_OPEN_FILES} reopen=fd after=ok` } },
  {
    name: "temp-flood",
    v1: { line: `ret=none total=${MAX_TEMP_BYTES} files=4 after=ok` },
    v2: { line: `ret=-28 total=${MAX_TEMP_BYTES} files=4 after=ok` },
  },
];

/** Cases that also run through main.ts behind all three fences. */
const FENCED = [
  "dotdot",
  "dotdot-creat",
  "abs-host-path",
  "abs-host-creat",
  "symlink-escape",
  "symlink-dir-escape",
  "symlink-dangling",
  "path-unterminated",
  "write-fd0",
] as const;

/** The host side: a mapped directory, escape targets, canaries and a temp parent. */
interface Fixture {
  readonly root: string;
  readonly data: string;
  readonly canary: string;
  readonly tempParent: string;
  /** Asserts nothing outside the map changed and the temp dir is gone. */
  check(context: string): void;
  cleanup(): void;
}

function makeFixture(): Fixture {
  const root = Deno.makeTempDirSync({ prefix: "dhyve-hostile-" });
  const tempParent = Deno.makeTempDirSync({ prefix: "dhyve-hostile-tmp-" });
  const data = `${root}/data`;
  const other = `${root}/other`;
  const canary = `${root}/canary.txt`;
  Deno.mkdirSync(data);
  Deno.mkdirSync(other);
  Deno.writeTextFileSync(`${data}/hello.txt`, "hello\n");
  Deno.writeTextFileSync(canary, CANARY);
  Deno.writeTextFileSync(`${other}/secret.txt`, SECRET);
  Deno.symlinkSync(canary, `${data}/escape`);
  Deno.symlinkSync(other, `${data}/outdir`);
  Deno.symlinkSync(`${other}/missing.txt`, `${data}/dangling`);
  const mtime = (path: string): number | undefined => Deno.statSync(path).mtime?.getTime();
  const canaryMtime = mtime(canary);
  const secretMtime = mtime(`${other}/secret.txt`);
  const names = (dir: string): string[] => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  return {
    root,
    data,
    canary,
    tempParent,
    check(context: string): void {
      assert.equal(Deno.readTextFileSync(canary), CANARY, `${context}: canary changed`);
      assert.equal(mtime(canary), canaryMtime, `${context}: canary touched`);
      assert.equal(Deno.readTextFileSync(`${other}/secret.txt`), SECRET, `${context}: secret`);
      assert.equal(mtime(`${other}/secret.txt`), secretMtime, `${context}: secret touched`);
      assert.deepEqual(names(other), ["secret.txt"], `${context}: created outside the map`);
      assert.deepEqual(names(root), ["canary.txt", "data", "other"], `${context}: next to map`);
      assert.deepEqual(names(tempParent), [], `${context}: the per-VM temp dir is left`);
      assert.equal(Deno.readTextFileSync(`${data}/hello.txt`), "hello\n", context);
    },
    cleanup(): void {
      Deno.removeSync(root, { recursive: true });
      Deno.removeSync(tempParent, { recursive: true });
    },
  };
}

/** What one run gave: the exit code, the guest's output, dhyve's error line. */
interface Outcome {
  code: number;
  stdout: string;
  error: string | null;
}

/** Serial input for in-process runs: end of input at once (never the test's stdin). */
const NO_INPUT = { readSync: (): null => null };

async function runInProcess(kernel: string, name: string, fx: Fixture): Promise<Outcome> {
  const stdout = new CaptureSink();
  const stderr = new CaptureSink();
  const result = await runVm(kernel, {
    args: [name, fx.canary],
    fileMappings: [`${fx.data}:/root/data`],
    tempDir: fx.tempParent,
    fileIsolation: "none",
    maxOpenFiles: MAX_OPEN_FILES,
    maxTempBytes: MAX_TEMP_BYTES,
    aslr: false,
    timeoutMs: 30_000,
    stdout,
    stderr,
    stdin: NO_INPUT,
  });
  return { code: result.exitCode, stdout: stdout.text(), error: result.error };
}

async function runFenced(
  kernel: string,
  name: string,
  fx: Fixture,
  extra: readonly string[] = [],
): Promise<Outcome> {
  const output = await denoCommand(
    dhyveArgs([
      "--file-mapping",
      `${fx.data}:/root/data`,
      "--tempdir",
      fx.tempParent,
      "--file-isolation",
      "normal",
      "--no-aslr",
      "--timeout",
      "30s",
      ...extra,
      kernel,
      "--",
      name,
      fx.canary,
    ], {
      perms: [
        "--allow-ffi",
        // Two vCPUs start Workers, whose modules Deno must be allowed to read.
        `--allow-read=${kernel},${fx.data},${fx.tempParent}${
          extra.includes("-c") ? `,${MODULE_DIR}` : ""
        }`,
        `--allow-write=${fx.data},${fx.tempParent}`,
      ],
    }),
  ).output();
  const stderr = decoder.decode(output.stderr);
  assert.doesNotMatch(stderr, /\n\s+at /, `${name}: a stack trace on stderr:\n${stderr}`);
  const errors = stderr.split("\n").filter((line) => line.startsWith("dhyve: error: "));
  assert.ok(errors.length <= 1, `${name}: more than one error line:\n${stderr}`);
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    error: errors[0]?.slice("dhyve: error: ".length) ?? null,
  };
}

/** Checks one outcome against the expectation. */
function assertCase(name: string, expect: Expect, run: Outcome, context: string): void {
  const shown = `${context}\nexit ${run.code}, error ${run.error}\nstdout:\n${run.stdout}`;
  assert.doesNotMatch(run.stdout, /: continued/, `${context}: the guest got past a violation`);
  if ("line" in expect) {
    assert.equal(run.error, null, shown);
    assert.equal(run.code, 0, shown);
    const lines = run.stdout.split("\n").filter((l) => l.startsWith(`case ${name}:`));
    assert.deepEqual(lines, [`case ${name}: ${expect.line}`], shown);
  } else {
    assert.equal(run.code, expect.stop, shown);
    assert.ok(run.error !== null && !run.error.includes("\n"), `${shown}\nnot one line`);
    assert.match(run.error, expect.message, shown);
  }
}

for (const iface of [1, 2] as const) {
  kvmTest(`hostile guest v${iface}: every case gives its errno or a clean stop`, async (t) => {
    const kernel = await buildGuest("hostile", BUILDS[iface]);
    const fx = makeFixture();
    try {
      for (const c of CASES) {
        await t.step(c.name, async () => {
          const expect = iface === 1 ? c.v1 : c.v2 ?? c.v1;
          const run = await runInProcess(kernel, c.name, fx);
          assertCase(c.name, expect, run, `v${iface} ${c.name}`);
          fx.check(`v${iface} ${c.name}`);
          try {
            Deno.removeSync(`${fx.data}/w.txt`);
          } catch {
            // only the write cases leave it
          }
        });
      }
    } finally {
      fx.cleanup();
    }
  });
}

kvmTest("hostile guest: a 4 MiB serial write goes out whole and the guest goes on", async () => {
  const kernel = await buildGuest("hostile", BUILDS[2]);
  const fx = makeFixture();
  try {
    const run = await runInProcess(kernel, "serial-huge", fx);
    assert.equal(run.code, 0, String(run.error));
    assert.ok(run.stdout.length >= 4 << 20, `only ${run.stdout.length} bytes`);
    assert.ok(run.stdout.endsWith("\ncase serial-huge: ret=0 after=ok\n"));
    fx.check("serial-huge");
  } finally {
    fx.cleanup();
  }
});

for (const iface of [1, 2] as const) {
  kvmTest(
    `hostile guest v${iface} through main.ts: escapes fail behind the file map, Deno's permissions and Landlock`,
    async (t) => {
      const kernel = await buildGuest("hostile", BUILDS[iface]);
      const fx = makeFixture();
      try {
        for (const name of FENCED) {
          await t.step(name, async () => {
            const c = CASES.find((x) => x.name === name)!;
            const run = await runFenced(kernel, name, fx);
            assertCase(name, iface === 1 ? c.v1 : c.v2 ?? c.v1, run, `v${iface} ${name} (cli)`);
            fx.check(`v${iface} ${name} (cli)`);
          });
        }
      } finally {
        fx.cleanup();
      }
    },
  );
}

/** Cases that also run with two vCPUs (file calls served over the channel). */
const SMP = [
  "param-outside",
  "unknown-port",
  "read-huge",
  "write-huge",
  "path-unterminated",
  "symlink-dir-escape",
  "negative-fd",
] as const;

kvmTest("hostile guest with 2 vCPUs through main.ts: the same errnos and stops", async (t) => {
  for (const iface of [1, 2] as const) {
    const kernel = await buildGuest("hostile", BUILDS[iface]);
    const fx = makeFixture();
    try {
      for (const name of SMP) {
        await t.step(`v${iface} ${name}`, async () => {
          const c = CASES.find((x) => x.name === name)!;
          const run = await runFenced(kernel, name, fx, ["-c", "2"]);
          assertCase(name, iface === 1 ? c.v1 : c.v2 ?? c.v1, run, `v${iface} ${name} (-c 2)`);
          fx.check(`v${iface} ${name} (-c 2)`);
        });
      }
    } finally {
      fx.cleanup();
    }
  }
});

// Findings F3 and F4 of docs/security.md, fixed: these assert the bounds.

Deno.test({
  name: "hostile guest: unlinking open temp files does not lift the temp-space limit ",
  async fn(): Promise<void> {
    const kernel = await buildGuest("hostile", BUILDS[2]);
    const fx = makeFixture();
    try {
      const run = await runInProcess(kernel, "temp-unlink-flood", fx);
      assert.equal(run.code, 0, String(run.error));
      const total = Number(/total=(\d+)/.exec(run.stdout)?.[1]);
      assert.ok(total <= MAX_TEMP_BYTES, `${total} bytes held on disk, limit ${MAX_TEMP_BYTES}`);
      fx.check("temp-unlink-flood");
    } finally {
      fx.cleanup();
    }
  },
});

Deno.test({
  name: "hostile guest: the number of temp files is bounded ",
  async fn(): Promise<void> {
    const kernel = await buildGuest("hostile", BUILDS[2]);
    const fx = makeFixture();
    try {
      const run = await runInProcess(kernel, "temp-files-flood", fx);
      assert.equal(run.code, 0, String(run.error));
      assert.match(run.stdout, /case temp-files-flood: ret=-28 created=\d+ after=ok/);
      fx.check("temp-files-flood");
    } finally {
      fx.cleanup();
    }
  },
});
