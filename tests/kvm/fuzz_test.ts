/**
 * The fuzz guest (`tests/guests/fuzz.c`) under real KVM: for each seed it fires
 * a fixed number of random hypercalls with random parameters at `main.ts`
 * (minimal Deno permissions, Landlock `normal`, a mapped directory, a temp
 * parent). The host must survive every run: it ends with a documented exit
 * code (0 when the guest got through all its calls, 82 when it hit an
 * unknown port or a parameter block outside its memory, 85 on timeout), never
 * 70 (internal error) or a signal, with at most one error line and no stack
 * trace; nothing outside the map changes and the per-VM temp dir is gone.
 * Prints the number of runs and hypercalls (docs/security.md records them).
 * Needs /dev/kvm, `--allow-run` (gcc, deno), `--allow-read`, `--allow-write`
 * and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { fuzzRun, FuzzSandbox } from "../_helpers/fuzz_run.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";

/** Seeds per interface. */
const SEEDS = 30;
/** Hypercalls per run. */
const CALLS = 400;

/** How one interface's runs ended. */
interface Tally {
  runs: number;
  completed: number;
  protocolStops: number;
  timeouts: number;
  calls: number;
}

for (const iface of [1, 2] as const) {
  kvmTest(
    `fuzz guest v${iface}: ${SEEDS} seeds × ${CALLS} random hypercalls, the host survives every run`,
    async () => {
      const kernel = await buildGuest("fuzz", { iface, pie: true, versionNote: false });
      const sandbox = new FuzzSandbox();
      const tally: Tally = { runs: 0, completed: 0, protocolStops: 0, timeouts: 0, calls: 0 };
      try {
        for (let seed = 1; seed <= SEEDS; seed++) {
          const run = await fuzzRun(kernel, sandbox, {
            seed,
            calls: CALLS,
            ports: "base",
            label: `v${iface}`,
          });
          tally.runs++;
          tally.calls += run.calls.size;
          if (run.completed) tally.completed++;
          else if (run.code === EXIT_CODE.TIMEOUT) tally.timeouts++;
          else tally.protocolStops++;
        }
      } finally {
        sandbox.dispose();
      }
      assert.equal(tally.runs, SEEDS);
      // deno-lint-ignore no-console
      console.log(
        `fuzz v${iface}: ${tally.runs} runs, ${tally.calls} hypercalls; ` +
          `${tally.completed} ran all ${CALLS} calls, ${tally.protocolStops} stopped cleanly ` +
          `(exit 82), ${tally.timeouts} timed out (exit 85); host crashes: 0`,
      );
    },
  );
}
