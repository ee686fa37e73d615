/**
 * The build's second pass: merges the chunks `deno bundle --code-splitting`
 * writes into as few files as each program loads at start.
 *
 * Why: esbuild makes one chunk per set of entry points that share modules,
 * and with four entries (the early VM step, the command line, the two
 * Workers) and the lazily loaded parts, a plain run read 25 bundle files. Deno
 * spends ~70 µs on each file it loads (read, hash, code-cache lookup,
 * instantiation), so the files cost ~1.7 ms of every start. Rollup, given
 * esbuild's output, puts every module a program loads at start into one
 * chunk per entry and keeps the lazily loaded parts (with their `node:`
 * imports) apart. One rollup run per isolate: the command line (the early VM
 * step and `main.js`, which share module instances: the early VM, libc's
 * handle), the vCPU Worker, the net Worker. Each Worker gets its own copy of
 * what it shares with the command line; they never shared instances anyway.
 *
 * The code stays as esbuild minified it (rollup adds only its compact glue),
 * and each file's source map is rollup's, traced back through esbuild's to
 * `src/`.
 * @module
 */

import type { OutputChunk, Plugin } from "npm:@rollup/wasm-node@4.68.4";

/** The programs in the bundle: the entry files (below the bundle) each loads together. */
export const PROGRAMS: readonly (readonly string[])[] = [
  ["machine/early_vm.js", "main.js"],
  ["vcpu/worker.js"],
  ["net/net_worker.js"],
];

/** The maps `deno bundle` wrote beside its files, so that rollup's maps reach `src/`. */
function esbuildMaps(): Plugin {
  return {
    name: "esbuild-maps",
    load(id: string): { code: string; map: string } | null {
      if (!id.endsWith(".js")) return null;
      return { code: Deno.readTextFileSync(id), map: Deno.readTextFileSync(`${id}.map`) };
    },
  };
}

/**
 * Re-chunks the bundle in `from` (esbuild's output with its `.js.map` files)
 * into `to` (which must exist), program by program; throws rollup's error.
 */
export async function rechunk(from: string, to: string): Promise<void> {
  // Loaded here, not with this module: rollup reads the environment (colours) when it loads.
  const { rollup } = await import("npm:@rollup/wasm-node@4.68.4");
  for (const entries of PROGRAMS) {
    const bundle = await rollup({
      input: Object.fromEntries(entries.map((e) => [e.replace(/\.js$/, ""), `${from}/${e}`])),
      // node: built-ins and the like stay imports; only the bundle's own files are merged.
      external: (id: string) => !id.startsWith(".") && !id.startsWith("/"),
      // Entries may export more than they did (main.js what early_vm.js shares with it): no
      // facade files.
      preserveEntrySignatures: "allow-extension",
      plugins: [esbuildMaps()],
      onwarn(warning): never {
        throw new Error(`rollup: ${warning.message}`);
      },
    });
    try {
      const { output } = await bundle.generate({
        dir: to,
        format: "es",
        compact: true,
        entryFileNames: "[name].js",
        chunkFileNames: "[name]-[hash].js",
        sourcemap: "hidden", // beside the file, not linked: Deno would read a linked map at start
        sourcemapExcludeSources: true,
      });
      for (const file of output) {
        if (file.type !== "chunk") continue;
        write(to, file);
      }
    } finally {
      await bundle.close();
    }
  }
}

function write(dir: string, chunk: OutputChunk): void {
  const path = `${dir}/${chunk.fileName}`;
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(path, chunk.code);
  if (chunk.map !== null) Deno.writeTextFileSync(`${path}.map`, `${chunk.map.toString()}\n`);
}
