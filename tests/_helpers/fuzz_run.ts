/**
 * One run of the fuzz guest (`tests/guests/fuzz.c`) through `main.ts` as a
 * subprocess, and the checks every run must pass: the host ends with a
 * documented exit code (0, 82 or 85), never 70 or a signal, with at most one
 * error line and no stack trace; nothing outside the map changes and the
 * per-VM temp dir is gone. Shared by `tests/kvm/fuzz_test.ts` (CI) and
 * `scripts/fuzz.ts` (`deno task fuzz`, the long run). Needs `--allow-run`
 * (deno), `--allow-read` and `--allow-write`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { denoCommand, dhyveArgs } from "./cli.ts";

const decoder = new TextDecoder();

/** Exit codes a fuzz run may end with. */
export const FUZZ_ALLOWED_EXITS: ReadonlySet<number> = new Set<number>([
  0,
  EXIT_CODE.GUEST_PROTOCOL,
  EXIT_CODE.TIMEOUT,
]);

/** The fuzz guest's port sets: uhyve 0.8's calls, or those plus uhyve 0.9's four. */
export type FuzzPorts = "base" | "v3";

const SECRET = "secret outside the map\n";

/** A directory tree for fuzz runs: a map target, a secret outside it, a temp parent. */
export class FuzzSandbox {
  /** Parent of `data` (mapped at /root/data) and `other` (holds the secret). */
  readonly root: string = Deno.makeTempDirSync({ prefix: "dhyve-fuzz-" });
  /** `--tempdir` of every run; must be empty after each. */
  readonly tempParent: string = Deno.makeTempDirSync({ prefix: "dhyve-fuzz-tmp-" });
  readonly #secretMtime: number | undefined;

  /** Makes the tree: `other/secret.txt` outside the map. */
  constructor() {
    Deno.mkdirSync(this.other);
    Deno.writeTextFileSync(`${this.other}/secret.txt`, SECRET);
    this.#secretMtime = Deno.statSync(`${this.other}/secret.txt`).mtime?.getTime();
  }

  /** The mapped directory (fresh for each run). */
  get data(): string {
    return `${this.root}/data`;
  }

  /** The directory outside the map. */
  get other(): string {
    return `${this.root}/other`;
  }

  /** A fresh mapped directory with a file and two symlinks that lead out of the map. */
  prepare(): void {
    Deno.mkdirSync(this.data);
    Deno.writeTextFileSync(`${this.data}/hello.txt`, "hello\n");
    Deno.symlinkSync(`${this.other}/secret.txt`, `${this.data}/escape`);
    Deno.symlinkSync(this.other, `${this.data}/outdir`);
  }

  /** Asserts nothing outside the map changed and no temp dir is left; removes `data`. */
  checkAndClean(context: string): void {
    assert.equal(Deno.readTextFileSync(`${this.other}/secret.txt`), SECRET, context);
    assert.equal(Deno.statSync(`${this.other}/secret.txt`).mtime?.getTime(), this.#secretMtime);
    assert.deepEqual(names(this.other), ["secret.txt"], `created outside the map: ${context}`);
    assert.deepEqual(names(this.root), ["data", "other"], `created next to the map: ${context}`);
    assert.deepEqual(names(this.tempParent), [], `temp dir left behind: ${context}`);
    Deno.removeSync(this.data, { recursive: true });
  }

  /** Removes everything. */
  dispose(): void {
    Deno.removeSync(this.root, { recursive: true });
    Deno.removeSync(this.tempParent, { recursive: true });
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** What one run did. */
export interface FuzzRunResult {
  /** dhyve's exit status. */
  code: number;
  /** Whether the guest got through all its calls (exit 0). */
  completed: boolean;
  /** Port of each hypercall the guest made, by call index (from its markers). */
  calls: Map<number, number>;
  /** A one-line description for assertion messages. */
  context: string;
}

/**
 * Runs the fuzz guest `kernel` for one seed under minimal Deno permissions,
 * Landlock `normal`, `--no-aslr` and a 20 s timeout, and asserts that the
 * host survived it (see the module doc).
 */
export async function fuzzRun(
  kernel: string,
  sandbox: FuzzSandbox,
  run: { seed: number; calls: number; ports: FuzzPorts; label: string },
): Promise<FuzzRunResult> {
  sandbox.prepare();
  const { data, tempParent } = sandbox;
  const output = await denoCommand(
    dhyveArgs([
      "--file-mapping",
      `${data}:/root/data`,
      "--tempdir",
      tempParent,
      "--file-isolation",
      "normal",
      "--no-aslr",
      "--timeout",
      "20s",
      kernel,
      "--",
      String(run.seed),
      String(run.calls),
      run.ports,
    ], {
      perms: [
        "--allow-ffi",
        `--allow-read=${kernel},${data},${tempParent}`,
        `--allow-write=${data},${tempParent}`,
      ],
    }),
  ).output();
  const stdout = decoder.decode(output.stdout);
  const stderr = decoder.decode(output.stderr);
  const context = `${run.label} seed ${run.seed}: exit ${output.code} (signal ${output.signal})\n` +
    `stderr:\n${stderr.slice(0, 4000)}`;
  assert.equal(output.signal, null, `the host died of a signal: ${context}`);
  assert.ok(FUZZ_ALLOWED_EXITS.has(output.code), `unexpected exit code: ${context}`);
  assert.doesNotMatch(stderr, /\n\s+at /, `a stack trace: ${context}`);
  assert.doesNotMatch(stderr, /Internal error/, context);
  // Guest fd 2 output shares stderr and may leave a line unfinished: count anywhere.
  const errors = stderr.split("dhyve: error: ").length - 1;
  assert.equal(errors, output.code === 0 ? 0 : 1, `error lines: ${context}`);
  // A guest write may echo an old marker: keyed by index, each call counts once.
  const calls = new Map<number, number>();
  for (const m of stdout.matchAll(/@fuzz:(\d+):([0-9a-f]+)@/g)) {
    calls.set(Number(m[1]), parseInt(m[2]!, 16));
  }
  const completed = output.code === 0;
  if (completed) {
    assert.match(stdout, new RegExp(`fuzz: done ${run.calls} calls`), context);
    assert.equal(calls.size, run.calls, context);
  }
  sandbox.checkAndClean(context);
  return { code: output.code, completed, calls, context };
}
