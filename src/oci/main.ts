/**
 * `dhyve-oci`: a runc-compatible OCI runtime that runs Hermit kernels under
 * dhyve. Every command goes to runc; on `create` and `run`, when the
 * container's program is a Hermit kernel, the bundle's `config.json` is first
 * rewritten so that the container's process is dhyve running it
 * (`rewrite.ts`). Other containers pass through unchanged. A problem is one
 * line on stderr and, with runc's `--log FILE`, one entry there in the format
 * `--log-format` asks for. This file is the shell: the runc child, signals,
 * exit codes; `prepare.ts` (loaded only when needed) reads and writes specs.
 * @module
 */

import { fileURLToPath } from "node:url";
import { EXIT_CODE } from "../exit_codes.ts";
import { OciError } from "./errors.ts";
import { executablesOnPath, isExecutable } from "./executables.ts";
import { parseRuncArgs, type RuncInvocation } from "./runc_cli.ts";
import { formatLogLine } from "./runtime_log.ts";

/** The environment variable naming the runc binary (like `--runc PATH`). */
export const RUNC_ENV = "DHYVE_OCI_RUNC";

const encoder = new TextEncoder();

/**
 * The runc binary: `--runc PATH`, else `$DHYVE_OCI_RUNC`, else the first
 * `runc` on `PATH`, then in the system directories, that is not dhyve-oci
 * itself.
 * @throws {OciError} (exit 69) when there is none.
 */
export function findRunc(invocation: RuncInvocation): string {
  const explicit = invocation.runcPath ?? Deno.env.get(RUNC_ENV);
  if (explicit !== undefined && explicit !== "") {
    if (!isExecutable(explicit)) {
      const from = invocation.runcPath !== undefined ? "--runc" : RUNC_ENV;
      throw new OciError(
        `The runc binary "${explicit}" (from ${from}) is not an executable file: ` +
          "give the path of runc",
        EXIT_CODE.KVM_UNAVAILABLE,
      );
    }
    return explicit;
  }
  let self = "";
  try {
    self = Deno.realPathSync(fileURLToPath(new URL("../../bin/dhyve-oci", import.meta.url)));
  } catch {
    // not installed from a checkout
  }
  // PATH, then the usual places (src/oci/executables.ts); not dhyve-oci itself, which an
  // engine may have been told to run as "runc".
  for (const found of executablesOnPath("runc", Deno.env.get("PATH"))) {
    if (found.real !== self) return found.path;
  }
  throw new OciError(
    "No runc found on PATH: install runc (apt-get install runc), or give its path with " +
      `--runc PATH or ${RUNC_ENV}`,
    EXIT_CODE.KVM_UNAVAILABLE,
  );
}

/** One line on stderr, and one entry in runc's log file when the engine gave one. */
function reportError(message: string, invocation: RuncInvocation | null): void {
  try {
    Deno.stderr.writeSync(encoder.encode(`dhyve-oci: error: ${message}\n`));
  } catch {
    // stderr is gone
  }
  if (invocation?.logFile === undefined) return;
  try {
    Deno.writeTextFileSync(
      invocation.logFile,
      formatLogLine(invocation.logFormat, {
        level: "error",
        msg: `dhyve-oci: ${message}`,
        time: new Date(),
      }),
      { append: true, create: true },
    );
  } catch {
    // the log is best effort; stderr has the line
  }
}

/** Signals passed on to runc while it runs (e.g. `runc run` in the foreground). */
const FORWARDED: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGWINCH",
];

/** Runs runc with `args`, stdio inherited, and returns its exit status (128 + signal when killed). */
async function runRunc(runc: string, args: readonly string[]): Promise<number> {
  const child = new Deno.Command(runc, {
    args: [...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const listeners = FORWARDED.map((signal) => {
    const listener = (): void => {
      try {
        child.kill(signal);
      } catch {
        // runc has exited
      }
    };
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  try {
    const status = await child.status;
    if (status.signal !== null) return 128 + (signalNumber(status.signal) ?? 0);
    return status.code;
  } finally {
    for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/** Linux signal numbers of the signals a runc child may die from. */
function signalNumber(signal: Deno.Signal): number | null {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGUSR1: 10,
    SIGSEGV: 11,
    SIGUSR2: 12,
    SIGPIPE: 13,
    SIGALRM: 14,
    SIGTERM: 15,
  };
  return numbers[signal] ?? null;
}

/** Runs dhyve-oci with `argv` and returns its exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let invocation: RuncInvocation | null = null;
  try {
    invocation = parseRuncArgs(argv);
    const runc = findRunc(invocation);
    if (invocation.bundle !== undefined || invocation.command === "exec") {
      const { prepareBundle, prepareExec } = await import("./prepare.ts");
      if (invocation.bundle !== undefined) await prepareBundle(invocation.bundle);
      else await prepareExec(runc, invocation);
    }
    return await runRunc(runc, invocation.runcArgs);
  } catch (error) {
    if (error instanceof OciError) {
      reportError(error.message, invocation);
      return error.exitCode;
    }
    reportError(
      `Internal error, please report it: ${
        error instanceof Error ? error.stack ?? error.message : error
      }`,
      invocation,
    );
    return EXIT_CODE.INTERNAL;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
