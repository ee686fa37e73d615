/**
 * dhyve against a C floor: `bench/c_floor/floor.c` is a minimal VMM in C that
 * makes the same KVM calls for one vCPU (built with gcc at bench time into
 * `.build/c_floor/`), so "dhyve / floor" shows what TypeScript costs. This
 * module measures each term of a run against it:
 *
 * - per-exit cost: (t(serial_loop) − t(noop)) / exits, v1 and v2;
 * - start-up: whole-process time of the noop guest at 64 MiB and 4 GiB, next
 *   to bare Deno and the floor;
 * - memory: peak RSS, less the guest memory the guest touched, next to bare
 *   Deno;
 * - hot-path allocation: `bench/alloc_probe.ts` in its own process;
 * - uhyve's hello_c (HERMIT_IMAGES), with QEMU where it can boot it.
 *
 * Whole processes are timed from spawn to exit. With GNU time
 * (`/usr/bin/time`) each run also reports its CPU time (user + system) and
 * peak RSS; without it the peak RSS comes from polling `/proc/PID/status`.
 * dhyve and the floor run interleaved, so a busy machine slows both alike.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest, type GuestIface } from "../tests/_helpers/guests.ts";
import { median } from "./_util.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;
const emptyTs = `${root}bench/_empty.ts`;
const probeTs = `${root}bench/alloc_probe.ts`;
const floorSource = `${root}bench/c_floor/floor.c`;
const floorDir = `${root}.build/c_floor`;

/** Serial exits made by the serial_loop guest (its default count). */
export const SERIAL_EXITS = 100_000;

const GNU_TIME = "/usr/bin/time";
const dec = new TextDecoder();

/** One timed process run. */
export interface Measured {
  /** Wall time, spawn to exit, in ms. */
  ms: number;
  /** User + system CPU time in ms (GNU time only). */
  cpuMs: number | null;
  /** Peak resident set size in KiB. */
  rssKiB: number | null;
  /** Exit code. */
  code: number;
  /** Captured stderr (without GNU time's line). */
  stderr: string;
  /** Captured stdout, when asked for (else ""). */
  stdout: string;
}

let gnuTime: Promise<boolean> | undefined;

/** True when `/usr/bin/time` is GNU time (Debian's `time` package). */
function hasGnuTime(): Promise<boolean> {
  gnuTime ??= new Deno.Command(GNU_TIME, { args: ["--version"], stdout: "piped", stderr: "piped" })
    .output()
    .then((o) => /GNU/.test(dec.decode(o.stdout) + dec.decode(o.stderr)))
    .catch(() => false);
  return gnuTime;
}

/** The largest VmHWM seen while polling `/proc/<pid>/status` until `done` settles. */
async function pollPeakRss(pid: number, done: Promise<unknown>): Promise<number | null> {
  let peak: number | null = null;
  let finished = false;
  done.finally(() => (finished = true));
  while (!finished) {
    try {
      const m = /VmHWM:\s*(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
      if (m) peak = Math.max(peak ?? 0, Number(m[1]));
    } catch {
      break; // the process is gone
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return peak;
}

/**
 * Runs `cmd args` to completion and measures it; its stdout is discarded
 * unless `captureStdout`. Throws if it exits with another code than
 * `expectCode` (null: any code).
 */
export async function measure(
  cmd: string,
  args: readonly string[],
  expectCode: number | null = 0,
  captureStdout = false,
): Promise<Measured> {
  const useTime = await hasGnuTime();
  const report = useTime ? await Deno.makeTempFile({ prefix: "dhyve-bench-" }) : "";
  const argv = useTime ? ["-f", "%U %S %M", "-o", report, cmd, ...args] : [...args];
  const t0 = performance.now();
  const child = new Deno.Command(useTime ? GNU_TIME : cmd, {
    args: argv,
    stdin: "null",
    stdout: captureStdout ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const polled = useTime ? Promise.resolve(null) : pollPeakRss(child.pid, output);
  const out = await output;
  const ms = performance.now() - t0;
  let cpuMs: number | null = null;
  let rssKiB = await polled;
  if (useTime) {
    const lines = (await Deno.readTextFile(report)).trim().split("\n");
    await Deno.remove(report);
    const [user, sys, rss] = (lines.at(-1) ?? "").split(" ").map(Number);
    if (user !== undefined && sys !== undefined && rss !== undefined) {
      cpuMs = (user + sys) * 1000;
      rssKiB = rss;
    }
  }
  const stderr = dec.decode(out.stderr);
  if (expectCode !== null && out.code !== expectCode) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited with ${out.code}, expected ${expectCode}: ${stderr.trim()}`,
    );
  }
  const stdout = captureStdout ? dec.decode(out.stdout) : "";
  return { ms, cpuMs, rssKiB, code: out.code, stderr, stdout };
}

/** Median wall, CPU and RSS of several runs. */
export interface Summary {
  /** Median wall time in ms. */
  ms: number;
  /** Median CPU time in ms, or null without GNU time. */
  cpuMs: number | null;
  /** Median peak RSS in KiB, or null. */
  rssKiB: number | null;
}

function summarize(runs: readonly Measured[]): Summary {
  const pick = (f: (m: Measured) => number | null): number | null => {
    const v = runs.map(f).filter((x): x is number => x !== null);
    return v.length === runs.length && v.length > 0 ? median(v) : null;
  };
  return {
    ms: median(runs.map((r) => r.ms)),
    cpuMs: pick((r) => r.cpuMs),
    rssKiB: pick((r) => r.rssKiB),
  };
}

/** Compiles the C floor with gcc -O2 into `.build/c_floor/floor`; returns its path. */
export async function buildFloor(): Promise<string> {
  await Deno.mkdir(floorDir, { recursive: true });
  const out = `${floorDir}/floor`;
  const tmp = `${out}.tmp-${Deno.pid}`;
  const gcc = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-Wextra", "-o", tmp, floorSource],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!gcc.success) {
    throw new Error(
      `Cannot build the C floor: gcc exited with ${gcc.code}\n${dec.decode(gcc.stderr)}`,
    );
  }
  await Deno.rename(tmp, out);
  return out;
}

function dhyveArgs(kernel: string, extra: readonly string[] = []): string[] {
  return ["run", "--allow-ffi", "--allow-read", mainTs, ...extra, kernel];
}

/** Guest memory the floor reported resident for its run (`floor -s`), in KiB. */
function floorGuestResident(m: Measured): number | null {
  const r = /guest_resident_kib=(\d+)/.exec(m.stderr);
  return r ? Number(r[1]) : null;
}

// ---------------------------------------------------------------------------
// Per-exit cost

/** Per-exit cost of one VMM for one interface. */
export interface ExitCost {
  /** serial_loop run (N exits). */
  loop: Summary;
  /** noop run. */
  noop: Summary;
  /** (wall(loop) − wall(noop)) / N, in µs. */
  perExitUs: number;
  /** The same from CPU time, in µs (GNU time only). */
  perExitCpuUs: number | null;
  /** Guest memory the floor saw resident at the end of serial_loop (floor only). */
  guestResidentKiB: number | null;
}

/** Per-exit cost, dhyve and floor, for one interface. */
export interface ExitCostRow {
  /** Hypercall interface. */
  iface: GuestIface;
  /** dhyve. */
  dhyve: ExitCost;
  /** The C floor. */
  floor: ExitCost;
}

function exitCost(loop: Measured[], noop: Measured[]): ExitCost {
  const l = summarize(loop);
  const n = summarize(noop);
  return {
    loop: l,
    noop: n,
    perExitUs: (l.ms - n.ms) * 1000 / SERIAL_EXITS,
    perExitCpuUs: l.cpuMs === null || n.cpuMs === null
      ? null
      : (l.cpuMs - n.cpuMs) * 1000 / SERIAL_EXITS,
    guestResidentKiB: floorGuestResident(loop[0]!),
  };
}

/**
 * Per-exit cost: serial_loop (100 000 single-byte serial hypercalls) minus
 * noop, divided by the count, for dhyve and the floor, v1 and v2; medians of
 * `rounds` interleaved runs.
 */
export async function perExitCost(floor: string, rounds = 5): Promise<ExitCostRow[]> {
  const deno = Deno.execPath();
  const rows: ExitCostRow[] = [];
  for (const iface of [1, 2] as const) {
    const loopElf = await buildGuest("serial_loop", { iface, pie: true });
    const noopElf = await buildGuest("noop", { iface, pie: true });
    const runs = { dLoop: [] as Measured[], dNoop: [] as Measured[], fLoop: [] as Measured[] };
    const fNoop: Measured[] = [];
    for (let i = 0; i < rounds; i++) {
      runs.dNoop.push(await measure(deno, dhyveArgs(noopElf)));
      runs.dLoop.push(await measure(deno, dhyveArgs(loopElf)));
      fNoop.push(await measure(floor, ["-s", noopElf]));
      runs.fLoop.push(await measure(floor, ["-s", loopElf]));
    }
    rows.push({
      iface,
      dhyve: exitCost(runs.dLoop, runs.dNoop),
      floor: exitCost(runs.fLoop, fNoop),
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------
// Start-up and memory

/** One start-up row. */
export interface StartupRow {
  /** What ran. */
  name: string;
  /** Medians. */
  summary: Summary;
  /** For the floor: guest memory resident at exit (KiB). */
  guestResidentKiB: number | null;
  /** The command, for the results file. */
  command: string;
}

/** Start-up results. */
export interface Startup {
  /** bare Deno, dhyve noop 64 MiB / 4 GiB, floor noop 64 MiB / 4 GiB. */
  rows: StartupRow[];
  /** dhyve's own set-up at 64 MiB: dhyve − bare Deno (ms). */
  setup64: number;
  /** The same at 4 GiB. */
  setup4g: number;
  /**
   * Set-up measured inside the process, medians in ms: dhyve's `bootMs`
   * (`--stats=json`: runVm's start to the first KVM_RUN) and the floor's
   * `setup_ms` (`-s`: main's start to the first KVM_RUN), at 64 MiB and 4 GiB.
   */
  inProcess: { dhyve64: number; dhyve4g: number; floor64: number; floor4g: number };
}

/**
 * Whole-process time of the noop guest (v2, whose RAM starts at 4 GiB, so
 * both sizes fit): bare `deno run` of an empty script, dhyve at 64 MiB and
 * 4 GiB, the floor at 64 MiB and 4 GiB. Medians of `runs` interleaved runs.
 */
export async function startup(floor: string, runs = 10): Promise<Startup> {
  const deno = Deno.execPath();
  const noop = await buildGuest("noop", { iface: 2, pie: true });
  const specs = [
    {
      name: "bare deno run (empty script)",
      cmd: deno,
      args: ["run", emptyTs],
      command: "deno run bench/_empty.ts",
    },
    {
      name: "dhyve noop, 64 MiB",
      cmd: deno,
      args: dhyveArgs(noop, ["-m", "64MiB"]),
      command: "deno run --allow-ffi --allow-read main.ts -m 64MiB noop",
    },
    {
      name: "dhyve noop, 4 GiB",
      cmd: deno,
      args: dhyveArgs(noop, ["-m", "4GiB"]),
      command: "deno run --allow-ffi --allow-read main.ts -m 4GiB noop",
    },
    {
      name: "C floor noop, 64 MiB",
      cmd: floor,
      args: ["-s", "-m", "64", noop],
      command: "floor -m 64 noop",
    },
    {
      name: "C floor noop, 4 GiB",
      cmd: floor,
      args: ["-s", "-m", "4096", noop],
      command: "floor -m 4096 noop",
    },
  ];
  const results: Measured[][] = specs.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, s] of specs.entries()) results[j]!.push(await measure(s.cmd, s.args));
  }
  const rows = specs.map((s, j) => ({
    name: s.name,
    summary: summarize(results[j]!),
    guestResidentKiB: floorGuestResident(results[j]![0]!),
    command: s.command,
  }));
  const bare = rows[0]!.summary.ms;

  // In-process set-up: separate runs, as --stats=json adds its own work after the run.
  const boot: Record<"dhyve64" | "dhyve4g", number[]> = { dhyve64: [], dhyve4g: [] };
  for (let i = 0; i < runs; i++) {
    for (const [key, size] of [["dhyve64", "64MiB"], ["dhyve4g", "4GiB"]] as const) {
      const m = await measure(deno, dhyveArgs(noop, ["--stats=json", "-m", size]), 0, true);
      boot[key].push(
        (JSON.parse(m.stdout.trim().split("\n").at(-1)!) as { bootMs: number }).bootMs,
      );
    }
  }
  const floorSetup = (j: number): number =>
    median(results[j]!.map((m) => Number(/setup_ms=([\d.]+)/.exec(m.stderr)?.[1] ?? NaN)));
  return {
    rows,
    setup64: rows[1]!.summary.ms - bare,
    setup4g: rows[2]!.summary.ms - bare,
    inProcess: {
      dhyve64: median(boot.dhyve64),
      dhyve4g: median(boot.dhyve4g),
      floor64: floorSetup(3),
      floor4g: floorSetup(4),
    },
  };
}

// ---------------------------------------------------------------------------
// Hot-path allocation

/** What `bench/alloc_probe.ts` reports per interface. */
export interface AllocRow {
  /** Hypercall interface. */
  iface: number;
  /** Exits in the small run. */
  few: number;
  /** Exits in the large run. */
  many: number;
  /** Bytes allocated by the small run (smallest of 5). */
  bytesFew: number;
  /** Bytes allocated by the large run (smallest of 5). */
  bytesMany: number;
  /** Bytes per exit from the smallest runs. */
  bytesPerExit: number;
  /** Bytes per exit from the medians. */
  bytesPerExitMedian: number;
}

/** Runs `bench/alloc_probe.ts` in its own process on serial_loop v1 and v2. */
export async function hotPathAllocation(): Promise<AllocRow[]> {
  const v1 = await buildGuest("serial_loop", { iface: 1, pie: true });
  const v2 = await buildGuest("serial_loop", { iface: 2, pie: true });
  const m = await measure(Deno.execPath(), ["run", "--allow-ffi", "--allow-read", probeTs, v1, v2]);
  const line = m.stderr.trim().split("\n").findLast((l) => l.startsWith("{"));
  if (line === undefined) throw new Error(`alloc_probe printed no result: ${m.stderr}`);
  return (JSON.parse(line) as { results: AllocRow[] }).results;
}

// ---------------------------------------------------------------------------
// uhyve's hello_c

/** One hello_c row. */
export interface HelloRow {
  /** What ran. */
  name: string;
  /** Medians, or null when it did not run. */
  summary: Summary | null;
  /** The command, or why it did not run. */
  note: string;
}

/**
 * uhyve's hello_c from HERMIT_IMAGES, boot to exit (whole process), under
 * dhyve and the floor, with one argument: hello_c faults in its argv loop
 * when it has none (with the C prototype too). QEMU: `qemu-system-x86_64
 * -enable-kvm` boots a Hermit kernel only through the Hermit loader (set
 * HERMIT_LOADER to its path); without it, the row says what QEMU answered.
 * Returns null when HERMIT_IMAGES is unset.
 */
export async function helloC(floor: string, runs = 5): Promise<HelloRow[] | null> {
  const images = Deno.env.get("HERMIT_IMAGES");
  if (!images) return null;
  const hello = `${images}/hello_c`;
  const deno = Deno.execPath();
  const specs = [
    {
      name: "bare deno run (empty script)",
      cmd: deno,
      args: ["run", emptyTs],
      note: "deno run bench/_empty.ts",
    },
    {
      name: "dhyve hello_c",
      cmd: deno,
      args: [...dhyveArgs(hello, ["--timeout", "60s"]), "a1"],
      note: "deno run --allow-ffi --allow-read main.ts --timeout 60s hello_c a1",
    },
    {
      name: "C floor hello_c",
      cmd: floor,
      args: ["-t", "60", hello, "a1"],
      note: "floor -t 60 hello_c a1",
    },
  ];
  const results: Measured[][] = specs.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, s] of specs.entries()) results[j]!.push(await measure(s.cmd, s.args));
  }
  const rows: HelloRow[] = specs.map((s, j) => ({
    name: s.name,
    summary: summarize(results[j]!),
    note: s.note,
  }));
  rows.push(await qemuHello(hello, runs));
  return rows;
}

const QEMU = "qemu-system-x86_64";

async function qemuHello(hello: string, runs: number): Promise<HelloRow> {
  const name = "QEMU -enable-kvm hello_c";
  try {
    await new Deno.Command(QEMU, { args: ["--version"], stdout: "null", stderr: "null" }).output();
  } catch {
    return {
      name,
      summary: null,
      note: `${QEMU} is not installed (apt-get install qemu-system-x86)`,
    };
  }
  // -cpu host alone fails on kvm_pvm: KVM refuses MSR 0x10a (IA32_ARCH_CAPABILITIES).
  const loader = Deno.env.get("HERMIT_LOADER");
  const machine = ["-enable-kvm", "-cpu", "host,-arch-capabilities", "-smp", "1", "-m", "64M"];
  const io = ["-display", "none", "-serial", "stdio", "-no-reboot"];
  const args = loader
    ? [
      ...machine,
      ...io,
      ...["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
      ...["-kernel", loader, "-initrd", hello, "-append", "-- a1"],
    ]
    : [...machine, ...io, "-kernel", hello];
  // With the loader, isa-debug-exit turns the guest's exit code 0 into QEMU's 1.
  const expect = loader ? 1 : 0;
  const command = ["60", QEMU, ...args]; // coreutils timeout: QEMU has no limit of its own
  const first = await measure("timeout", command, null);
  if (first.code !== expect) {
    const last = first.stderr.trim().split("\n").findLast((l) => l.trim() !== "")?.trim();
    const how = loader ? "through the Hermit loader" : "without the Hermit loader (HERMIT_LOADER)";
    return {
      name,
      summary: null,
      note: `not run: ${how} it exits with ${first.code}: ${last ?? ""}`,
    };
  }
  const all = [first];
  for (let i = 1; i < runs; i++) all.push(await measure("timeout", command, expect));
  return { name, summary: summarize(all), note: `${QEMU} ${args.join(" ")}` };
}

// ---------------------------------------------------------------------------
// Tables

const f1 = (v: number | null): string => (v === null ? "n/a" : v.toFixed(1));
const f2 = (v: number | null): string => (v === null ? "n/a" : v.toFixed(2));
const ratio = (a: number | null, b: number | null): string =>
  a === null || b === null || b <= 0 ? "n/a" : `${(a / b).toFixed(2)}x`;
const mib = (kib: number | null): string => (kib === null ? "n/a" : (kib / 1024).toFixed(1));

/** Rows for printTable: the per-exit cost, dhyve / floor. */
export function exitCostTable(rows: readonly ExitCostRow[]): string[][] {
  return [
    [
      `per-exit cost, ${SERIAL_EXITS} serial exits (median of 5)`,
      "dhyve µs",
      "floor µs",
      "dhyve/C",
      "dhyve CPU µs",
      "floor CPU µs",
      "CPU dhyve/C",
      "target",
    ],
    ...rows.map((r) => [
      `v${r.iface} ${r.iface === 1 ? "Uart 0x800 (out dx, al)" : "SerialWriteByte 0x1020 (RDI)"}`,
      f2(r.dhyve.perExitUs),
      f2(r.floor.perExitUs),
      ratio(r.dhyve.perExitUs, r.floor.perExitUs),
      f2(r.dhyve.perExitCpuUs),
      f2(r.floor.perExitCpuUs),
      ratio(r.dhyve.perExitCpuUs, r.floor.perExitCpuUs),
      "<= 1.10x",
    ]),
  ];
}

/** Rows for printTable: start-up. */
export function startupTable(s: Startup): string[][] {
  const floor64 = s.rows[3]!.summary.ms;
  const p = s.inProcess;
  return [
    ["start-up, whole process (median of 10)", "ms", "CPU ms", "vs C floor", "command"],
    ...s.rows.map((r) => [
      r.name,
      f1(r.summary.ms),
      f1(r.summary.cpuMs),
      ratio(r.summary.ms, floor64),
      r.command,
    ]),
    ["dhyve set-up at 64 MiB (dhyve − bare deno)", f1(s.setup64), "", "", "target <= 5 ms"],
    ["dhyve set-up at 4 GiB (dhyve − bare deno)", f1(s.setup4g), "", "", ""],
    ["growth 64 MiB -> 4 GiB", f1(s.setup4g - s.setup64), "", "", "target < 1 ms"],
    [
      "in-process set-up, 64 MiB (dhyve bootMs / floor)",
      f1(p.dhyve64),
      "",
      ratio(p.dhyve64, p.floor64),
      `floor ${f1(p.floor64)} ms (main -> first KVM_RUN)`,
    ],
    [
      "in-process set-up, 4 GiB (dhyve bootMs / floor)",
      f1(p.dhyve4g),
      "",
      ratio(p.dhyve4g, p.floor4g),
      `floor ${f1(p.floor4g)} ms`,
    ],
    [
      "in-process growth 64 MiB -> 4 GiB",
      f1(p.dhyve4g - p.dhyve64),
      "",
      "",
      `floor ${f1(p.floor4g - p.floor64)} ms; target < 1 ms`,
    ],
  ];
}

/**
 * Rows for printTable: memory. The guest memory a run touched is what the
 * floor saw resident (mincore) for the same guest: the loader's writes and
 * the guest's own, the same pages under both VMMs.
 */
export function memoryTable(s: Startup, exits: readonly ExitCostRow[]): string[][] {
  const bare = s.rows[0]!.summary.rssKiB;
  const touched = s.rows[3]!.guestResidentKiB;
  const over = (rss: number | null, guest: number | null): string =>
    rss === null || bare === null || guest === null ? "n/a" : mib(rss - guest - bare);
  const loop = exits.find((r) => r.iface === 1);
  const rows: string[][] = [
    ["memory, peak RSS (median)", "RSS MiB", "guest touched MiB", "above bare deno MiB", "target"],
    [s.rows[0]!.name, mib(bare), "", "", ""],
    [
      s.rows[1]!.name,
      mib(s.rows[1]!.summary.rssKiB),
      mib(touched),
      over(s.rows[1]!.summary.rssKiB, touched),
      "<= 15 MiB",
    ],
    [
      s.rows[2]!.name,
      mib(s.rows[2]!.summary.rssKiB),
      mib(touched),
      over(s.rows[2]!.summary.rssKiB, touched),
      "<= 15 MiB",
    ],
  ];
  if (loop) {
    const t = loop.floor.guestResidentKiB;
    rows.push([
      `dhyve serial_loop v1, ${SERIAL_EXITS} exits`,
      mib(loop.dhyve.loop.rssKiB),
      mib(t),
      over(loop.dhyve.loop.rssKiB, t),
      "<= 15 MiB",
    ]);
  }
  rows.push([s.rows[3]!.name, mib(s.rows[3]!.summary.rssKiB), mib(touched), "", ""]);
  return rows;
}

/** Rows for printTable: allocation on the hot path. */
export function allocationTable(rows: readonly AllocRow[]): string[][] {
  return [
    [
      "hot-path allocation (V8 total_allocated_bytes)",
      "few exits",
      "KiB",
      "many exits",
      "KiB",
      "B/exit",
      "B/exit (medians)",
    ],
    ...rows.map((r) => [
      `serial_loop v${r.iface}`,
      String(r.few),
      (r.bytesFew / 1024).toFixed(0),
      String(r.many),
      (r.bytesMany / 1024).toFixed(0),
      r.bytesPerExit.toFixed(1),
      r.bytesPerExitMedian.toFixed(1),
    ]),
  ];
}

/** Rows for printTable: hello_c. */
export function helloTable(rows: readonly HelloRow[]): string[][] {
  const bare = rows[0]?.summary?.ms ?? null;
  const floor = rows.find((r) => r.name.startsWith("C floor"))?.summary?.ms ?? null;
  return [
    [
      "uhyve hello_c, boot to exit (median of 5)",
      "ms",
      "minus bare deno",
      "CPU ms",
      "vs C floor",
      "command / note",
    ],
    ...rows.map((r) => {
      const vmm = !r.name.startsWith("bare") && !r.name.startsWith("C floor");
      return [
        r.name,
        f1(r.summary?.ms ?? null),
        r.name.startsWith("dhyve") && r.summary && bare !== null ? f1(r.summary.ms - bare) : "",
        f1(r.summary?.cpuMs ?? null),
        vmm && r.summary ? ratio(r.summary.ms, floor) : "",
        r.note,
      ];
    }),
  ];
}

if (import.meta.main) {
  // Only these tables: deno run --allow-ffi --allow-read --allow-write --allow-run --allow-env
  // bench/kvm_floor.ts (`deno task bench` prints them after the others).
  const { loadAverage: load, machineDescription, printTable } = await import("./_util.ts");
  const enc = new TextEncoder();
  Deno.stdout.writeSync(
    enc.encode(`dhyve vs C floor: ${new Date().toISOString()}\n${machineDescription()}\n`),
  );
  const loadBefore = load();
  for (const table of await floorTables()) {
    Deno.stdout.writeSync(enc.encode("\n"));
    printTable(table);
  }
  Deno.stdout.writeSync(enc.encode(`\nload average (1 min): ${loadBefore} -> ${load()}\n`));
}

/** Runs every comparison with the C floor and returns its tables (header row first). */
export async function floorTables(): Promise<ReturnType<typeof exitCostTable>[]> {
  const cFloor = await buildFloor();
  const exitCosts = await perExitCost(cFloor);
  const starts = await startup(cFloor);
  const allocations = await hotPathAllocation();
  const hello = await helloC(cFloor);
  return [
    exitCostTable(exitCosts),
    startupTable(starts),
    memoryTable(starts, exitCosts),
    allocationTable(allocations),
    ...(hello === null ? [] : [helloTable(hello)]),
  ];
}
