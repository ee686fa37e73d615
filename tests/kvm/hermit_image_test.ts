/**
 * Hermit images end to end (hermit-abi §1.8): a gzip'd tar built in memory
 * (`tests/_helpers/hermit_image_builder.ts`) with one of our test guests as
 * the kernel, a data file and a `hermit.toml`, written to a temp file and run
 * with {@linkcode runVm} in this process (file isolation "none") and through
 * the CLI. Checks that the image's arguments and environment reach the guest,
 * that command-line arguments replace them and `-e` overlays the environment,
 * that unmet requirements (memory, CPUs) are one clear line with exit 64, that
 * the archive's files are read-only virtual files a guest can read to the end
 * (`tests/guests/read_virtual.c`), and that broken images exit 65. Needs
 * /dev/kvm, `--allow-ffi`, `--allow-read`, `--allow-write`, `--allow-run`
 * (gcc, deno) and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { UsageError, type VmParams } from "../../src/params.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import {
  buildGuest,
  type GuestBuild,
  type GuestIface,
  guestVariantName,
} from "../_helpers/guests.ts";
import {
  buildTar,
  gzip,
  hermitToml,
  type HermitTomlSpec,
} from "../_helpers/hermit_image_builder.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { assertOneErrorLine, type CliRun, describeRun, runDhyve } from "../_helpers/cli.ts";

const V1: GuestBuild = { iface: 1, pie: true };
const V2: GuestBuild = { iface: 2, pie: true };

/** The data file inside the image: 5000 bytes that are not all alike. */
const DATA = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
const DATA_PATH = "data/blob.bin";

/** FNV-1a, 32 bits, as `read_virtual` computes it. */
function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const b of bytes) hash = Math.imul(hash ^ b, 0x01000193) >>> 0;
  return hash;
}

/** A gzip'd Hermit image holding `hermit.toml`, the kernel at `app` and the data file. */
function image(kernel: Uint8Array, toml: HermitTomlSpec): { bytes: Uint8Array; toml: string } {
  const text = hermitToml({ kernel: "app", ...toml });
  const bytes = gzip(buildTar([
    { name: "hermit.toml", data: text },
    { name: "app", data: kernel },
    { name: DATA_PATH, data: DATA },
  ]));
  return { bytes, toml: text };
}

/** Writes `bytes` to a temp `.hermit` file, runs `fn`, removes the file. */
async function withImageFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ prefix: "dhyve-image-test-", suffix: ".hermit" });
  try {
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Runs an image in this process; returns the result and the guest's stdout. */
async function runImage(
  path: string,
  params: VmParams = {},
): Promise<{ result: VmResult; stdout: string }> {
  const out = new CaptureSink();
  const result = await runVm(path, {
    fileIsolation: "none",
    timeoutMs: 30_000,
    ...params,
    stdout: out,
    stderr: out,
  });
  return { result, stdout: out.text() };
}

function dhyve(args: readonly string[]): Promise<CliRun> {
  return runDhyve(args);
}

/** What the `args` guest prints for argv, env and kernel args. */
function argsOutput(
  argv: readonly string[],
  env: readonly string[],
  kargs: readonly string[] = [],
): string {
  return [
    `argc=${argv.length}`,
    ...argv.map((a, i) => `argv[${i}]=${a}`),
    `envc=${env.length}`,
    ...env.map((e, i) => `env[${i}]=${e}`),
    `kargc=${kargs.length}`,
    ...kargs.map((k, i) => `kargv[${i}]=${k}`),
    "",
  ].join("\n");
}

const ARGS_TOML: HermitTomlSpec = {
  kernelArgs: ["-ka", "k2"],
  appArgs: ["x", "y"],
  envVars: ["A=1", "B=image", "NO_EQUALS_SIGN"],
};

/**
 * What the args guest sees for `args`/`env` with the image at `path`: v1
 * copies argv verbatim after the path; v2 splits the bootargs at "--" into
 * kernel and application words and takes env from `env=` words.
 */
function expectedArgs(
  iface: GuestIface,
  path: string,
  args: readonly string[],
  env: readonly string[],
): string {
  if (iface === 1) return argsOutput([path, ...args], env);
  const sep = args.indexOf("--");
  return sep < 0
    ? argsOutput(["guest", ...args], env)
    : argsOutput(["guest", ...args.slice(sep + 1)], env, args.slice(0, sep));
}

for (const variant of [V1, V2]) {
  const name = guestVariantName(variant);

  kvmTest(`image (${name}): hermit.toml's args and env reach the guest (runVm)`, async () => {
    const kernel = await Deno.readFile(await buildGuest("args", variant));
    await withImageFile(image(kernel, ARGS_TOML).bytes, async (path) => {
      const { result, stdout } = await runImage(path);
      assert.equal(result.exitCode, 0, stdout);
      assert.equal(
        stdout,
        expectedArgs(variant.iface, path, ["-ka", "k2", "--", "x", "y"], ["A=1", "B=image"]),
      );
      assert.equal(result.kernel.interfaceVersion, variant.iface);
    });
  });

  kvmTest(`image (${name}): command-line args replace the image's, -e overlays env`, async () => {
    const kernel = await Deno.readFile(await buildGuest("args", variant));
    await withImageFile(image(kernel, ARGS_TOML).bytes, async (path) => {
      const { result, stdout } = await runImage(path, {
        args: ["q"],
        env: [["B", "cli"], ["C", "3"]],
      });
      assert.equal(result.exitCode, 0, stdout);
      assert.equal(stdout, expectedArgs(variant.iface, path, ["q"], ["A=1", "B=cli", "C=3"]));
    });
  });

  kvmTest(`image (${name}): args, env and -e through the CLI`, async () => {
    const kernel = await Deno.readFile(await buildGuest("args", variant));
    await withImageFile(image(kernel, ARGS_TOML).bytes, async (path) => {
      let run = await dhyve([path]);
      assert.equal(run.code, 0, describeRun(run));
      assert.equal(
        run.stdout,
        expectedArgs(variant.iface, path, ["-ka", "k2", "--", "x", "y"], ["A=1", "B=image"]),
      );
      run = await dhyve(["-e", "B=cli", "-e", "C=3", path, "--", "-z", "w"]);
      assert.equal(run.code, 0, describeRun(run));
      assert.equal(
        run.stdout,
        expectedArgs(variant.iface, path, ["-z", "w"], ["A=1", "B=cli", "C=3"]),
      );
    });
  });
}

kvmTest("image: -e host ignores the image's environment", async () => {
  const kernel = await Deno.readFile(await buildGuest("args", V1));
  await withImageFile(image(kernel, ARGS_TOML).bytes, async (path) => {
    const { result, stdout } = await runImage(path, {
      env: [["ONLY", "host"]],
      envHost: true,
    });
    assert.equal(result.exitCode, 0, stdout);
    assert.match(stdout, /^envc=1\nenv\[0\]=ONLY=host$/m);
  });
});

kvmTest("image: requirements memory > -m exits 64 with one line naming -m", async () => {
  const kernel = await Deno.readFile(await buildGuest("exit_code", V1));
  await withImageFile(
    image(kernel, { memory: "128MiB", kernelArgs: ["7"] }).bytes,
    async (path) => {
      assertOneErrorLine(await dhyve([path]), EXIT_CODE.USAGE, /128 MiB/, /64 MiB/, /-m 128MiB/);
      assertOneErrorLine(await dhyve(["-m", "96MiB", path]), EXIT_CODE.USAGE, /-m 128MiB/);
      const run = await dhyve(["-m", "128MiB", path]);
      assert.equal(run.code, 7, describeRun(run));
      await assert.rejects(() => runImage(path), (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.match(error.message, /-m 128MiB/);
        return true;
      });
      assert.equal((await runImage(path, { memorySize: 128 << 20 })).result.exitCode, 7);
    },
  );
});

kvmTest("image: requirements cpus > -c exits 64 with one line naming -c", async () => {
  const kernel = await Deno.readFile(await buildGuest("exit_code", V1));
  await withImageFile(image(kernel, { cpus: 2, kernelArgs: ["8"] }).bytes, async (path) => {
    assertOneErrorLine(await dhyve([path]), EXIT_CODE.USAGE, /2 vCPUs/, /-c 2/);
    const run = await dhyve(["-c", "2", path]);
    assert.equal(run.code, 8, describeRun(run));
  });
});

/** `read_virtual`'s report for the whole of `bytes` read in `chunk`-byte reads. */
function readReport(iface: GuestIface, bytes: Uint8Array, chunk: number): string {
  const reads = Math.ceil(bytes.length / chunk) + 1; // the last read returns 0
  const write = iface !== 1 ? "-30" : "n/a"; // EROFS; v1 FileWrite has no result
  return `bytes=${bytes.length} reads=${reads} fnv=${fnv1a(bytes)} write=${write}\n`;
}

for (const variant of [V1, V2, { iface: 2, pie: false } as GuestBuild]) {
  kvmTest(
    `image (${guestVariantName(variant)}): the guest reads a virtual file to its end and ` +
      "cannot write it",
    async () => {
      const kernel = await Deno.readFile(await buildGuest("read_virtual", variant));
      const built = image(kernel, { kernelArgs: [`/${DATA_PATH}`, "97"] });
      await withImageFile(built.bytes, async (path) => {
        let { result, stdout } = await runImage(path);
        assert.equal(result.exitCode, 0, stdout);
        assert.equal(stdout, readReport(variant.iface, DATA, 97));
        // hermit.toml and the kernel are virtual files too; a leading "/" is optional in
        // the image but the guest opens absolute paths.
        ({ result, stdout } = await runImage(path, { args: ["/hermit.toml", "13"] }));
        assert.equal(result.exitCode, 0, stdout);
        assert.equal(stdout, readReport(variant.iface, new TextEncoder().encode(built.toml), 13));
        ({ result, stdout } = await runImage(path, { args: ["/app", "4096"] }));
        assert.equal(result.exitCode, 0, stdout);
        assert.equal(stdout, readReport(variant.iface, kernel, 4096));
        // A path that is not in the image.
        ({ result, stdout } = await runImage(path, { args: ["/data/missing"] }));
        assert.equal(result.exitCode, 1, stdout);
        assert.match(stdout, /open \/data\/missing: -2\n/);
      });
    },
  );
}

kvmTest("image: reading a virtual file to its end terminates through the CLI", async () => {
  const kernel = await Deno.readFile(await buildGuest("read_virtual", V2));
  await withImageFile(image(kernel, { appArgs: [`/${DATA_PATH}`, "64"] }).bytes, async (path) => {
    const run = await dhyve(["--timeout", "30s", path]);
    assert.equal(run.code, 0, describeRun(run));
    assert.equal(run.stdout, readReport(2, DATA, 64));
    assert.equal(run.stderr, "");
  });
});

kvmTest("image: an image file that collides with a --file-mapping exits 64", async () => {
  const kernel = await Deno.readFile(await buildGuest("read_virtual", V1));
  const host = await Deno.makeTempFile({ prefix: "dhyve-image-test-host-" });
  try {
    await withImageFile(image(kernel, { kernelArgs: [`/${DATA_PATH}`] }).bytes, async (path) => {
      assertOneErrorLine(
        await dhyve(["--file-mapping", `${host}:/${DATA_PATH}:ro`, path]),
        EXIT_CODE.USAGE,
        new RegExp(`/${DATA_PATH}`),
        /--file-mapping/,
      );
    });
  } finally {
    await Deno.remove(host);
  }
});

kvmTest("image: broken images exit 65 with one line", async () => {
  const kernel = await Deno.readFile(await buildGuest("noop", V1));
  const toml = (spec: HermitTomlSpec): string => hermitToml({ kernel: "app", ...spec });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "not gzip inside",
      Uint8Array.from([0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
      /not a usable Hermit image/,
    ],
    ["no hermit.toml", gzip(buildTar([{ name: "app", data: kernel }])), /hermit\.toml/],
    [
      "kernel missing",
      gzip(buildTar([{ name: "hermit.toml", data: toml({ kernel: "gone" }) }])),
      /"gone"/,
    ],
    [
      "version 2",
      gzip(buildTar([{ name: "hermit.toml", data: toml({ version: "2" }) }, {
        name: "app",
        data: kernel,
      }])),
      /version/,
    ],
    [
      "kernel not ELF",
      gzip(buildTar([{ name: "hermit.toml", data: toml({}) }, { name: "app", data: "text" }])),
      /not a usable Hermit kernel/,
    ],
    ["truncated", gzip(buildTar([{ name: "app", data: kernel }])).subarray(0, 200), /Hermit image/],
  ];
  for (const [what, bytes, mention] of cases) {
    await withImageFile(bytes, async (path) => {
      const run = await dhyve([path]);
      try {
        assertOneErrorLine(run, EXIT_CODE.BAD_KERNEL, mention);
      } catch (error) {
        throw new Error(`${what}: ${error instanceof Error ? error.message : error}`);
      }
    });
  }
});
