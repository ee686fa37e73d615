/**
 * The dhyve command line: flags → parameters → {@linkcode runVm} → exit code.
 * Every error ends as one line on stderr and a documented exit code, never a
 * stack trace. `main.ts` runs it from the bundle `deno task build` makes of
 * this module and everything it loads (see `scripts/build.ts`).
 * @module
 */

import { printTrace, traceMark } from "./startup_trace.ts";
import { type CliRequest, parseCommandLineLoading } from "./cli.ts";
import { EXIT_CODE } from "./exit_codes.ts";
import { NullSink, type OutputSink } from "./io/guest_output.ts";
import { configureLogging, logger } from "./log.ts";
import { runVm, VmError } from "./vm.ts";
import { toVmError } from "./machine/errors.ts";
import { yieldTurnIfLoaded } from "./host/sleep.ts";
import { encodeUtf8 } from "./utf8.ts";

// The bundle is loaded and its modules evaluated (this module's body runs last).
traceMark("modules");

function printError(message: string): void {
  try {
    Deno.stderr.writeSync(encodeUtf8(`dhyve: error: ${message}\n`));
  } catch {
    // stderr is gone
  }
}

function print(text: string): void {
  const bytes = encodeUtf8(`${text}\n`);
  let at = 0;
  try {
    while (at < bytes.length) at += Deno.stdout.writeSync(bytes.subarray(at));
  } catch {
    // stdout is closed (`dhyve … | head`): there is no one left to read it
  }
}

/** `-o`: a new file (created exclusively, as uhyve), or "none". */
function openOutput(
  path: string | undefined,
): { sink: OutputSink; close(): void; discard(): void } | null {
  if (path === undefined) return null;
  if (path.toLowerCase() === "none") {
    return { sink: new NullSink(), close(): void {}, discard(): void {} };
  }
  try {
    const file = Deno.openSync(path, { write: true, createNew: true });
    return {
      sink: file,
      close: () => file.close(),
      discard(): void {
        try {
          Deno.removeSync(path);
        } catch {
          // Landlock or a permission may forbid it now: the empty file stays
        }
      },
    };
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new VmError(
        `The output file "${path}" already exists: remove it or choose another with -o`,
        EXIT_CODE.CANNOT_CREATE,
      );
    }
    if (error instanceof Deno.errors.NotCapable) {
      throw new VmError(
        `Deno may not create the output file "${path}": add --allow-write=${path}`,
        EXIT_CODE.PERMISSION,
      );
    }
    throw new VmError(
      `Cannot create the output file "${path}": ${error instanceof Error ? error.message : error}`,
      EXIT_CODE.CANNOT_CREATE,
    );
  }
}

/** Maps any error to one line on stderr and an exit code (the mapping is `toVmError`'s). */
function report(error: unknown): number {
  const known = toVmError(error);
  if (known !== null) {
    printError(known.message);
    return known.exitCode;
  }
  printError(
    `Internal error, please report it: ${
      error instanceof Error ? error.stack ?? error.message : error
    }`,
  );
  return EXIT_CODE.INTERNAL;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let request: CliRequest;
  try {
    request = await parseCommandLineLoading(argv);
  } catch (error) {
    return report(error);
  }
  traceMark("cli");
  if (request.kind === "info") {
    print(request.text);
    return 0;
  }
  const { kernel, params, verbosity } = request;
  configureLogging(
    verbosity < 0 ? "error" : verbosity === 0 ? "warning" : verbosity === 1 ? "info" : "debug",
  );
  const log = logger("cli");
  for (const w of request.warnings) log.warn(w);
  let output: ReturnType<typeof openOutput> = null;
  try {
    output = openOutput(request.output);
    const result = await runVm(
      kernel,
      output === null ? params : { ...params, stdout: output.sink, stderr: output.sink },
    );
    traceMark("teardown");
    if (result.error !== null) {
      printError(result.error);
      if (verbosity > 0 && result.errorDetail) {
        Deno.stderr.writeSync(encodeUtf8(`${result.errorDetail}\n`));
      }
    }
    const { formatStats, statsJson } = request.stats === false
      ? { formatStats: null, statsJson: null }
      : await import("./stats_report.ts");
    if (request.stats === "table" && formatStats !== null) {
      print(formatStats(result.stats, { bootMs: result.bootMs, runMs: result.runMs }).trimEnd());
    } else if (request.stats === "json" && statsJson !== null) {
      print(
        JSON.stringify(statsJson(result.stats, { bootMs: result.bootMs, runMs: result.runMs })),
      );
    }
    return result.exitCode;
  } catch (error) {
    // The guest never ran: remove the (empty) -o file, or a corrected retry hits "already exists".
    output?.close();
    output?.discard();
    output = null;
    return report(error);
  } finally {
    output?.close();
  }
}

/**
 * Runs the CLI with `argv` and exits the process with its code. `Deno.exit`,
 * not a natural end: a natural end waits for the event loop to wind down
 * (~6 ms more per run, measured). One event-loop turn comes first: Deno
 * stores the V8 code cache of the modules this run compiled afresh only in
 * such a turn, so a run that found the cache cold (another user, a new
 * `DENO_DIR`, no `deno task build`) leaves it warm for the next.
 */
export async function runCommandLine(argv: readonly string[]): Promise<never> {
  const code = await main(argv);
  traceMark("exit");
  printTrace();
  await yieldTurnIfLoaded();
  Deno.exit(code);
}
