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
import { buildGuest } from "../_helpers/guests.ts";
import { denoCommand, dhyveArgs } from "../_helpers/cli.ts";
import { kvmTest } from "../_helpers/kvm.ts";

const decoder = new TextDecoder();

/** Seeds per interface. */
const SEEDS = 30;
/** Hypercalls per run. */
const CALLS = 400;
/** Exit codes a fuzz run may end with. */
const ALLOWED = new Set<number>([0, EXIT_CODE.GUEST_PROTOCOL, EXIT_CODE.TIMEOUT]);
const SECRET = "secret outside the map\n";

/** How one interface's runs ended. */
interface Tally {
  runs: number;
  completed: number;
  protocolStops: number;
  timeouts: number;
  calls: number;
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

for (const iface of [1, 2] as const) {
  kvmTest(
    `fuzz guest v${iface}: ${SEEDS} seeds × ${CALLS} random hypercalls, the host survives every run`,
    async () => {
      const kernel = await buildGuest("fuzz", { iface, pie: true, versionNote: false });
      const root = Deno.makeTempDirSync({ prefix: "dhyve-fuzz-" });
      const tempParent = Deno.makeTempDirSync({ prefix: "dhyve-fuzz-tmp-" });
      const tally: Tally = { runs: 0, completed: 0, protocolStops: 0, timeouts: 0, calls: 0 };
      try {
        const other = `${root}/other`;
        Deno.mkdirSync(other);
        Deno.writeTextFileSync(`${other}/secret.txt`, SECRET);
        const secretMtime = Deno.statSync(`${other}/secret.txt`).mtime?.getTime();
        for (let seed = 1; seed <= SEEDS; seed++) {
          // A fresh mapped directory per run: the guest may unlink and create in it.
          const data = `${root}/data`;
          Deno.mkdirSync(data);
          Deno.writeTextFileSync(`${data}/hello.txt`, "hello\n");
          Deno.symlinkSync(`${other}/secret.txt`, `${data}/escape`);
          Deno.symlinkSync(other, `${data}/outdir`);
          const output = await denoCommand(
            dhyveArgs([
              "--file-mapping",
              `${data}:/root/data`,
              "--tempdir",
              tempParent,
              "--file-isolation",
              "normal",
              "--no-aslr",
              "--timeout",
              "20s",
              kernel,
              "--",
              String(seed),
              String(CALLS),
            ], {
              perms: [
                "--allow-ffi",
                `--allow-read=${kernel},${data},${tempParent}`,
                `--allow-write=${data},${tempParent}`,
              ],
            }),
          ).output();
          const stdout = decoder.decode(output.stdout);
          const stderr = decoder.decode(output.stderr);
          const context =
            `v${iface} seed ${seed}: exit ${output.code} (signal ${output.signal})\n` +
            `stderr:\n${stderr.slice(0, 4000)}`;
          tally.runs++;
          assert.equal(output.signal, null, `the host died of a signal: ${context}`);
          assert.ok(ALLOWED.has(output.code), `unexpected exit code: ${context}`);
          assert.doesNotMatch(stderr, /\n\s+at /, `a stack trace: ${context}`);
          assert.doesNotMatch(stderr, /Internal error/, context);
          // Guest fd 2 output shares stderr and may leave a line unfinished: count anywhere.
          const errors = stderr.split("dhyve: error: ").length - 1;
          assert.equal(errors, output.code === 0 ? 0 : 1, `error lines: ${context}`);
          // Markers only grow; a guest write may echo an old one, so take the largest.
          const marks = [...stdout.matchAll(/@fuzz:(\d+)@/g)].map((m) => Number(m[1]));
          const last = marks.length === 0 ? -1 : Math.max(...marks);
          if (output.code === 0) {
            assert.match(stdout, new RegExp(`fuzz: done ${CALLS} calls`), context);
            tally.completed++;
            tally.calls += CALLS;
          } else {
            if (output.code === EXIT_CODE.TIMEOUT) tally.timeouts++;
            else tally.protocolStops++;
            tally.calls += last + 1; // the call after the last marker is the one that stopped it
          }
          assert.equal(Deno.readTextFileSync(`${other}/secret.txt`), SECRET, context);
          assert.equal(Deno.statSync(`${other}/secret.txt`).mtime?.getTime(), secretMtime);
          assert.deepEqual(names(other), ["secret.txt"], `created outside the map: ${context}`);
          assert.deepEqual(names(root), ["data", "other"], `created next to the map: ${context}`);
          assert.deepEqual(names(tempParent), [], `temp dir left behind: ${context}`);
          Deno.removeSync(data, { recursive: true });
        }
      } finally {
        Deno.removeSync(root, { recursive: true });
        Deno.removeSync(tempParent, { recursive: true });
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
