/**
 * The fuzz guest with a UHYVEIF note of 3 and the "v3" port set: besides the
 * v1/v2 calls it throws random parameter blocks at uhyve 0.9's Getdents
 * (0x1160), FileStat (0x1170), FileFstat (0x1180) and Mkdir (0x1190) and opens
 * directories at random. The host must survive every run, as in
 * `fuzz_test.ts` (a host without those calls stops at the first one with exit
 * 82, which counts as surviving). The long run is `deno task fuzz`. Needs
 * /dev/kvm, `--allow-run` (gcc, deno), `--allow-read`, `--allow-write`.
 * @module
 */

import assert from "node:assert/strict";
import { fuzzRun, FuzzSandbox } from "../_helpers/fuzz_run.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const SEEDS = 10;
const CALLS = 400;

kvmTest(
  `fuzz guest v3: ${SEEDS} seeds × ${CALLS} calls with the v3 ports, the host survives`,
  async () => {
    const kernel = await buildGuest("fuzz", { iface: 3, pie: true, versionNote: false });
    const sandbox = new FuzzSandbox();
    const seen = new Set<number>();
    let calls = 0;
    try {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const run = await fuzzRun(kernel, sandbox, {
          seed,
          calls: CALLS,
          ports: "v3",
          label: "v3",
        });
        calls += run.calls.size;
        for (const port of run.calls.values()) seen.add(port);
      }
    } finally {
      sandbox.dispose();
    }
    // Every run reaches a v3 port within its first few dozen calls.
    assert.ok([0x1160, 0x1170, 0x1180, 0x1190].some((p) => seen.has(p)), "v3 ports were fuzzed");
    // deno-lint-ignore no-console
    console.log(`fuzz v3: ${SEEDS} runs, ${calls} hypercalls; host crashes: 0`);
  },
);
