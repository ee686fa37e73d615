/**
 * The dhyve command line: `deno run --allow-ffi --allow-read main.ts KERNEL`.
 *
 * It runs `src/main.ts` from the bundle that `deno task build` (and `npm ci`)
 * makes of it in `dist/bundle/`: a few files instead of ~90 TypeScript modules,
 * which halves the time Deno takes to load dhyve before the guest starts (see
 * docs/performance.md, "Start-up"). After changing `src/`, run
 * `deno task build` (`deno task test` does it first); a test fails while the
 * bundle is older than the sources.
 *
 * First it loads only the KVM layer and creates the VM (`src/machine/early_vm.ts`),
 * so that the interrupt controller's grace period passes while the rest loads.
 * @module
 */

// @ts-types="./src/machine/early_vm.ts"
import { openVmEarly } from "./dist/bundle/machine/early_vm.js";

if (import.meta.main) openVmEarly(Deno.args);

const bundle: typeof import("./src/main.ts") = await import("./dist/bundle/main.js");

/** Runs the CLI with `argv` and returns the exit code (see `src/main.ts`). */
export const main: typeof bundle.main = bundle.main;

if (import.meta.main) await bundle.runCommandLine(Deno.args);
