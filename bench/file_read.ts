/**
 * Guest file-read throughput: the `read_bench` test guest reads a 64 MiB
 * mapped file to the end in chunks of 4 KiB, 64 KiB and 1 MiB (v1 through the
 * guest page tables, v2 straight into guest-physical memory). Each figure is
 * the whole-process time of `main.ts` minus the same command running the
 * noop guest (so start-up and teardown cancel out), median of 5, next to the
 * host's own `cat FILE > /dev/null`. The file is made in a temp dir (page
 * cache warm) and removed afterwards.
 * @module
 */

import { fileURLToPath } from "node:url";
import { buildGuest, type GuestIface } from "../tests/_helpers/guests.ts";
import { median, medianProcessMs } from "./_util.ts";

const RUNS = 5;
const MIB = 1024 * 1024;
const FILE_MIB = 64;
const CHUNKS = [4 * 1024, 64 * 1024, MIB] as const;
const root = fileURLToPath(new URL("..", import.meta.url));
const mainTs = `${root}main.ts`;

/** One benchmark result row. */
export interface FileReadResult {
  /** What was run. */
  name: string;
  /** Median wall time of the whole process in ms. */
  medianMs: number;
  /** Read throughput in MiB/s (null for the baseline). */
  mibPerSecond: number | null;
  /** The command (paths shortened). */
  command: string;
}

function chunkName(bytes: number): string {
  return bytes >= MIB ? `${bytes / MIB} MiB` : `${bytes / 1024} KiB`;
}

/** Writes `mib` MiB of non-zero, non-repeating-per-page bytes to `path`. */
async function makeFile(path: string, mib: number): Promise<void> {
  const block = new Uint8Array(MIB);
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    for (let i = 0; i < mib; i++) {
      block.fill(i + 1);
      for (let p = 0; p < MIB; p += 4096) block[p] = p >> 12;
      let done = 0;
      while (done < block.length) done += await file.write(block.subarray(done));
    }
  } finally {
    file.close();
  }
}

/** Median wall time of `cat path > /dev/null`. */
async function catMs(path: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const out = await new Deno.Command("cat", { args: [path], stdout: "null", stderr: "piped" })
      .output();
    runs.push(performance.now() - t0);
    if (!out.success) {
      throw new Error(`cat ${path} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  }
  return median(runs);
}

/** Runs the file-read benchmarks and returns their rows. */
export async function fileReadBenchmarks(): Promise<FileReadResult[]> {
  const deno = Deno.execPath();
  const dir = await Deno.makeTempDir({ prefix: "dhyve-bench-read-" });
  const results: FileReadResult[] = [];
  try {
    const data = `${dir}/data`;
    const tmp = `${dir}/tmp`;
    await Deno.mkdir(data);
    await Deno.mkdir(tmp);
    const file = `${data}/file.bin`;
    await makeFile(file, FILE_MIB);
    const size = String(FILE_MIB * MIB);
    const flags = ["run", "--allow-ffi", "--allow-read", "--allow-write", mainTs];
    const mapping = ["--file-mapping", `${data}:/root/bench`, "--tempdir", tmp];

    for (const iface of [1, 2] as GuestIface[]) {
      const noop = await buildGuest("noop", { iface, pie: true });
      const base = await medianProcessMs(deno, [...flags, ...mapping, noop], RUNS);
      results.push({
        name: `v${iface} noop guest, same flags (baseline)`,
        medianMs: base.median,
        mibPerSecond: null,
        command: "deno run … main.ts --file-mapping DIR:/root/bench … noop",
      });
      const kernel = await buildGuest("read_bench", { iface, pie: true });
      for (const chunk of CHUNKS) {
        const r = await medianProcessMs(
          deno,
          [...flags, ...mapping, kernel, String(chunk), size],
          RUNS,
        );
        const netMs = r.median - base.median;
        results.push({
          name: `v${iface} guest reads ${FILE_MIB} MiB in ${chunkName(chunk)} chunks`,
          medianMs: r.median,
          mibPerSecond: netMs > 0 ? FILE_MIB / (netMs / 1000) : null,
          command:
            `deno run … main.ts --file-mapping DIR:/root/bench … read_bench ${chunk} ${size}`,
        });
      }
    }

    const cat = await catMs(file);
    results.push({
      name: `host cat ${FILE_MIB} MiB > /dev/null`,
      medianMs: cat,
      mibPerSecond: FILE_MIB / (cat / 1000),
      command: "cat FILE > /dev/null",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return results;
}
