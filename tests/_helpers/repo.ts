/**
 * Where the repository is, for tests that run `main.ts`, read sources or
 * build guests: the one copy of the repo-root constant.
 * @module
 */

// No node: imports: `deno check` cannot resolve @types/node with this repo's manual node_modules.
import { BUNDLE_DIR } from "../../src/locations.ts";

/** The repository's root directory, without a trailing slash. */
export const REPO_ROOT: string = decodeURIComponent(new URL("../..", import.meta.url).pathname)
  .replace(/\/$/, "");

/** dhyve's command-line entry point. */
export const MAIN: string = `${REPO_ROOT}/main.ts`;

/**
 * Where `main.ts` reads dhyve's modules from: the bundle `deno task build`
 * makes (vCPU and net Workers load theirs from here, so a run with them
 * needs `--allow-read` on it).
 */
export const MODULE_DIR: string = `${REPO_ROOT}/${BUNDLE_DIR}`;
