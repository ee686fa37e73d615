/**
 * dhyve as a library, through `mod.ts` only: {@linkcode runVm} with
 * {@linkcode CaptureSink}s for the guest's stdout and stderr, the result's
 * exit codes, per-vCPU stats and times, a custom {@linkcode InputSource} as
 * the guest's stdin (v2 SerialReadBuffer and v1 FileRead on fd 0), and the
 * errors it throws: {@linkcode VmError} with its exit code for a bad kernel,
 * {@linkcode UsageError} for bad parameters. Needs /dev/kvm, `--allow-ffi`,
 * `--allow-read`, `--allow-write` (guest builds), `--allow-run` (gcc, deno)
 * and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import {
  CaptureSink,
  DEFAULT_MEMORY_SIZE,
  EXIT_CODE,
  guestExitStatus,
  type InputSource,
  KvmError,
  KvmUnavailableError,
  NullSink,
  parseEnvEntry,
  parseMemorySize,
  runVm,
  UsageError,
  VcpuStats,
  VERSION,
  VmError,
  type VmParams,
} from "../../mod.ts";
import { buildGuest, type GuestBuild, guestVariantName } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { describeRun, runDeno } from "../_helpers/cli.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { needsRootAnd } from "../_helpers/skip.ts";

const encoder = new TextEncoder();

const V1: GuestBuild = { iface: 1, pie: true };
const V2: GuestBuild = { iface: 2, pie: true };

/** An InputSource over `text` that hands out at most `piece` bytes per read, then EOF. */
class FakeStdin implements InputSource {
  readonly #bytes: Uint8Array;
  readonly #piece: number;
  #at = 0;
  reads = 0;

  constructor(text: string, piece: number) {
    this.#bytes = encoder.encode(text);
    this.#piece = piece;
  }

  readSync(p: Uint8Array): number | null {
    this.reads++;
    if (this.#at >= this.#bytes.length) return null;
    const n = Math.min(p.length, this.#piece, this.#bytes.length - this.#at);
    p.set(this.#bytes.subarray(this.#at, this.#at + n));
    this.#at += n;
    return n;
  }
}

kvmTest("mod.ts exports the library API", () => {
  assert.equal(typeof runVm, "function");
  assert.equal(EXIT_CODE.USAGE, 64);
  assert.equal(EXIT_CODE.BAD_KERNEL, 65);
  assert.equal(EXIT_CODE.NO_INPUT, 66);
  assert.equal(guestExitStatus(-1), 255);
  assert.equal(DEFAULT_MEMORY_SIZE, 64 << 20);
  assert.equal(parseMemorySize("32MiB"), 32 << 20);
  assert.deepEqual(parseEnvEntry("A=b=c"), ["A", "b=c"]);
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  assert.equal(new VcpuStats(3).cpu, 3);
  assert.equal(new NullSink().writeSync(new Uint8Array(5)), 5);
  assert.ok(new KvmUnavailableError("/dev/kvm", 2) instanceof Error);
  assert.equal(typeof KvmError, "function");
  const error = new VmError("x", 71);
  assert.equal(error.exitCode, 71);
  assert.equal(error.name, "VmError");
  assert.ok(new UsageError("y") instanceof TypeError);
});

kvmTest("deno doc --lint mod.ts passes (every export documented)", async () => {
  const out = await runDeno(["doc", "--lint", "mod.ts"]);
  assert.equal(out.code, 0, describeRun(out));
});

for (const variant of [V1, V2]) {
  const name = guestVariantName(variant);

  kvmTest(
    `runVm (${name}): guest output in CaptureSinks, stats and times in the result`,
    async () => {
      const stdout = new CaptureSink();
      const stderr = new CaptureSink();
      const result = await runVm(await buildGuest("hello", variant), { stdout, stderr });
      assert.equal(result.exitCode, 0);
      assert.equal(result.guestExitCode, 0);
      assert.equal(result.error, null);
      assert.equal(result.errorDetail, null);
      assert.equal(
        stdout.text(),
        `Hello from dhyve guest (v${variant.iface}, pie)!\nhello via fd 1\nhello via serial byte\n`,
      );
      assert.equal(stderr.text(), "hello via fd 2\n");
      assert.equal(result.stats.length, 1);
      const [stats] = result.stats as [VcpuStats];
      assert.ok(stats instanceof VcpuStats);
      assert.equal(stats.cpu, 0);
      assert.ok(stats.totalExits > 0);
      assert.ok(stats.stoppedAt >= stats.startedAt && stats.startedAt > 0);
      assert.ok(result.bootMs > 0, `bootMs ${result.bootMs}`);
      assert.ok(result.runMs > 0, `runMs ${result.runMs}`);
      assert.equal(result.kernel.interfaceVersion, variant.iface);
      assert.equal(result.kernel.kind, "pie");
    },
  );

  kvmTest(`runVm (${name}): args and env; the guest's exit code in the result`, async () => {
    const stdout = new CaptureSink();
    const result = await runVm(await buildGuest("exit_code", variant), {
      args: ["-1"],
      stdout,
    });
    assert.equal(result.guestExitCode, -1);
    assert.equal(result.exitCode, 255);
    const args = new CaptureSink();
    const run = await runVm(await buildGuest("args", variant), {
      args: ["a b"],
      env: [["K", "v"]],
      stdout: args,
    });
    assert.equal(run.exitCode, 0);
    assert.match(args.text(), /^env\[0\]=K=v$/m);
  });
}

kvmTest(
  "runVm: two vCPUs give two stats entries and the output still reaches the sinks",
  async () => {
    const stdout = new CaptureSink();
    const stderr = new CaptureSink();
    const result = await runVm(await buildGuest("hello", V2), { cpuCount: 2, stdout, stderr });
    assert.equal(result.exitCode, 0);
    assert.deepEqual(result.stats.map((s) => s.cpu).sort(), [0, 1]);
    assert.match(stdout.text(), /^Hello from dhyve guest \(v2, pie\)!$/m);
    assert.equal(stderr.text(), "hello via fd 2\n");
  },
);

kvmTest(
  "runVm: a NullSink discards the output; aslr: false and random pin the layout",
  async () => {
    const kernel = await buildGuest("hello", V1);
    let result = await runVm(kernel, {
      stdout: new NullSink(),
      stderr: new NullSink(),
      aslr: false,
    });
    assert.equal(result.exitCode, 0);
    assert.equal(result.layout.guestAddress, 0);
    result = await runVm(kernel, {
      stdout: new NullSink(),
      stderr: new NullSink(),
      random: () => 0.5,
    });
    assert.equal(result.exitCode, 0);
    assert.ok(result.layout.guestAddress > 0);
    assert.equal(result.layout.guestAddress % (2 << 20), 0);
  },
);

kvmTest("runVm: timeoutMs stops a spinning guest with exit 85 and an error line", async () => {
  const stdout = new CaptureSink();
  const result = await runVm(await buildGuest("spin", V1), { timeoutMs: 300, stdout });
  assert.equal(result.exitCode, EXIT_CODE.TIMEOUT);
  assert.equal(result.guestExitCode, null);
  assert.match(result.error ?? "", /timeout|300 ?ms/i);
  assert.equal(stdout.text(), "spin: spinning\n");
});

kvmTest("runVm: a custom InputSource is the guest's stdin (v2 SerialReadBuffer)", async () => {
  for (const piece of [1, 3, 64]) {
    const stdin = new FakeStdin("one\ntwo\nthree", piece);
    const stdout = new CaptureSink();
    const result = await runVm(await buildGuest("stdin_echo", V2), {
      stdin,
      stdout,
      timeoutMs: 20_000,
    });
    assert.equal(stdout.text(), "got: one\ngot: two\ngot: three\n", `piece ${piece}`);
    assert.equal(result.exitCode, 3);
    assert.ok(stdin.reads >= Math.ceil(13 / piece) + 1, `${stdin.reads} reads`);
  }
});

kvmTest("runVm: an InputSource that throws reads as end of input", async () => {
  const stdin: InputSource = {
    readSync(): number | null {
      throw new Error("broken input");
    },
  };
  const stdout = new CaptureSink();
  const result = await runVm(await buildGuest("stdin_echo", V2), { stdin, stdout });
  assert.equal(result.exitCode, 0);
  assert.equal(stdout.text(), "");
});

kvmTest("runVm: a custom InputSource is the guest's stdin (v1 FileRead on fd 0)", async () => {
  // In a child process whose real stdin says something else, so that a read of the
  // process's stdin instead of the InputSource shows, and cannot block this test.
  const kernel = await buildGuest("stdin_echo", V1);
  const code = `
    import { CaptureSink, runVm } from "./mod.ts";
    const bytes = new TextEncoder().encode("one\\ntwo\\n");
    let at = 0;
    const stdin = {
      readSync(p) {
        if (at >= bytes.length) return null;
        const n = Math.min(p.length, 3, bytes.length - at);
        p.set(bytes.subarray(at, at + n));
        at += n;
        return n;
      },
    };
    const stdout = new CaptureSink();
    const result = await runVm(Deno.args[0], { stdin, stdout, timeoutMs: 20000 });
    console.log(JSON.stringify({ exitCode: result.exitCode, out: stdout.text() }));
  `;
  const out = await runDeno(["eval", "--quiet", code, kernel], { stdin: "from the real stdin\n" });
  const stdout = out.stdout;
  assert.equal(out.code, 0, describeRun(out));
  assert.deepEqual(JSON.parse(stdout), { exitCode: 2, out: "got: one\ngot: two\n" });
});

kvmTest("runVm: a missing or bad kernel rejects with VmError and its exit code", async () => {
  const missing = `${REPO_ROOT}/.build/no-such-kernel-${crypto.randomUUID()}`;
  await assert.rejects(() => runVm(missing), (error: unknown) => {
    assert.ok(error instanceof VmError);
    assert.equal(error.exitCode, EXIT_CODE.NO_INPUT);
    assert.ok(error.message.includes(missing));
    return true;
  });
  const text = await Deno.makeTempFile({ prefix: "dhyve-library-test-" });
  try {
    await Deno.writeTextFile(text, "not a kernel at all, just text\n");
    await assert.rejects(() => runVm(text), (error: unknown) => {
      assert.ok(error instanceof VmError);
      assert.equal(error.exitCode, EXIT_CODE.BAD_KERNEL);
      return true;
    });
  } finally {
    await Deno.remove(text);
  }
});

kvmTest("runVm: no /dev/kvm rejects with VmError, exit code 69 (as documented)", async () => {
  // Hides /dev/kvm in a mount namespace (root only) around a child that calls runVm.
  const code = `
    import { runVm } from "./mod.ts";
    try {
      await runVm(Deno.args[0]);
      console.log(JSON.stringify({ ran: true }));
    } catch (error) {
      console.log(JSON.stringify({ name: error.name, exitCode: error.exitCode, message: error.message }));
    }
  `;
  const out = await runDeno(["eval", "--quiet", code, await buildGuest("noop", V1)], {
    prefix: ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /dev && exec "$@"', "sh"],
  });
  const text = out.stdout;
  assert.equal(out.code, 0, describeRun(out));
  const got = JSON.parse(text) as { name?: string; exitCode?: number; message?: string };
  assert.match(got.message ?? "", /\/dev\/kvm does not exist.*modprobe/);
  assert.equal(got.name, "VmError", text);
  assert.equal(got.exitCode, EXIT_CODE.KVM_UNAVAILABLE, text);
}, { skip: needsRootAnd("unshare", ["-m", "true"]) });

kvmTest("runVm: bad parameters reject with UsageError before anything runs", async () => {
  const kernel = await buildGuest("noop", V1);
  const cases: [VmParams, RegExp][] = [
    [{ memorySize: 8 << 20 }, /16 MiB/],
    [{ memorySize: 17 << 20 }, /multiple of 2 MiB/],
    [{ cpuCount: 0 }, /vCPU count/],
    [{ cpuCount: 1.5 }, /vCPU count/],
    [{ affinity: [0, 1] }, /one host CPU per vCPU/],
    [{ affinity: [navigator.hardwareConcurrency] }, /this host has CPUs/],
    [{ fileMappings: ["no-colon-here"] }, /./],
    [{ args: ["x".repeat(70_000)] }, /./],
  ];
  for (const [params, pattern] of cases) {
    await assert.rejects(() => runVm(kernel, params), (error: unknown) => {
      assert.ok(error instanceof UsageError, `${JSON.stringify(params).slice(0, 80)}: ${error}`);
      assert.match(error.message, pattern);
      return true;
    });
  }
});
