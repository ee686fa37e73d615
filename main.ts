/**
 * The dhyve command line: `deno run --allow-ffi --allow-read main.ts KERNEL`.
 *
 * It runs `src/main.ts` from the bundle that `deno task build` (and `npm ci`)
 * makes of it in `dist/bundle/`: a few files instead of ~90 TypeScript modules,
 * which halves the time Deno takes to load dhyve before the guest starts (see
 * docs/performance.md, "Start-up"). After changing `src/`, run
 * `deno task build` (`deno task test` does it first); a test fails while the
 * bundle is older than the sources.
 * @module
 */

// @ts-types="./src/main.ts"
import { main, runCommandLine } from "./dist/bundle/main.js";

export { main };

if (import.meta.main) await runCommandLine(Deno.args);
