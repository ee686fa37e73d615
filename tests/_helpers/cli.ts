/**
 * Running dhyve's command line (or any `deno` subcommand) as a subprocess, the
 * way a user does, and the assertions the CLI tests share: one helper instead
 * of a hand-made `Deno.Command` per test file.
 * @module
 */

import assert from "node:assert/strict";
import { outputOf } from "./process.ts";
import { MAIN, REPO_ROOT } from "./repo.ts";

/** The permissions most runs need: KVM and reading the kernel. */
export const DEFAULT_PERMS: readonly string[] = ["--allow-ffi", "--allow-read"];

/** How to run a subprocess. */
export interface RunOptions {
  /** The working directory (default: the repository root). */
  cwd?: string;
  /**
   * Extra environment variables. With `cleanEnv` the rest of the environment
   * is cleared down to {@linkcode baseEnv}; otherwise it is inherited.
   */
  env?: Record<string, string>;
  /** Start from {@linkcode baseEnv} instead of the test's whole environment. */
  cleanEnv?: boolean;
  /** Text for the child's stdin (default: /dev/null). */
  stdin?: string;
  /** Leave stdin piped for the caller to write (interactive runs with {@linkcode spawnDhyve}). */
  pipeStdin?: boolean;
  /** A command prefix that runs deno, e.g. `["setpriv", "--reuid=65534", …]`. */
  prefix?: readonly string[];
  /** The deno binary (default: the one running the tests). */
  deno?: string;
  /** Kill the child when this fires (e.g. `AbortSignal.timeout(ms)`). */
  signal?: AbortSignal;
}

/** How to run `main.ts`: {@linkcode RunOptions} plus its Deno permissions. */
export interface DhyveOptions extends RunOptions {
  /** Deno permission flags (default {@linkcode DEFAULT_PERMS}). */
  perms?: readonly string[];
  /** The entry point (default: the repository's `main.ts`). */
  main?: string;
}

/** The outcome of one subprocess run. */
export interface CliRun {
  /** Exit code. */
  code: number;
  /** Everything the child wrote to stdout. */
  stdout: string;
  /** Everything the child wrote to stderr. */
  stderr: string;
  /** Wall time of the run in milliseconds. */
  ms: number;
}

/**
 * The environment a clean run starts from: only what Deno itself needs, with
 * Deno's cache pinned so that a run with another HOME does not start a cold one.
 */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  if (env.DENO_DIR === undefined) {
    const cache = env.XDG_CACHE_HOME ?? (env.HOME === undefined ? undefined : `${env.HOME}/.cache`);
    if (cache !== undefined) env.DENO_DIR = `${cache}/deno`;
  }
  return env;
}

/** A `Deno.Command` for `deno <args>` as `opts` say (stdout and stderr piped). */
export function denoCommand(args: readonly string[], opts: RunOptions = {}): Deno.Command {
  const deno = opts.deno ?? Deno.execPath();
  const [command, ...prefixArgs] = opts.prefix ?? [];
  return new Deno.Command(command ?? deno, {
    args: command === undefined ? [...args] : [...prefixArgs, deno, ...args],
    cwd: opts.cwd ?? REPO_ROOT,
    ...(opts.cleanEnv === true
      ? { clearEnv: true, env: { ...baseEnv(), ...opts.env } }
      : { env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...opts.env } }),
    stdin: opts.stdin === undefined && opts.pipeStdin !== true ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  });
}

/** Runs `deno <args>` to its end. */
export async function runDeno(args: readonly string[], opts: RunOptions = {}): Promise<CliRun> {
  const t0 = performance.now();
  const output = await outputOf(denoCommand(args, opts).spawn(), opts.stdin);
  return { ...output, ms: performance.now() - t0 };
}

/** The `deno run` arguments for `main.ts <args>` with `opts.perms`. */
export function dhyveArgs(args: readonly string[], opts: DhyveOptions = {}): string[] {
  return ["run", "--quiet", ...(opts.perms ?? DEFAULT_PERMS), opts.main ?? MAIN, ...args];
}

/** Runs `deno run --quiet <perms> main.ts <args>` to its end. */
export function runDhyve(args: readonly string[], opts: DhyveOptions = {}): Promise<CliRun> {
  return runDeno(dhyveArgs(args, opts), opts);
}

/** Starts `deno run --quiet <perms> main.ts <args>` (stdout and stderr piped). */
export function spawnDhyve(args: readonly string[], opts: DhyveOptions = {}): Deno.ChildProcess {
  return denoCommand(dhyveArgs(args, opts), opts).spawn();
}

/** The non-empty lines of `text`. */
export function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** A run's exit code, time and output, for assertion messages. */
export function describeRun(run: CliRun): string {
  return `exit ${run.code} after ${run.ms.toFixed(0)} ms\nstdout:\n${run.stdout}\n` +
    `stderr:\n${run.stderr}`;
}

/**
 * Asserts exit `code`, exactly one stderr line starting `dhyve: error: `,
 * no stack frames, nothing on stdout, and that the line matches `mentions`.
 * Returns the line.
 */
export function assertOneErrorLine(run: CliRun, code: number, ...mentions: RegExp[]): string {
  const context = describeRun(run);
  assert.equal(run.code, code, context);
  const errors = lines(run.stderr);
  assert.equal(errors.length, 1, `exactly one line on stderr\n${context}`);
  const [line] = errors as [string];
  assert.match(line, /^dhyve: error: \S/, context);
  assert.doesNotMatch(run.stderr, /\n\s+at /, `no stack frames\n${context}`);
  assert.equal(run.stdout, "", `nothing on stdout\n${context}`);
  for (const pattern of mentions) assert.match(line, pattern, context);
  return line;
}

/** Asserts a clean run: exit `code`, nothing on stderr. */
export function assertRan(run: CliRun, code: number): void {
  assert.equal(run.code, code, describeRun(run));
  assert.equal(run.stderr, "", describeRun(run));
}

/** The mark names of the `dhyve-trace:` line (`DHYVE_TRACE_STARTUP=1`) on `stderr`, in order. */
export function traceMarks(stderr: string): string[] {
  const line = stderr.split("\n").find((l) => l.startsWith("dhyve-trace:"));
  assert.ok(line !== undefined, `a trace line in:\n${stderr}`);
  return line.split(" ").slice(2).map((field) => field.split("=")[0]!);
}
