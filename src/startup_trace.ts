/**
 * Start-up phase marks for `bench/startup.ts`: with `DHYVE_TRACE_STARTUP=1`
 * in the environment (and `--allow-env=DHYVE_TRACE_STARTUP`), each
 * {@linkcode traceMark} records the wall-clock time, and
 * {@linkcode printTrace} writes them all to stderr in one line at exit:
 * `dhyve-trace: origin=<ms since the epoch> NAME=<ms since origin> …`.
 * Off (the default) a mark is one boolean test; reading the variable costs
 * one permission query and never prompts.
 * @module
 */

const enabled = traceWanted();
const marks: string[] = [];

function traceWanted(): boolean {
  try {
    const variable = "DHYVE_TRACE_STARTUP";
    return Deno.permissions.querySync({ name: "env", variable }).state === "granted" &&
      Deno.env.get(variable) === "1";
  } catch {
    return false;
  }
}

/** Records that phase `name` ended now (no-op unless tracing is on). */
export function traceMark(name: string): void {
  if (enabled) marks.push(`${name}=${performance.now().toFixed(3)}`);
}

/** Writes the recorded marks to stderr (no-op unless tracing is on). */
export function printTrace(): void {
  if (!enabled) return;
  try {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `dhyve-trace: origin=${performance.timeOrigin.toFixed(3)} ${marks.join(" ")}\n`,
      ),
    );
  } catch {
    // stderr is gone
  }
}

traceMark("modules");
