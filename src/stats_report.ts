/**
 * `--stats`: turns the per-vCPU exit counters ({@linkcode VcpuStats}) into
 * uhyve's table (hermit-abi §7.2) or, for `--stats=json`, a plain object.
 * Pure and off the hot path: called once, after the run.
 * @module
 */

import { EXIT, exitName } from "./abi/kvm.ts";
import {
  buildHypercallTable,
  hypercallAt,
  type HypercallTable,
  MAX_HYPERCALL_PORT,
} from "./hypercall/table.ts";
import type { VcpuStats } from "./vcpu/stats.ts";

/** One kind of exit, counted over all vCPUs. */
export interface ExitRow {
  /** uhyve's name, e.g. `"Hypercall(V1(Uart))"`, `"PCIRead"`, `"Hlt"`. */
  readonly name: string;
  /** Sum over all vCPUs. */
  readonly total: number;
  /** Count per vCPU, in the order of {@linkcode exitRows}' sorted vCPUs (ascending id). */
  readonly perCpu: readonly number[];
}

let hypercalls: HypercallTable | undefined;

/** `Hypercall(V<n>(<Name>))` for each hypercall port, as uhyve's Debug output names it. */
function hypercallName(port: number): string {
  hypercalls ??= buildHypercallTable();
  const e = hypercallAt(hypercalls, port);
  return e === undefined
    ? `Hypercall(0x${port.toString(16)})`
    : `Hypercall(V${e.version}(${e.name}))`;
}

/** `SHUTDOWN` → `Shutdown`, `FAIL_ENTRY` → `FailEntry`. */
function pascal(name: string): string {
  return name.toLowerCase().replace(/(?:^|_)([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The exit counts of one vCPU by row name. */
function countsOf(s: VcpuStats): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (name: string, n: number): void => {
    if (n > 0) counts.set(name, (counts.get(name) ?? 0) + n);
  };
  let hypercallTotal = 0;
  const ports = Math.min(s.hypercalls.length, MAX_HYPERCALL_PORT);
  for (let port = 0; port < ports; port++) {
    const n = s.hypercalls[port]!;
    if (n > 0) {
      add(hypercallName(port), n);
      hypercallTotal += n;
    }
  }
  add("PCIRead", s.portReads);
  add("PCIWrite", s.portWrites);
  add("MMIORead", s.mmioReads);
  add("MMIOWrite", s.mmioWrites);
  add("Emulated", s.emulated);
  for (let reason = 0; reason < s.exits.length; reason++) {
    const n = s.exits[reason]!;
    if (n === 0) continue;
    switch (reason) {
      case EXIT.IO: // the rest: OUTs to unknown hypercall ports, which stopped the VM
        add("UnknownPortWrite", n - hypercallTotal - s.portReads - s.portWrites);
        break;
      case EXIT.MMIO:
        break;
      case EXIT.HLT:
        add("Hlt", n);
        break;
      case EXIT.DEBUG:
        add("Debug", n);
        break;
      case EXIT.INTERNAL_ERROR:
        add("InternalError", n - s.emulated);
        break;
      default: {
        const name = exitName(reason);
        add(name === undefined ? `Exit(${reason})` : pascal(name), n);
      }
    }
  }
  return counts;
}

/** The vCPUs ordered by id (a copy). */
function byCpu(stats: readonly VcpuStats[]): VcpuStats[] {
  return [...stats].sort((a, b) => a.cpu - b.cpu);
}

/**
 * The exit counts as rows, most frequent first (ties by name, so the order is
 * deterministic). Names follow uhyve's `VmExit` Debug output:
 * `Hypercall(V1(Uart))`, `Hypercall(V2(SerialWriteBuffer))`, … (names from
 * the hypercall table), `PCIRead` (any IN), `PCIWrite` (an OUT that is not a
 * hypercall), `MMIORead`/`MMIOWrite`, `Hlt`, `Debug`. dhyve adds `Emulated`
 * (instructions emulated in userspace), `InternalError`, `UnknownPortWrite`
 * and the other KVM exit reasons in PascalCase (`Shutdown`, `FailEntry`, …).
 * Rows with a zero total are left out; `perCpu` follows the vCPUs sorted by id.
 */
export function exitRows(stats: readonly VcpuStats[]): ExitRow[] {
  const cpus = byCpu(stats);
  const perCpu = cpus.map(countsOf);
  const names = new Set<string>();
  for (const counts of perCpu) for (const name of counts.keys()) names.add(name);
  const rows = [...names].map((name) => {
    const counts = perCpu.map((c) => c.get(name) ?? 0);
    return { name, total: counts.reduce((a, b) => a + b, 0), perCpu: counts };
  });
  rows.sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return rows;
}

/** The wall time one vCPU ran, in ms, or null if it never ran or never stopped. */
function runtimeOf(s: VcpuStats): number | null {
  return s.startedAt > 0 && s.stoppedAt >= s.startedAt ? s.stoppedAt - s.startedAt : null;
}

/**
 * A duration given in milliseconds, written like Rust's `Duration` Debug
 * output (uhyve's CPU runtimes): `"0ns"`, `"850ns"`, `"1.5µs"`,
 * `"12.345678ms"`, `"1.000000001s"`; rounded to whole nanoseconds.
 */
export function formatDuration(ms: number): string {
  const ns = Math.max(0, Math.round(ms * 1e6));
  const scaled = (unit: number, suffix: string): string => {
    const whole = Math.floor(ns / unit);
    const frac = ns - whole * unit;
    const digits = String(unit).length - 1;
    return frac === 0
      ? `${whole}${suffix}`
      : `${whole}.${String(frac).padStart(digits, "0").replace(/0+$/, "")}${suffix}`;
  };
  if (ns >= 1e9) return scaled(1e9, "s");
  if (ns >= 1e6) return scaled(1e6, "ms");
  if (ns >= 1e3) return scaled(1e3, "µs");
  return `${ns}ns`;
}

/** Options of {@linkcode formatStats}. */
export interface FormatStatsOptions {
  /** Time from dhyve's start to the guest's first instruction, in ms; adds a "Boot time" line. */
  readonly bootMs?: number;
  /** Time the guest ran, in ms; adds a "Run time" line. */
  readonly runMs?: number;
}

function ms(value: number): string {
  return `${value.toFixed(3)} ms`;
}

/**
 * The `--stats` report, laid out as uhyve 0.8 prints it: `Run statistics:`,
 * a `VM exits:` header with a `total` column and one `cpuN` column per vCPU,
 * one row per exit kind ({@linkcode exitRows}: most frequent first; a blank
 * cell for a zero count), then `CPU runtimes:` with one `  cpu N: <duration>`
 * line per vCPU that ran. Differences from uhyve: deterministic row order,
 * columns that widen for long names and big counts instead of overflowing, no
 * trailing spaces, and optional `Boot time`/`Run time` lines at the end. Ends
 * with a newline.
 */
export function formatStats(stats: readonly VcpuStats[], opts: FormatStatsOptions = {}): string {
  const cpus = byCpu(stats);
  const rows = exitRows(cpus);
  const nameWidth = Math.max(28, ...rows.map((r) => r.name.length + 1));
  const totalWidth = Math.max(6, ...rows.map((r) => String(r.total).length));
  const cpuWidth = Math.max(
    6,
    ...cpus.map((c) => `cpu${c.cpu}`.length),
    ...rows.flatMap((r) => r.perCpu.map((n) => String(n).length)),
  );
  const lines = ["Run statistics:"];
  let header = "VM exits:".padEnd(nameWidth + 3 + totalWidth - 5) + "total  ";
  for (const c of cpus) header += ` ${`cpu${c.cpu}`.padStart(cpuWidth)} `;
  lines.push(header.trimEnd());
  for (const row of rows) {
    let line = `  ${`${row.name}:`.padEnd(nameWidth)} ${String(row.total).padStart(totalWidth)}  `;
    for (const n of row.perCpu) {
      line += n === 0 ? " ".repeat(cpuWidth + 2) : ` ${String(n).padStart(cpuWidth)} `;
    }
    lines.push(line.trimEnd());
  }
  lines.push("CPU runtimes:");
  for (const c of cpus) {
    const runtime = runtimeOf(c);
    if (runtime !== null) lines.push(`  cpu ${c.cpu}: ${formatDuration(runtime)}`);
  }
  if (opts.bootMs !== undefined) {
    lines.push(`Boot time: ${ms(opts.bootMs)} (start to the first guest instruction)`);
  }
  if (opts.runMs !== undefined) lines.push(`Run time: ${ms(opts.runMs)}`);
  return `${lines.join("\n")}\n`;
}

/** The `--stats=json` document. */
export interface StatsJson {
  /** Time from dhyve's start to the guest's first instruction, in ms. */
  readonly bootMs: number;
  /** Time the guest ran, in ms. */
  readonly runMs: number;
  /** KVM exits over all vCPUs. */
  readonly totalExits: number;
  /** One entry per vCPU, by ascending id. */
  readonly cpus: readonly {
    /** The vCPU id. */
    readonly cpu: number;
    /** Its wall time from first entry to stop, in ms (null if it never ran). */
    readonly runtimeMs: number | null;
    /** Its KVM exits. */
    readonly exits: number;
  }[];
  /** {@linkcode exitRows}: `perCpu` follows `cpus`. */
  readonly exits: readonly ExitRow[];
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * The stats as a JSON-ready object for `--stats=json` (times rounded to the
 * microsecond): `{ bootMs, runMs, totalExits, cpus: [{ cpu, runtimeMs,
 * exits }], exits: [{ name, total, perCpu }] }`.
 */
export function statsJson(
  stats: readonly VcpuStats[],
  extra: { bootMs: number; runMs: number },
): StatsJson {
  const cpus = byCpu(stats);
  return {
    bootMs: round3(extra.bootMs),
    runMs: round3(extra.runMs),
    totalExits: cpus.reduce((n, c) => n + c.totalExits, 0),
    cpus: cpus.map((c) => {
      const runtime = runtimeOf(c);
      return {
        cpu: c.cpu,
        runtimeMs: runtime === null ? null : round3(runtime),
        exits: c.totalExits,
      };
    }),
    exits: exitRows(cpus),
  };
}
