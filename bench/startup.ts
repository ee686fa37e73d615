/**
 * dhyve's start-up, phase by phase, next to the C floor (`bench/c_floor/floor.c`)
 * and a bare `deno run`, and its memory: whole processes, interleaved (bare
 * Deno, dhyve 64 MiB, dhyve 4 GiB, floor 64 MiB, floor 4 GiB, dhyve serial
 * loops of 1 000, 20 000 and 100 000 exits in every round), so a busy machine slows
 * all alike. Phases come from `DHYVE_TRACE_STARTUP=1` (see
 * `src/startup_trace.ts`) and `floor -T`: wall-clock marks measured from the
 * moment the process was spawned. With HERMIT_IMAGES set it also times
 * uhyve's `hello_c` against the floor.
 *
 * Run alone: `deno run --allow-ffi --allow-read --allow-write --allow-run --allow-env
 * bench/startup.ts` (part of `deno task bench`); `STARTUP_RUNS=N` sets the rounds (10).
 * `STARTUP_BASELINE=DIR` (another dhyve checkout, built) adds its noop runs to every
 * round, so that a before/after comparison sees the same host: whole runs of the
 * benchmark minutes apart do not (the host's speed drifts by half).
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest } from "../tests/_helpers/guests.ts";
import {
  denoCacheLogSizes,
  loadAverage as load,
  machineDescription,
  median,
  printTable,
} from "./_util.ts";
import { buildFloor } from "./kvm_floor.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;
const emptyTs = `${root}bench/_empty.ts`;
const emptyStatusTs = `${root}bench/_empty_status.ts`;
const TRACE_ENV = { DHYVE_TRACE_STARTUP: "1" };
const dec = new TextDecoder();
const FEW_EXITS = 1_000;
const MANY_EXITS = 20_000;
/** Past the warm-up (JIT, the binary's code paged in, new threads' malloc arenas). */
const MOST_EXITS = 100_000;

/** dhyve's phases: the mark that ends each, in order (see main.ts and vm.ts). */
const DHYVE_PHASES = [
  ["process start to Deno's runtime (timeOrigin)", "origin"],
  ["the KVM layer's modules load (main.ts's first step)", "kvmlayer"],
  ["KVM: the VM and its irqchip, made early (src/machine/early_vm.ts)", "early"],
  ["the rest of the modules load and run their top level", "modules"],
  ["CLI (flags, config, permissions)", "cli"],
  ["logging, -o, up to runVm", "runvm"],
  ["options; the VM's options (PIT, --cpu-pm, x2APIC)", "vm"],
  ["kernel read and parse", "kernel"],
  ["KVM set-up (guest RAM on the host; floor: VM, RAM, irqchip)", "kvm"],
  ["kernel in RAM, vCPUs, boot state, Landlock", "boot"],
  ["run loop ready (signals, tick timer, the RAM slot)", "loop"],
  ["first KVM_RUN to the guest's exit", "guest"],
  ["tear-down (VM, RAM, temp dir)", "teardown"],
  ["statistics, exit code", "exit"],
  ["process exit", "end"],
] as const;

/** The floor's marks for the same phases (null: the floor has no such phase). */
const FLOOR_MARK: Record<string, string | null> = {
  origin: "origin",
  kvmlayer: null,
  early: null,
  modules: null,
  cli: null,
  runvm: null,
  vm: null,
  kernel: "kernel",
  kvm: "kvm",
  boot: "boot",
  loop: null,
  guest: "guest",
  teardown: null,
  exit: "exit",
  end: "end",
};

/** One timed process run. */
interface Measured {
  /** Wall time, spawn to exit, in ms (runstat's fork included, as for every row). */
  ms: number;
  /** When it was spawned, in ms since the epoch (as `performance.timeOrigin`). */
  spawnedAt: number;
  /** User + system CPU time of the process and its threads, in ms. */
  cpuMs: number;
  /** Peak resident set size in KiB. */
  rssKiB: number;
  /** Exit code. */
  code: number;
  /** Captured stderr. */
  stderr: string;
}

/** Builds `bench/c_floor/runstat.c` next to the floor; returns its path. */
async function buildRunstat(floor: string): Promise<string> {
  const out = floor.replace(/floor$/, "runstat");
  const gcc = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-Wextra", "-o", out, `${root}bench/c_floor/runstat.c`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!gcc.success) throw new Error(`Cannot build runstat: ${dec.decode(gcc.stderr)}`);
  return out;
}

/** Runs `cmd args` under runstat (stdout discarded); throws unless it exits with `expect`. */
async function measure(
  runstat: string,
  cmd: string,
  args: readonly string[],
  expect: number | null = 0,
  env: Record<string, string> = TRACE_ENV,
): Promise<Measured> {
  const command = new Deno.Command(runstat, {
    args: [cmd, ...args],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const t0 = performance.now();
  const out = await command.output();
  const ms = performance.now() - t0;
  const stderr = dec.decode(out.stderr);
  const stat = /runstat: wall_us=\d+ cpu_us=(\d+) maxrss_kib=(\d+)/.exec(stderr);
  if (stat === null || (expect !== null && out.code !== expect)) {
    throw new Error(`${cmd} ${args.join(" ")} exited with ${out.code}: ${stderr.trim()}`);
  }
  return {
    ms,
    spawnedAt: performance.timeOrigin + t0,
    cpuMs: Number(stat[1]) / 1000,
    rssKiB: Number(stat[2]),
    code: out.code,
    stderr,
  };
}

/** Parses a `dhyve-trace:`/`floor-trace:` line into mark → ms after spawn (plus "end"). */
function marks(m: Measured, prefix: string): Map<string, number> {
  const line = m.stderr.split("\n").find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no "${prefix}" line in: ${m.stderr.trim()}`);
  const fields = new Map(
    line.slice(prefix.length).trim().split(" ").map((f) => {
      const [k, v] = f.split("=");
      return [k!, Number(v)] as const;
    }),
  );
  const origin = fields.get("origin")! - m.spawnedAt;
  const out = new Map<string, number>([["origin", origin]]);
  for (const [k, v] of fields) if (k !== "origin") out.set(k, origin + v);
  out.set("end", m.ms);
  return out;
}

/**
 * Each phase's duration (from the previous present mark to this one),
 * summarized over the runs by `pick` (median, or min: the run least
 * disturbed by other load).
 */
function phaseDurations(
  runs: readonly Map<string, number>[],
  order: readonly (string | null)[],
  pick: (values: number[]) => number = median,
): (number | null)[] {
  return order.map((mark, i) => {
    if (mark === null) return null;
    const before = order.slice(0, i).findLast((m) => m !== null);
    return pick(runs.map((r) => r.get(mark)! - (before === undefined ? 0 : r.get(before)!)));
  });
}

/** Memory at one mark, KiB: RSS, V8 heap in use, and RSS's anonymous and file-backed parts. */
interface MemoryAt {
  rss: number;
  heap: number;
  anon: number;
  file: number;
}

/**
 * Parses a `DHYVE_TRACE_STARTUP=rss` line: each mark's resident set size,
 * V8 heap in use, and RSS's anonymous and file-backed parts then (KiB), as
 * `name=<ms>/<rss>/<heap>/<anon>/<file>` (the last two NaN when absent).
 */
function memoryMarks(m: Measured): Map<string, MemoryAt> {
  const line = m.stderr.split("\n").find((l) => l.startsWith("dhyve-trace:"));
  if (line === undefined) throw new Error(`no trace line in: ${m.stderr.trim()}`);
  const out = new Map<string, MemoryAt>();
  for (const field of line.slice("dhyve-trace:".length).trim().split(" ")) {
    const [name, value] = field.split("=");
    const [, rss, heap, anon, file] = (value ?? "").split("/");
    if (name !== "origin" && rss !== undefined && heap !== undefined) {
      out.set(name!, {
        rss: Number(rss),
        heap: Number(heap),
        anon: Number(anon),
        file: Number(file),
      });
    }
  }
  return out;
}

const least = (values: number[]): number => Math.min(...values);

const ms = (v: number | null): string => (v === null ? "" : v.toFixed(1));
const mib = (kib: number): string => (kib / 1024).toFixed(1);

/** Runs the start-up rounds and prints the phase, total and memory tables. */
export async function startupBenchmark(runs = 10): Promise<void> {
  const enc = new TextEncoder();
  const say = (text: string): void => void Deno.stdout.writeSync(enc.encode(text));
  const deno = Deno.execPath();
  const floor = await buildFloor();
  const runstat = await buildRunstat(floor);
  const noop = await buildGuest("noop", { iface: 2, pie: true });
  const loop = await buildGuest("serial_loop", { iface: 2, pie: true });
  const dhyveAt = (main: string, size: string, kernel: string, ...args: string[]): string[] => [
    "run",
    "--allow-ffi",
    "--allow-read",
    "--allow-env=DHYVE_TRACE_STARTUP",
    main,
    "-m",
    size,
    kernel,
    ...args,
  ];
  const dhyve = (size: string, kernel: string, ...args: string[]): string[] =>
    dhyveAt(mainTs, size, kernel, ...args);
  const baseline = Deno.env.get("STARTUP_BASELINE");
  const baselineMain = baseline ? `${baseline.replace(/\/+$/, "")}/main.ts` : null;
  const specs = [
    { name: "bare deno run (empty script)", cmd: deno, args: ["run", emptyTs] },
    { name: "dhyve noop, 64 MiB", cmd: deno, args: dhyve("64MiB", noop), trace: "dhyve-trace:" },
    { name: "dhyve noop, 4 GiB", cmd: deno, args: dhyve("4GiB", noop), trace: "dhyve-trace:" },
    { name: "C floor noop, 64 MiB", cmd: floor, args: ["-T", "-m", "64", noop], trace: "floor" },
    { name: "C floor noop, 4 GiB", cmd: floor, args: ["-T", "-m", "4096", noop], trace: "floor" },
    {
      name: `dhyve serial_loop, ${FEW_EXITS} exits`,
      cmd: deno,
      args: dhyve("64MiB", loop, String(FEW_EXITS)),
    },
    {
      name: `dhyve serial_loop, ${MANY_EXITS} exits`,
      cmd: deno,
      args: dhyve("64MiB", loop, String(MANY_EXITS)),
    },
    {
      name: `dhyve serial_loop, ${MOST_EXITS} exits`,
      cmd: deno,
      args: dhyve("64MiB", loop, String(MOST_EXITS)),
    },
    // Indices 8 and 9: the baseline's noop runs, in the same rounds.
    ...(baselineMain === null ? [] : [
      {
        name: "baseline dhyve noop, 64 MiB",
        cmd: deno,
        args: dhyveAt(baselineMain, "64MiB", noop),
      },
      {
        name: "baseline dhyve noop, 4 GiB",
        cmd: deno,
        args: dhyveAt(baselineMain, "4GiB", noop),
      },
    ]),
  ];
  const loadBefore = load();
  const results: Measured[][] = specs.map(() => []);
  // Each baseline run next to the same run of this tree, first in every other round: what a
  // run follows (bare Deno, the long serial_loop runs, a VM's tear-down) must not favour either.
  const order = (round: number): number[] =>
    baselineMain === null
      ? specs.map((_, j) => j)
      : round % 2 === 0
      ? [0, 1, 8, 2, 9, 3, 4, 5, 6, 7]
      : [0, 8, 1, 9, 2, 3, 4, 5, 6, 7];
  for (let i = 0; i < runs; i++) {
    for (const j of order(i)) {
      const s = specs[j]!;
      results[j]!.push(await measure(runstat, s.cmd, s.args));
    }
  }
  const trace = (j: number, prefix: string): Map<string, number>[] =>
    results[j]!.map((m) => marks(m, prefix));
  const dhyveOrder = DHYVE_PHASES.map(([, mark]) => mark);
  const floorOrder = dhyveOrder.map((mark) => FLOOR_MARK[mark] ?? null);
  const d64 = trace(1, "dhyve-trace:");
  const d4g = trace(2, "dhyve-trace:");
  const f64 = trace(3, "floor-trace:");
  const f4g = trace(4, "floor-trace:");
  const phases = [d64, d4g].map((r) => phaseDurations(r, dhyveOrder));
  const floorPhases = [f64, f4g].map((r) => phaseDurations(r, floorOrder));
  const phasesMin = phaseDurations(d64, dhyveOrder, least);
  const floorMin = phaseDurations(f64, floorOrder, least);

  say(`start-up phases (bench/startup.ts): ${new Date().toISOString()}\n`);
  say(`machine: ${machineDescription()}; load ${loadBefore} -> ${load()}; ${runs} rounds\n`);
  say(`Deno's cache write-ahead logs: ${denoCacheLogSizes()}\n`);
  printTable([
    [
      "phase, ms (noop v2 PIE; median, and min of the rounds)",
      "dhyve 64M",
      "min",
      "floor 64M",
      "min",
      "dhyve 4G",
      "floor 4G",
    ],
    ...DHYVE_PHASES.map(([name], i) => [
      name,
      ms(phases[0]![i]!),
      ms(phasesMin[i]!),
      ms(floorPhases[0]![i]!),
      ms(floorMin[i]!),
      ms(phases[1]![i]!),
      ms(floorPhases[1]![i]!),
    ]),
  ]);

  const wall = results.map((r) => median(r.map((m) => m.ms)));
  const wallMin = results.map((r) => least(r.map((m) => m.ms)));
  const cpu = results.map((r) => median(r.map((m) => m.cpuMs)));
  const rss = results.map((r) => median(r.map((m) => m.rssKiB)));
  // To the first KVM_RUN: dhyve's "loop" mark (its run loop set up and the RAM slot set; the
  // floor's "boot" mark is the same moment).
  const inProcess = (r: Map<string, number>[], from: string, to: string): number =>
    median(r.map((m) => m.get(to)! - m.get(from)!));
  say("\n");
  printTable([
    ["whole process (median; min)", "wall ms", "min", "CPU ms", "peak RSS MiB"],
    ...specs.map((s, j) => [s.name, ms(wall[j]!), ms(wallMin[j]!), ms(cpu[j]!), mib(rss[j]!)]),
  ]);
  // The goal rows of one tree: its noop runs at 64 MiB and 4 GiB are specs i64 and i4g.
  const goalRows = (label: string, i64: number, i4g: number, ours: boolean): string[][] => {
    const floorOf = (r: Map<string, number>[]): string =>
      ours ? ` / ${ms(inProcess(r, "origin", "boot"))}` : "";
    const target = (goal: string): string => (ours ? goal : "");
    return [
      [
        `${label}dhyve - bare deno, wall ms (median)`,
        ms(wall[i64]! - wall[0]!),
        ms(wall[i4g]! - wall[0]!),
        target("<= 10"),
      ],
      [
        `${label}dhyve - bare deno, wall ms (min)`,
        ms(wallMin[i64]! - wallMin[0]!),
        ms(wallMin[i4g]! - wallMin[0]!),
        "",
      ],
      [
        `${label}dhyve - bare deno, CPU ms (median)`,
        ms(cpu[i64]! - cpu[0]!),
        ms(cpu[i4g]! - cpu[0]!),
        "",
      ],
      [
        `${label}in-process set-up (runVm to KVM_RUN)${ours ? " / floor's (main to KVM_RUN)" : ""}`,
        `${ms(inProcess(trace(i64, "dhyve-trace:"), "runvm", "loop"))}${floorOf(f64)}`,
        `${ms(inProcess(trace(i4g, "dhyve-trace:"), "runvm", "loop"))}${floorOf(f4g)}`,
        target("<= 3x"),
      ],
      [
        `${label}peak RSS - bare deno, MiB`,
        mib(rss[i64]! - rss[0]!),
        mib(rss[i4g]! - rss[0]!),
        target("<= 12"),
      ],
    ];
  };
  say("\n");
  printTable([
    ["goal", "64 MiB", "4 GiB", "target"],
    ...goalRows("", 1, 2, true),
    [
      `peak RSS growth from ${FEW_EXITS} to ${MANY_EXITS} exits (warm-up), MiB`,
      mib(rss[6]! - rss[5]!),
      "",
      "",
    ],
    [
      `peak RSS growth from ${MANY_EXITS} to ${MOST_EXITS} exits, MiB`,
      mib(rss[7]! - rss[6]!),
      "",
      "~0",
    ],
    ...(baselineMain === null ? [] : goalRows("baseline: ", 8, 9, false)),
  ]);
  if (baselineMain !== null) say(`(baseline: ${baselineMain})\n`);

  // Where the noop run's memory goes: RSS and V8 heap at each mark (DHYVE_TRACE_STARTUP=rss,
  // which adds a little time per mark, so in runs of their own), against bare Deno's peak.
  // With --allow-all: only then does Deno let a program read /proc/self/status, where the
  // private (anonymous) part of the RSS and the file-backed part (Deno's own code, shared by
  // every Deno process) are told apart.
  const memoryRuns: Measured[] = [];
  const bareSplit: { anon: number; file: number }[] = [];
  const allArgs = ["run", "--allow-all", ...specs[1]!.args.slice(specs[1]!.args.indexOf(mainTs))];
  for (let i = 0; i < Math.max(5, Math.ceil(runs / 2)); i++) {
    memoryRuns.push(await measure(runstat, deno, allArgs, 0, { DHYVE_TRACE_STARTUP: "rss" }));
    const bare = await measure(runstat, deno, ["run", "--allow-all", emptyStatusTs], 0, {});
    const split = /anon=(\d+) file=(\d+)/.exec(bare.stderr);
    if (split !== null) bareSplit.push({ anon: Number(split[1]), file: Number(split[2]) });
  }
  const memory = memoryRuns.map(memoryMarks);
  const memoryOrder = DHYVE_PHASES.map(([name, mark]) => [name, mark] as const)
    .filter(([, mark]) => memory.every((m) => m.has(mark)));
  const part = (mark: string, key: "anon" | "file"): string => {
    const values = memory.map((m) => m.get(mark)![key]);
    return values.some(Number.isNaN) ? "" : mib(median(values));
  };
  let previous = rss[0]!;
  say("\n");
  printTable([
    [
      `RSS split, dhyve noop 64 MiB (median of ${memoryRuns.length}, --allow-all)`,
      "RSS MiB",
      "+ MiB",
      "V8 heap MiB",
      "anon MiB",
      "file MiB",
    ],
    [
      "bare deno run, peak (anon, file: at its end)",
      mib(rss[0]!),
      "",
      "",
      bareSplit.length === 0 ? "" : mib(median(bareSplit.map((b) => b.anon))),
      bareSplit.length === 0 ? "" : mib(median(bareSplit.map((b) => b.file))),
    ],
    ...memoryOrder.map(([name, mark]) => {
      const at = median(memory.map((m) => m.get(mark)!.rss));
      const row = [
        name,
        mib(at),
        mib(at - previous),
        mib(median(memory.map((m) => m.get(mark)!.heap))),
        part(mark, "anon"),
        part(mark, "file"),
      ];
      previous = at;
      return row;
    }),
    [
      "peak (process exit included)",
      mib(median(memoryRuns.map((m) => m.rssKiB))),
      mib(median(memoryRuns.map((m) => m.rssKiB)) - previous),
      "",
      "",
      "",
    ],
  ]);

  const images = Deno.env.get("HERMIT_IMAGES");
  if (!images) {
    say("\nhello_c: skipped (set HERMIT_IMAGES to the directory holding it)\n");
    return;
  }
  const hello = `${images}/hello_c`;
  // Both get the same four environment entries (Hermit 0.6.9 reads past an unterminated
  // environment array) and no time limit of their own (dhyve's --timeout starts a timer, which
  // a plain run does not pay for; the floor's -t is a free alarm()).
  const helloArgs = ["-e", "A=1", "-e", "B=2", "-e", "C=3", "-e", "D=4"];
  const pair = [
    { name: "dhyve hello_c", cmd: deno, args: dhyve("64MiB", hello, "a1").slice() },
    { name: "C floor hello_c", cmd: floor, args: ["-t", "60", ...helloArgs, hello, "a1"] },
  ];
  // dhyve's options go before the kernel.
  pair[0]!.args.splice(pair[0]!.args.indexOf(hello), 0, ...helloArgs);
  const helloRuns = Math.max(3, Math.ceil(runs / 3));
  const times: Measured[][] = pair.map(() => []);
  for (let i = 0; i < helloRuns; i++) {
    for (const [j, s] of pair.entries()) {
      times[j]!.push(await measure(runstat, s.cmd, s.args, null));
    }
  }
  const ok = times.map((r) => r.filter((m) => m.code === 0));
  const helloWall = ok.map((r) => (r.length > 0 ? median(r.map((m) => m.ms)) : NaN));
  say("\n");
  printTable([
    [`uhyve hello_c a1, boot to exit (median of ${helloRuns})`, "wall ms", "CPU ms", "ok runs"],
    ...pair.map((s, j) => [
      s.name,
      ms(helloWall[j]!),
      ms(median(ok[j]!.map((m) => m.cpuMs))),
      `${ok[j]!.length}/${helloRuns}`,
    ]),
    [
      "dhyve / floor",
      `${(helloWall[0]! / helloWall[1]!).toFixed(2)}x`,
      `${(median(ok[0]!.map((m) => m.cpuMs)) / median(ok[1]!.map((m) => m.cpuMs))).toFixed(2)}x`,
      "<= 1.10x",
    ],
  ]);
}

if (import.meta.main) {
  await startupBenchmark(Number(Deno.env.get("STARTUP_RUNS") ?? 10));
}
