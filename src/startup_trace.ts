/**
 * Start-up phase marks for `bench/startup.ts`: with `DHYVE_TRACE_STARTUP=1`
 * in the environment (and `--allow-env=DHYVE_TRACE_STARTUP`), each
 * {@linkcode traceMark} records the wall-clock time, and
 * {@linkcode printTrace} writes them all to stderr in one line at exit:
 * `dhyve-trace: origin=<ms since the epoch> NAME=<ms since origin> …`.
 * With `DHYVE_TRACE_STARTUP=rss` each mark also records the resident set
 * size and V8 heap in use then (`NAME=<ms>/<RSS KiB>/<heap KiB>`, from
 * `Deno.memoryUsage()`) and, where Deno may read `/proc/self/status` (it
 * asks for `--allow-all`), the private (anonymous) and file-backed parts of
 * the RSS (`…/<anon KiB>/<file KiB>`); this adds a little time to each
 * mark. Off (the default) a mark is one boolean test; reading the variable
 * costs one permission query and never prompts.
 * @module
 */

import { grantedEnvVar } from "./env_var.ts";

const mode = traceMode();
const enabled = mode !== null;
const marks: string[] = [];

function traceMode(): "1" | "rss" | null {
  const value = grantedEnvVar("DHYVE_TRACE_STARTUP");
  return value === "1" || value === "rss" ? value : null;
}

/** Whether /proc/self/status can be read (Deno wants `--allow-all` for it); tried once. */
let statusReadable = true;

/** "<resident KiB>/<V8 heap used KiB>[/<anonymous KiB>/<file-backed KiB>]". */
function memory(): string {
  const { rss, heapUsed } = Deno.memoryUsage();
  return `${Math.round(rss / 1024)}/${Math.round(heapUsed / 1024)}${rssSplit()}`;
}

/** "/<RssAnon KiB>/<RssFile KiB>" from /proc/self/status, or "" where Deno may not read it. */
function rssSplit(): string {
  if (!statusReadable) return "";
  let status: string;
  try {
    status = Deno.readTextFileSync("/proc/self/status");
  } catch {
    statusReadable = false;
    return "";
  }
  const kib = (name: string): number =>
    Number.parseInt(/^\w+:\s+(\d+)/m.exec(status.slice(status.indexOf(`${name}:`)))?.[1] ?? "", 10);
  return `/${kib("RssAnon")}/${kib("RssFile")}`;
}

/** Records that phase `name` ended now (no-op unless tracing is on). */
export function traceMark(name: string): void {
  if (!enabled) return;
  const at = performance.now().toFixed(3);
  marks.push(mode === "rss" ? `${name}=${at}/${memory()}` : `${name}=${at}`);
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
