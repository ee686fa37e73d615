/**
 * `deno task bench:oci`: 20 Hermit guests at once through Podman and
 * `dhyve-oci`. Reports the create-to-exit time of each `podman run --rm` of
 * the hello guest (median and p99 over all rounds) and the host memory per
 * running guest (spin guest): the container's memory cgroup (dhyve, Deno and
 * the touched guest RAM) plus its conmon, and the drop in MemAvailable.
 * Needs root, /dev/kvm, podman, runc, conmon and busybox-static. Results go
 * to docs/performance.md by hand, with the machine and date printed here.
 * @module
 */

import { median, printTable, timeProcess } from "./_util.ts";
import { machineDescription } from "./_util.ts";
import {
  buildTestRootfsTar,
  containerTestsUnavailable,
  DHYVE_OCI,
  run,
  waitFor,
  which,
} from "../tests/_helpers/oci.ts";

const GUESTS = Number(Deno.env.get("DHYVE_OCI_BENCH_GUESTS") ?? 20);
const ROUNDS = Number(Deno.env.get("DHYVE_OCI_BENCH_ROUNDS") ?? 3);
const PODMAN = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"];
const RUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--runtime", DHYVE_OCI];
const MIB = 1024 * 1024;

/** The value at quantile `q` (0..1) of `values`, nearest rank. */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** A field of /proc/meminfo in bytes. */
function meminfo(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(
    Deno.readTextFileSync("/proc/meminfo"),
  );
  return Number(m![1]) * 1024;
}

/** Bytes charged to the memory cgroup (v1 or v2) of process `pid`. */
function cgroupMemory(pid: number): number {
  const lines = Deno.readTextFileSync(`/proc/${pid}/cgroup`).split("\n");
  const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
  if (v1 !== undefined) {
    const path = v1.slice(v1.indexOf(":", v1.indexOf(":") + 1) + 1);
    return Number(Deno.readTextFileSync(`/sys/fs/cgroup/memory${path}/memory.usage_in_bytes`));
  }
  const v2 = lines.find((l) => l.startsWith("0::"))!.slice(3);
  return Number(Deno.readTextFileSync(`/sys/fs/cgroup${v2}/memory.current`));
}

/** VmRSS of process `pid` in bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m === null ? 0 : Number(m[1]) * 1024;
}

async function podman(args: readonly string[]): Promise<string> {
  const out = await run("podman", [...PODMAN, ...args]);
  if (out.code !== 0) throw new Error(`podman ${args.join(" ")}: ${out.stderr}`);
  return out.stdout.trim();
}

/** `rounds` rounds of `count` runs of podman `args` at once; their wall times. */
async function batch(args: string[], count: number, rounds: number): Promise<number[]> {
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const runs = await Promise.all(
      Array.from({ length: count }, () => timeProcess("podman", args)),
    );
    for (const r of runs) {
      if (r.code !== 0) throw new Error(`podman ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      times.push(r.ms);
    }
  }
  return times;
}

const unavailable = containerTestsUnavailable(["podman", "runc", "conmon"]);
if (unavailable !== null) {
  // deno-lint-ignore no-console
  console.error(`SKIP: bench/oci_scale.ts: ${unavailable}`);
  Deno.exit(0);
}

const enc = new TextEncoder();
Deno.stdout.writeSync(
  enc.encode(`dhyve-oci scale: ${new Date().toISOString()}\nmachine: ${machineDescription()}\n\n`),
);
const built = await buildTestRootfsTar();
const image = `localhost/dhyve-oci-bench:${Deno.pid}`;
const spinning: string[] = [];
try {
  await podman(["import", built.tar, image]);
  // One run first, so that the module cache is warm and the image is in place.
  await podman(["run", "--rm", ...RUN, image, "/hello"]);

  const runc = which("runc")!;
  const hello = [...PODMAN, "run", "--rm", ...RUN, image, "/hello"];
  const linux = [
    ...PODMAN,
    "run",
    "--rm",
    ...RUN.slice(0, -2),
    "--runtime",
    runc,
    image,
    "/bin/true",
  ];
  const aloneHermit = await batch(hello, 1, 5);
  const aloneLinux = await batch(linux, 1, 5);
  const times = await batch(hello, GUESTS, ROUNDS);
  const linuxTimes = await batch(linux, GUESTS, 1);

  const before = meminfo("MemAvailable");
  const ids = await Promise.all(
    Array.from({ length: GUESTS }, () => podman(["run", "-d", ...RUN, image, "/spin"])),
  );
  spinning.push(...ids);
  await waitFor(`${GUESTS} guests to spin`, async () => {
    const logs = await Promise.all(ids.map((id) => podman(["logs", id])));
    return logs.every((l) => l.includes("spin: spinning"));
  }, 300_000);
  const during = meminfo("MemAvailable");
  let cgroups = 0;
  let conmons = 0;
  for (const id of ids) {
    const [pid, conmon] =
      (await podman(["inspect", "--format", "{{.State.Pid}} {{.State.ConmonPid}}", id]))
        .split(" ").map(Number);
    cgroups += cgroupMemory(pid!);
    conmons += rss(conmon!);
  }

  printTable([
    [`${GUESTS} guests at once through podman + dhyve-oci`, "value", "what"],
    [
      "create-to-exit, median",
      `${median(times).toFixed(0)} ms`,
      `podman run --rm … /hello, ${GUESTS} at a time, ${ROUNDS} rounds (${times.length} runs)`,
    ],
    ["create-to-exit, p99", `${quantile(times, 0.99).toFixed(0)} ms`, "same runs"],
    [
      "create-to-exit, one alone",
      `${median(aloneHermit).toFixed(0)} ms`,
      "one podman run --rm … /hello at a time, median of 5",
    ],
    [
      "baseline: runc + busybox true, 20 at once",
      `${median(linuxTimes).toFixed(0)} / ${quantile(linuxTimes, 0.99).toFixed(0)} ms`,
      `median / p99: podman run --rm --runtime runc … /bin/true, ${GUESTS} at a time`,
    ],
    ["baseline: runc + busybox true, alone", `${median(aloneLinux).toFixed(0)} ms`, "median of 5"],
    [
      "memory per guest: container cgroup",
      `${(cgroups / GUESTS / MIB).toFixed(1)} MiB`,
      "memory.usage_in_bytes of each running /spin container, mean",
    ],
    [
      "memory per guest: conmon",
      `${(conmons / GUESTS / MIB).toFixed(1)} MiB`,
      "VmRSS of each container's conmon, mean",
    ],
    [
      "memory per guest: MemAvailable drop",
      `${((before - during) / GUESTS / MIB).toFixed(1)} MiB`,
      "whole host, before vs. all running (noisy: other work on the host counts too)",
    ],
  ]);
} finally {
  if (spinning.length > 0) await run("podman", [...PODMAN, "rm", "-f", "-t", "0", ...spinning]);
  await run("podman", [...PODMAN, "rmi", "-f", image]);
  await Deno.remove(built.dir, { recursive: true });
}
