/**
 * dhyve's entry point inside a container, where it is the container's pid 1.
 * The kernel drops a signal sent to a namespace's pid 1 unless the process
 * has a handler for it, and dhyve listens for SIGTERM and SIGINT only while
 * the guest runs: a `podman stop` during start-up would be lost and end, 10 s
 * later, in SIGKILL (137). So this entry listens from its first moment, and
 * until dhyve has started listening itself a stop signal ends the process at
 * once with dhyve's code for it (143, 130). After that, dhyve's own handling
 * applies (files closed, temp dir removed). Then it runs `main.ts`.
 * @module
 */

import { EXIT_CODE } from "../exit_codes.ts";

/** The signals dhyve stops on, with its exit codes for them. */
const STOP_SIGNALS = [
  { signal: "SIGTERM", code: EXIT_CODE.SIGTERM },
  { signal: "SIGINT", code: EXIT_CODE.SIGINT },
] as const satisfies readonly { signal: Deno.Signal; code: number }[];

let dhyveListens = false;
const addSignalListener = Deno.addSignalListener;
// dhyve registers its stop listeners through Deno.addSignalListener; seeing
// the first one tells that dhyve now handles the signal itself.
Deno.addSignalListener = (signal: Deno.Signal, handler: () => void): void => {
  if (STOP_SIGNALS.some((s) => s.signal === signal)) dhyveListens = true;
  addSignalListener(signal, handler);
};
for (const { signal, code } of STOP_SIGNALS) {
  addSignalListener(signal, () => {
    if (dhyveListens) return;
    try {
      Deno.stderr.writeSync(
        new TextEncoder().encode(`dhyve: error: Stopped by ${signal} before the guest started\n`),
      );
    } catch {
      // stderr is gone
    }
    Deno.exit(code);
  });
}

// The VM first, as main.ts makes it for its own command line (src/machine/early_vm.ts): the
// same bundle module main.ts loads, so the run takes this VM.
const early: typeof import("../machine/early_vm.ts") = await import(
  "../../dist/bundle/machine/early_vm.js"
);
early.openVmEarly(Deno.args);
// Loaded only now, so that the listeners above are in place while it loads.
const { main } = await import("../../main.ts");
Deno.exit(await main(Deno.args));
