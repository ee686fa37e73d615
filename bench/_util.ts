/**
 * Helpers shared by the benchmarks: timing whole processes, medians, and
 * printing result tables. Benchmarks are run with `deno task bench`, never
 * as timed unit tests.
 * @module
 */

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Result of one timed process run. */
export interface ProcessRun {
  /** Wall time in milliseconds. */
  ms: number;
  /** Exit code. */
  code: number;
  /** Captured stdout. */
  stdout: string;
  /** Captured stderr. */
  stderr: string;
}

/** Runs a command to completion and times it (wall clock, spawn to exit). */
export async function timeProcess(cmd: string, args: readonly string[]): Promise<ProcessRun> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args: [...args], stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - t0;
  const dec = new TextDecoder();
  return { ms, code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `cmd` `n` times and returns the median wall time; throws if any run fails. */
export async function medianProcessMs(
  cmd: string,
  args: readonly string[],
  n: number,
  expectCode = 0,
): Promise<{ median: number; runs: number[] }> {
  const runs: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await timeProcess(cmd, args);
    if (r.code !== expectCode) {
      throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
    }
    runs.push(r.ms);
  }
  return { median: median(runs), runs };
}

/** Prints a table of rows (first row is the header) to stdout. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const enc = new TextEncoder();
  for (const r of rows) {
    const line = r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))
      .join("  ");
    Deno.stdout.writeSync(enc.encode(line + "\n"));
  }
}

/** One-line description of this machine for the results file. */
export function machineDescription(): string {
  let cpu = "unknown CPU";
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.+)/.exec(info)?.[1] ?? cpu;
  } catch {
    // not Linux, or no read permission
  }
  return `${cpu}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`;
}

/**
 * The 1-minute load average, or "?". Deno reads /proc only with --allow-all,
 * so `cat` reads it.
 */
export function loadAverage(): string {
  try {
    const out = new Deno.Command("cat", { args: ["/proc/loadavg"], stdout: "piped" })
      .outputSync();
    return new TextDecoder().decode(out.stdout).split(" ")[0] || "?";
  } catch {
    return "?";
  }
}

/** The SQLite caches in `DENO_DIR` that every `deno run` opens. */
const RUN_CACHES = ["dep_analysis_cache_v2", "node_analysis_cache_v2", "v8_code_cache_v2"];

/**
 * The sizes of the write-ahead logs of the SQLite caches in `DENO_DIR` that
 * every `deno run` opens, e.g. "dep_analysis_cache_v2 4.1 MB, …", or "?"
 * where they cannot be read. Why: with logs of a few MB a thread of every
 * Deno start spends ~2 ms rebuilding their index (docs/performance.md,
 * start-up, eighth pass), which on a 2-core machine competes with the run
 * being measured.
 */
export function denoCacheLogSizes(): string {
  try {
    const out = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
      .outputSync();
    const dir = (JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: string }).denoDir;
    if (dir === undefined) return "?";
    return RUN_CACHES.map((name) => {
      let size = 0;
      try {
        size = Deno.statSync(`${dir}/${name}-wal`).size;
      } catch {
        // no log: the cache is checkpointed, or not made yet
      }
      return `${name} ${(size / 1e6).toFixed(1)} MB`;
    }).join(", ");
  } catch {
    return "?";
  }
}
