/**
 * `deno task fuzz`: the long fuzz run, outside the CI tests. Runs the fuzz
 * guest (`tests/guests/fuzz.c`) through `main.ts` seed after seed, v1, v2 and
 * v3 guests in turn, until at least `--target` fuzzed hypercalls (default
 * 100 000) were made, checking after every run that the host survived it
 * (`tests/_helpers/fuzz_run.ts`). Prints how many calls the host survived, how
 * the runs ended, and the calls per port.
 *
 * `--ports v3` adds uhyve 0.9's Getdents/FileStat/FileFstat/Mkdir (0x1160-0x1190)
 * and O_DIRECTORY opens; `--ports auto` (default) does so when dhyve's hypercall
 * table has handlers for them, else fuzzes the base set (a host without them
 * stops at the first such call, exit 82, so almost every run would end there).
 *
 * Needs /dev/kvm, gcc and the permissions of the `fuzz` task in deno.json.
 * @module
 */

import { parseArgs } from "node:util";
import { EXIT_CODE } from "../src/exit_codes.ts";
import { buildHypercallTable, hypercallAt } from "../src/hypercall/table.ts";
import { type FuzzPorts, fuzzRun, FuzzSandbox } from "../tests/_helpers/fuzz_run.ts";
import { buildGuest, type GuestIface } from "../tests/_helpers/guests.ts";

const USAGE = "Usage: deno task fuzz [--target N] [--calls N] [--ports base|v3|auto] [--seed N]";
const V3_PORTS = [0x1160, 0x1170, 0x1180, 0x1190] as const;

const enc = new TextEncoder();

/** Prints one line to stdout. */
function say(line: string): void {
  Deno.stdout.writeSync(enc.encode(`${line}\n`));
}

/** A positive whole number from the command line, or exit 64 with one line. */
function count(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    Deno.stderr.writeSync(enc.encode(`fuzz: ${what} must be a whole number ≥ 1, not "${text}"\n`));
    Deno.exit(EXIT_CODE.USAGE);
  }
  return Number(text);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    calls: { type: "string" },
    ports: { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  say(USAGE);
  Deno.exit(0);
}
const target = count(values.target, 100_000, "--target");
const callsPerRun = count(values.calls, 2_000, "--calls");
let seed = count(values.seed, 1, "--seed");
const table = buildHypercallTable();
const haveV3 = V3_PORTS.every((p) => hypercallAt(table, p) !== undefined);
const asked = values.ports ?? "auto";
if (asked !== "base" && asked !== "v3" && asked !== "auto") {
  Deno.stderr.writeSync(enc.encode(`fuzz: --ports must be base, v3 or auto\n${USAGE}\n`));
  Deno.exit(EXIT_CODE.USAGE);
}
const ports: FuzzPorts = asked === "auto" ? (haveV3 ? "v3" : "base") : asked;
if (ports === "v3" && !haveV3) {
  say(
    "fuzz: warning: dhyve has no handlers for 0x1160-0x1190 yet; most runs will stop at the " +
      "first such call (exit 82)",
  );
}

const ifaces: GuestIface[] = [1, 2, 3];
const kernels = new Map<GuestIface, string>();
for (const iface of ifaces) {
  kernels.set(iface, await buildGuest("fuzz", { iface, pie: true, versionNote: false }));
}

say(`fuzz: ports ${ports}, ${callsPerRun} calls per run, until ${target} hypercalls`);
const perPort = new Map<number, number>();
const ends = { completed: 0, protocolStops: 0, timeouts: 0 };
let runs = 0;
let total = 0;
const t0 = performance.now();
const sandbox = new FuzzSandbox();
try {
  while (total < target) {
    const iface = ifaces[runs % ifaces.length]!;
    const run = await fuzzRun(kernels.get(iface)!, sandbox, {
      seed,
      calls: callsPerRun,
      ports,
      label: `v${iface}`,
    });
    runs++;
    seed++;
    total += run.calls.size;
    for (const port of run.calls.values()) perPort.set(port, (perPort.get(port) ?? 0) + 1);
    if (run.completed) ends.completed++;
    else if (run.code === EXIT_CODE.TIMEOUT) ends.timeouts++;
    else ends.protocolStops++;
    if (runs % 25 === 0) say(`fuzz: ${runs} runs, ${total} hypercalls so far`);
  }
} catch (error) {
  say(`fuzz: THE HOST DID NOT SURVIVE (run ${runs + 1}, seed ${seed}):`);
  say(error instanceof Error ? error.message : String(error));
  Deno.exit(1);
} finally {
  sandbox.dispose();
}

const seconds = (performance.now() - t0) / 1000;
say(
  `fuzz: the host survived ${total} fuzzed hypercalls in ${runs} runs (${seconds.toFixed(0)} s): ` +
    `${ends.completed} ran all ${callsPerRun} calls, ${ends.protocolStops} stopped cleanly ` +
    `(exit 82), ${ends.timeouts} timed out (exit 85); host crashes: 0`,
);
say("calls per port:");
for (const [port, n] of [...perPort].sort((a, b) => a[0] - b[0])) {
  const name = hypercallAt(table, port)?.name ?? "unknown port";
  say(`  0x${port.toString(16).padStart(4, "0")}  ${name.padEnd(20)} ${n}`);
}
