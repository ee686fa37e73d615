/**
 * Where dhyve's own files are, whether this code runs from the TypeScript
 * sources (`src/**.ts`) or from the bundle `deno task build` makes of them
 * (`dist/bundle/*.js`, what `main.ts` loads): the root directory (Landlock
 * and `--print-permissions` name it), the directory modules are read from
 * after start-up (Workers, lazily loaded code), and the Workers' entry
 * modules. Every other module asks here instead of resolving paths against
 * its own `import.meta.url`, which differs between the two layouts.
 * @module
 */

import { fileHrefToPath } from "./posix_path.ts";

/** The bundle's directory below dhyve's root (`deno task build` writes it). */
export const BUNDLE_DIR = "dist/bundle";

/** The Workers dhyve starts, by entry module: source path, and path in the bundle. */
export const WORKERS = {
  vcpu: { source: "src/vcpu/worker.ts", bundled: `${BUNDLE_DIR}/vcpu/worker.js` },
  net: { source: "src/net/net_worker.ts", bundled: `${BUNDLE_DIR}/net/net_worker.js` },
} as const;

/** A Worker dhyve starts: the SMP vCPUs, or the `--net` data path. */
export type WorkerKind = keyof typeof WORKERS;

/**
 * The layout a module URL belongs to, and the root URL: the text before the
 * last `/dist/bundle/` (bundled: the chunk holding this code may sit at any
 * depth of the bundle) or before the last `/src/` (sources).
 */
export function layoutOf(url: string): { root: string; bundled: boolean } {
  const inBundle = url.lastIndexOf(`/${BUNDLE_DIR}/`);
  if (inBundle >= 0) return { root: url.slice(0, inBundle + 1), bundled: true };
  const inSources = url.lastIndexOf("/src/");
  return {
    root: inSources >= 0 ? url.slice(0, inSources + 1) : new URL("./", url).href,
    bundled: false,
  };
}

const here = layoutOf(import.meta.url);

/** True when this code runs from the bundle, false when from the TypeScript sources. */
export const RUNS_BUNDLED: boolean = here.bundled;

/** dhyve's root directory (holding `main.ts`, `src/`, `dist/`), or null when not loaded from files. */
export function dhyveRoot(): string | null {
  // The text, not a URL object: a plain run would construct its only URL here.
  return here.root.startsWith("file:") ? fileHrefToPath(here.root).replace(/\/+$/, "") : null;
}

/**
 * The directory the running code reads its modules from after start-up
 * (Workers, lazily loaded parts): `src/` or `dist/bundle/`; null when not
 * loaded from files.
 */
export function moduleDir(): string | null {
  const root = dhyveRoot();
  if (root === null) return null;
  return `${root}/${RUNS_BUNDLED ? BUNDLE_DIR : "src"}`;
}

/** The entry module of a Worker, in the layout this code runs from. */
export function workerUrl(kind: WorkerKind): URL {
  const { source, bundled } = WORKERS[kind];
  return new URL(RUNS_BUNDLED ? bundled : source, here.root);
}

/** The command-line entry `main.ts` (what `--print-permissions` tells Deno to run). */
export function cliEntry(): string | null {
  const root = dhyveRoot();
  return root === null ? null : `${root}/main.ts`;
}
