/**
 * uhyve's Rust sample kernels (hermit-abi.md §9) with dhyve's SSE emulation:
 * on kvm_pvm every SSE instruction fails in KVM's instruction emulator and is
 * run in userspace; on other hosts the CPU runs them. hello_world must print
 * its greeting and exit 0; rusty_demo must get through its start-up, math and
 * file checks (the π, matrix and Laplace benchmarks after that take minutes
 * when emulated, so the run is cut at a time limit). The kernels come from
 * `HERMIT_IMAGES` and are never copied into the repository. Needs /dev/kvm,
 * `--allow-ffi`, `--allow-read` and `--allow-env=HERMIT_IMAGES`.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path/posix";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink } from "../../src/io/guest_output.ts";
import { runVm, type VmResult } from "../../src/vm.ts";
import { kvmTest } from "../_helpers/kvm.ts";

function imagesDir(): string | null {
  const env = Deno.permissions.querySync({ name: "env", variable: "HERMIT_IMAGES" });
  const dir = env.state === "granted" ? Deno.env.get("HERMIT_IMAGES") : undefined;
  return dir === undefined || dir === "" ? null : dir;
}

function kernelPath(name: string): string | null {
  const dir = imagesDir();
  if (dir === null) return null;
  try {
    return Deno.statSync(join(dir, name)).isFile ? join(dir, name) : null;
  } catch {
    return null;
  }
}

function hermitTest(name: string, title: string, fn: (kernel: string) => Promise<void>): void {
  const kernel = kernelPath(name);
  if (kernel === null) {
    // deno-lint-ignore no-console
    console.error(`SKIP: ${name} not found (set HERMIT_IMAGES): "${title}" skipped`);
    Deno.test({ name: title, ignore: true, fn(): void {} });
    return;
  }
  kvmTest(title, () => fn(kernel));
}

/**
 * Hermit 0.6.9 walks its envp array up to a NULL it never writes (§5.6); with
 * four or more entries the array comes from fresh (zeroed) heap, with fewer
 * it reuses a freed block and init_environment() takes a #GP.
 */
const ENV: [string, string][] = [["A", "1"], ["B", "2"], ["C", "3"], ["D", "4"]];

async function boot(
  kernel: string,
  timeoutMs: number,
): Promise<{ result: VmResult; out: string; context: string }> {
  const out = new CaptureSink();
  const err = new CaptureSink();
  const result = await runVm(kernel, {
    fileIsolation: "none",
    env: ENV,
    random: () => 0.5,
    timeoutMs,
    stdout: out,
    stderr: err,
  });
  const text = out.text() + err.text();
  return {
    result,
    out: text,
    context: `error: ${result.error}\nstdout:\n${out.text()}\nstderr:\n${err.text()}`,
  };
}

hermitTest(
  "hello_world",
  "runVm() runs Hermit's hello_world to exit 0, emulating its SSE where KVM cannot",
  async (kernel) => {
    const run = await boot(kernel, 60_000);
    assert.equal(run.result.error, null, run.context);
    assert.equal(run.result.exitCode, 0, run.context);
    assert.match(run.out, /^Hello, world!$/m, run.context);
  },
);

hermitTest(
  "rusty_demo",
  "runVm() runs Hermit's rusty_demo through start-up, math and files (then a time limit)",
  async (kernel) => {
    const run = await boot(kernel, 25_000);
    // A fast host finishes (exit 0); an emulating one is stopped in the benchmarks.
    assert.ok(
      run.result.exitCode === 0 || run.result.exitCode === EXIT_CODE.TIMEOUT,
      run.context,
    );
    for (
      const line of [
        "Hello, Hermit! 🦀",
        "x = 6.283185307179586",
        "e^x = 535.4916555247646",
        "ln(e^x) = 6.283185307179586",
        "/tmp/hello.txt  : writing, reading",
        "Calculating Pi (Sequential): ",
      ]
    ) {
      assert.ok(run.out.includes(line), `${line}\n${run.context}`);
    }
  },
);
