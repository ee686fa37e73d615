/**
 * Runs the dhyve command line (`main.ts`) as a subprocess, as a user would:
 * exit statuses, what lands on stdout and stderr, and one error line without
 * a stack trace for every failure. Needs /dev/kvm, `--allow-run` (deno, gcc),
 * `--allow-read`, and `--allow-write` (the guest build cache, temp files).
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { assertOneErrorLine, type CliRun, runDhyve } from "../_helpers/cli.ts";
import { MODULE_DIR, REPO_ROOT } from "../_helpers/repo.ts";

/** Runs `deno run <permissions> main.ts <args>` from the repository root. */
function dhyve(
  args: string[],
  permissions: string[] = ["--allow-ffi", "--allow-read"],
): Promise<CliRun> {
  return runDhyve(args, { perms: permissions });
}

async function withTempFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "dhyve-cli-test-" });
  try {
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

kvmTest(
  "dhyve KERNEL runs hello: exit 0, guest output on stdout, only fd 2 on stderr",
  async () => {
    for (const variant of [{ iface: 1, pie: true }, { iface: 2, pie: false }] as const) {
      const kernel = await buildGuest("hello", variant);
      const run = await dhyve([kernel]);
      assert.equal(run.code, 0, run.stderr);
      const link = variant.pie ? "pie" : "fixed";
      assert.equal(
        run.stdout,
        `Hello from dhyve guest (v${variant.iface}, ${link})!\nhello via fd 1\nhello via serial byte\n`,
      );
      assert.equal(run.stderr, "hello via fd 2\n");
    }
  },
);

kvmTest("dhyve KERNEL 3 exits with the guest's exit code 3", async () => {
  for (const variant of [{ iface: 1, pie: true }, { iface: 2, pie: true }] as const) {
    const kernel = await buildGuest("exit_code", variant);
    const run = await dhyve([kernel, "3"]);
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stderr, "");
  }
});

kvmTest("dhyve KERNEL -- -1 exits with status 255", async () => {
  const kernel = await buildGuest("exit_code", { iface: 1, pie: true });
  const run = await dhyve([kernel, "--", "-1"]);
  assert.equal(run.code, 255, run.stderr);
});

kvmTest("dhyve with a missing kernel file exits NO_INPUT with one line", async () => {
  const missing = `${REPO_ROOT}/.build/no-such-kernel-${crypto.randomUUID()}`;
  assertOneErrorLine(
    await dhyve([missing]),
    EXIT_CODE.NO_INPUT,
    /does not exist/,
    new RegExp(missing.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")),
  );
});

kvmTest("dhyve with a text file as kernel exits BAD_KERNEL with one line", async () => {
  const text = new TextEncoder().encode("#!/bin/sh\necho this is not a kernel\n");
  await withTempFile(text, async (path) => {
    assertOneErrorLine(await dhyve([path]), EXIT_CODE.BAD_KERNEL, /not a usable Hermit kernel/);
  });
});

kvmTest("dhyve with an ELF for another architecture exits BAD_KERNEL naming it", async () => {
  const elf = await Deno.readFile(await buildGuest("noop", { iface: 1, pie: true }));
  new DataView(elf.buffer, elf.byteOffset).setUint16(18, 183, true); // e_machine = EM_AARCH64
  await withTempFile(elf, async (path) => {
    assertOneErrorLine(
      await dhyve([path]),
      EXIT_CODE.BAD_KERNEL,
      /architecture/i,
      /183/,
    );
  });
});

kvmTest("dhyve with an unknown flag exits USAGE with one line", async () => {
  const kernel = await buildGuest("noop", { iface: 1, pie: true });
  assertOneErrorLine(await dhyve(["--bogus", kernel]), EXIT_CODE.USAGE, /--bogus/, /--help/);
});

kvmTest("dhyve -m 15MiB exits USAGE naming the 16 MiB minimum", async () => {
  const kernel = await buildGuest("noop", { iface: 1, pie: true });
  assertOneErrorLine(await dhyve(["-m", "15MiB", kernel]), EXIT_CODE.USAGE, /16 MiB/);
});

kvmTest("dhyve -m 16MiB runs the guest", async () => {
  const kernel = await buildGuest("exit_code", { iface: 1, pie: true });
  const run = await dhyve(["-m", "16MiB", kernel, "5"]);
  assert.equal(run.code, 5, run.stderr);
});

kvmTest("dhyve without --allow-ffi exits PERMISSION with a line naming --allow-ffi", async () => {
  const kernel = await buildGuest("noop", { iface: 1, pie: true });
  assertOneErrorLine(
    await dhyve([kernel], ["--allow-read"]),
    EXIT_CODE.PERMISSION,
    /--allow-ffi/,
  );
});

kvmTest(
  "dhyve without --allow-read for the kernel exits PERMISSION naming --allow-read",
  async () => {
    const kernel = await buildGuest("noop", { iface: 1, pie: true });
    assertOneErrorLine(
      await dhyve([kernel], ["--allow-ffi", `--allow-read=${MODULE_DIR}`]),
      EXIT_CODE.PERMISSION,
      /--allow-read/,
    );
  },
);

kvmTest("dhyve --version and --help print to stdout and exit 0", async () => {
  const version = await dhyve(["--version"], []);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^dhyve \d+\.\d+\.\d+\n$/);
  assert.equal(version.stderr, "");
  const help = await dhyve(["--help"], []);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: /);
});
