/**
 * `--hermit-image-mode internal` end to end (uhyve 0.9.1): the whole
 * decompressed archive lands in guest RAM on the page after the kernel,
 * `/chosen` `linux,initrd-start`/`-end` name it, the FDT reserves its pages,
 * the image's files are not served through the file map, and the FDT carries
 * uhyve main's `/cpus`. The `initrd` guest (`tests/guests/initrd.c`) reads all
 * of that from its device tree and hashes the bytes. Also the flag, the
 * `uhyve.toml` key and their errors through the command line. Needs /dev/kvm,
 * `--allow-ffi`, `--allow-read`, `--allow-write`, `--allow-run` (gcc, deno).
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { UsageError, type VmParams } from "../../src/params.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { buildTar, gzip, hermitToml } from "../_helpers/hermit_image_builder.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { lines as nonEmptyLines, runDhyve as dhyveCli } from "../_helpers/cli.ts";

const VARIANTS: GuestBuild[] = [
  { iface: 1, pie: true },
  { iface: 2, pie: false },
  { iface: 3, pie: true },
];

/** A file in the image that is not all alike. */
const DATA = Uint8Array.from({ length: 9000 }, (_, i) => (i * 13 + (i >> 7)) & 0xff);

/** FNV-1a, 32 bits, as the guest computes it. */
function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const b of bytes) hash = Math.imul(hash ^ b, 0x01000193) >>> 0;
  return hash.toString(16);
}

/** The tar and gzip'd image of the initrd guest for `variant`, plus `extra` files. */
async function initrdImage(
  variant: GuestBuild,
  extra: { name: string; data: Uint8Array }[] = [],
): Promise<{ tar: Uint8Array; gz: Uint8Array }> {
  const kernel = await Deno.readFile(await buildGuest("initrd", variant));
  const tar = buildTar([
    { name: "hermit.toml", data: hermitToml({ kernel: "app" }) },
    { name: "app", data: kernel },
    { name: "data/blob.bin", data: DATA },
    ...extra,
  ]);
  return { tar, gz: gzip(tar) };
}

/** Writes `bytes` to a temp file with `suffix`, runs `fn`, removes the file. */
async function withTempFile<T>(
  bytes: Uint8Array | string,
  suffix: string,
  fn: (path: string) => Promise<T>,
): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "dhyve-initrd-test-", suffix });
  try {
    if (typeof bytes === "string") await Deno.writeTextFile(path, bytes);
    else await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Runs `path` in this process with captured output. */
async function run(path: string, params: VmParams): Promise<{ result: VmResult; stdout: string }> {
  const out = new CaptureSink();
  const result = await runVm(path, {
    fileIsolation: "none",
    timeoutMs: 60_000,
    ...params,
    stdout: out,
    stderr: out,
  });
  return { result, stdout: out.text() };
}

/** The guest's report for an initrd of `tar` with `cpus` vCPUs. */
function internalReport(tar: Uint8Array, cpus: number): RegExp {
  return new RegExp(
    `^initrd: offset=[0-9a-f]{1,3} len=${tar.length} fnv=${fnv1a(tar)} ustar=yes reserve=ok\n` +
      `cpus: ${cpus} of ${cpus}\nhermit\\.toml: open=-${ERRNO.ENOENT}\n$`,
  );
}

kvmTest(
  "internal mode: the guest finds the whole archive as an initrd after the kernel",
  async (t) => {
    for (const variant of VARIANTS) {
      await t.step(guestVariantName(variant), async () => {
        const { tar, gz } = await initrdImage(variant);
        await withTempFile(gz, ".hermit", async (path) => {
          const { result, stdout } = await run(path, { hermitImageMode: "internal" });
          assert.equal(result.error, null, stdout);
          assert.equal(result.exitCode, 0, stdout);
          assert.match(stdout, internalReport(tar, 1));
        });
      });
    }
  },
);

kvmTest("internal mode: an initrd of over 1 MiB, two vCPUs in /cpus", async () => {
  const big = Uint8Array.from({ length: 1024 * 1024 + 77 }, (_, i) => (i * 31) >> 3 & 0xff);
  const { tar, gz } = await initrdImage({ iface: 2, pie: true }, [{ name: "big", data: big }]);
  await withTempFile(gz, ".hermit", async (path) => {
    const { result, stdout } = await run(path, { hermitImageMode: "internal", cpuCount: 2 });
    assert.equal(result.exitCode, 0, stdout);
    assert.match(stdout, internalReport(tar, 2));
  });
});

kvmTest(
  "external mode (the default): no initrd, the image's files come from the file map",
  async (t) => {
    for (const variant of VARIANTS) {
      await t.step(guestVariantName(variant), async () => {
        const { gz } = await initrdImage(variant);
        await withTempFile(gz, ".hermit", async (path) => {
          for (const params of [{}, { hermitImageMode: "external" } as const]) {
            const { result, stdout } = await run(path, params);
            assert.equal(result.guestExitCode, 3, stdout);
            assert.equal(stdout, "initrd: none\ncpus: 1 of 1\nhermit.toml: open=fd\n");
          }
        });
      });
    }
  },
);

kvmTest("internal mode has no effect on a plain ELF kernel", async () => {
  const kernel = await buildGuest("initrd", { iface: 3, pie: false });
  const { result, stdout } = await run(kernel, { hermitImageMode: "internal", cpuCount: 3 });
  assert.equal(result.guestExitCode, 3, stdout);
  assert.equal(stdout, `initrd: none\ncpus: 3 of 3\nhermit.toml: open=-${ERRNO.ENOENT}\n`);
});

kvmTest(
  "dhyve --hermit-image-mode internal / uhyve.toml hermit_image_mode run the image",
  async () => {
    const { tar, gz } = await initrdImage({ iface: 3, pie: true });
    await withTempFile(gz, ".hermit", async (image) => {
      const flag = await dhyveCli(["--hermit-image-mode", "Internal", image]);
      assert.equal(flag.code, 0, flag.stderr);
      assert.match(flag.stdout, internalReport(tar, 1));
      const toml = "[uhyve]\nhermit_image_mode = 'internal'\n";
      await withTempFile(toml, ".toml", async (config) => {
        const fromFile = await dhyveCli(["--config", config, image]);
        assert.equal(fromFile.code, 0, fromFile.stderr);
        assert.match(fromFile.stdout, internalReport(tar, 1));
        const cliWins = await dhyveCli([
          "--config",
          config,
          "--hermit-image-mode",
          "external",
          image,
        ]);
        assert.equal(cliWins.code, 3, cliWins.stderr);
        assert.match(cliWins.stdout, /^initrd: none\n/);
      });
    });
  },
);

kvmTest(
  "a bad --hermit-image-mode is exit 64, a bad hermit_image_mode in uhyve.toml 78",
  async () => {
    const kernel = await buildGuest("initrd", { iface: 2, pie: true });
    const flag = await dhyveCli(["--hermit-image-mode", "inside", kernel]);
    assert.equal(flag.code, EXIT_CODE.USAGE, flag.stderr);
    assert.deepEqual(nonEmptyLines(flag.stderr), [
      'dhyve: error: Invalid --hermit-image-mode "inside": use external or internal',
    ]);
    assert.equal(flag.stdout, "");
    await withTempFile("[uhyve]\nhermit_image_mode = 'inside'\n", ".toml", async (config) => {
      const file = await dhyveCli(["--config", config, kernel]);
      assert.equal(file.code, EXIT_CODE.CONFIG, file.stderr);
      const lines = nonEmptyLines(file.stderr);
      assert.equal(lines.length, 1, file.stderr);
      assert.match(lines[0]!, /:2: .*hermit_image_mode.*use external or internal/);
    });
  },
);

kvmTest("internal mode: an image too large for guest RAM is one line and exit 64", async () => {
  const zeros = new Uint8Array(20 * 1024 * 1024); // compresses to almost nothing
  const { gz } = await initrdImage({ iface: 2, pie: true }, [{ name: "zeros", data: zeros }]);
  await withTempFile(gz, ".hermit", async (image) => {
    const cli = await dhyveCli(["-m", "16MiB", "--hermit-image-mode", "internal", image]);
    assert.equal(cli.code, EXIT_CODE.USAGE, cli.stderr);
    const lines = nonEmptyLines(cli.stderr);
    assert.equal(lines.length, 1, cli.stderr);
    assert.match(
      lines[0]!,
      /^dhyve: error: The Hermit image \(\d+ bytes\) does not fit in 16 MiB of guest memory after the kernel with --hermit-image-mode internal; use -m \d+MiB or more/,
    );
    assert.equal(cli.stdout, "");
  });
});

kvmTest("runVm() refuses an unknown hermitImageMode from a library caller", async () => {
  const kernel = await buildGuest("initrd", { iface: 2, pie: true });
  await assert.rejects(
    () => run(kernel, { hermitImageMode: "inside" as unknown as "internal" }),
    (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.equal(e.message, 'Invalid --hermit-image-mode "inside": use external or internal');
      return true;
    },
  );
});
