/**
 * `deno task build` (also run by `npm ci`): bundles the command line
 * (`src/main.ts`) and the Workers' entry modules into `dist/bundle/` with
 * `deno bundle --code-splitting`, which `main.ts` loads, and then merges
 * esbuild's chunks with rollup (`scripts/rechunk.ts`): a plain run reads two
 * files instead of ~90 TypeScript modules at every start; the parts it does
 * not need (GDB stub, `--net`, SMP, the emulator, the Hermit image reader,
 * LogTape, the TOML parser) stay in chunks loaded on use.
 *
 * Afterwards it warms Deno's V8 code cache for the bundle, which dhyve's
 * own runs never write (see `src/code_cache.ts`).
 *
 * Usage: `deno run --allow-read --allow-write --allow-run --allow-env scripts/build.ts [--no-warm] [OUT_DIR]`.
 * @module
 */

import { fileURLToPath } from "node:url";
import { BUNDLE_DIR } from "../src/locations.ts";
import { warmCodeCache } from "../src/code_cache.ts";
import remapping from "npm:@jridgewell/remapping@2.3.5";
import { type EagerFilter, markEagerCompileWithMap } from "./eager_compile.ts";
import { rechunk } from "./rechunk.ts";
import {
  keyedFunctionsOfFile,
  PROFILE_FILE,
  PROFILED_FILES,
  readProfile,
} from "./startup_profile.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** The bundle's entry modules (the Workers must match `src/locations.ts`). */
export const BUNDLE_ENTRIES: readonly string[] = [
  "src/machine/early_vm.ts",
  "src/main.ts",
  "src/vcpu/worker.ts",
  "src/net/net_worker.ts",
];

/**
 * Which functions the build marks for eager compilation: as the start-up
 * profile says (`scripts/startup_profile.ts`; everything where there is
 * none), all of them, or none (what `deno task profile` records from).
 */
export type EagerMode = "profile" | "all" | "none";

/** Writes the bundle to `outDir` (replaced); throws with deno bundle's output when it fails. */
export async function buildBundle(outDir: string, eager: EagerMode = "profile"): Promise<void> {
  await removeTree(outDir);
  // esbuild names chunks by a hash that covers the maps' relative paths to the sources, so the
  // bundle is made beside dist/bundle (same depth) and then moved: a build for elsewhere (the
  // freshness test's) is the same bytes.
  Deno.mkdirSync(`${ROOT}/dist`, { recursive: true });
  const stage = Deno.makeTempDirSync({ dir: `${ROOT}/dist`, prefix: ".bundle-" });
  const merged = Deno.makeTempDirSync({ dir: `${ROOT}/dist`, prefix: ".bundle-" });
  // A temp dir is private (0700); the bundle is read by other users too (a container's user).
  Deno.chmodSync(merged, 0o755);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform=deno",
        "--code-splitting",
        // Minified: less text to load and a smaller V8 code cache (docs/performance.md). Not
        // --keep-names: that adds a call per function at load; the maps give the names back.
        "--minify",
        // Maps beside the files, not linked from them (Deno would read a linked map at every
        // start). `deno task stack` turns a minified stack trace into source positions.
        "--sourcemap=external",
        `--outdir=${stage}`,
        ...BUNDLE_ENTRIES,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const text = new TextDecoder();
      throw new Error(
        `deno bundle failed:\n${text.decode(out.stdout)}${text.decode(out.stderr)}`.trimEnd(),
      );
    }
    // Then as few files per program as it loads at start (scripts/rechunk.ts).
    await rechunk(stage, merged);
    markBundleEager(merged, eager);
    moveTree(merged, outDir);
  } finally {
    await removeTree(stage);
    await removeTree(merged);
  }
}

async function removeTree(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** Renames `from` to `to`, or copies it where they are on different file systems. */
function moveTree(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
    return;
  } catch (error) {
    if (!(error instanceof Error && /cross-device|EXDEV/i.test(error.message))) throw error;
  }
  Deno.mkdirSync(to, { recursive: true });
  for (const entry of Deno.readDirSync(from)) {
    if (entry.isDirectory) moveTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
    else Deno.copyFileSync(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/**
 * Rewrites every `.js` file under `dir` with `markEagerCompile`, and its
 * source map (`.js.map`, rollup's) so that it maps the rewritten file to
 * the sources: the rewrite's map composed with rollup's. In the start-up
 * files, with `mode` "profile", only the functions the start-up profile
 * names (and those it cannot name) are marked.
 */
function markBundleEager(dir: string, mode: EagerMode): void {
  if (mode === "none") return;
  const profile = mode === "profile" ? readProfile(`${ROOT}/${PROFILE_FILE}`) : null;
  const executed = profile === null ? null : new Set(profile.functions);
  const walk = (sub: string): void => {
    for (const entry of Deno.readDirSync(`${dir}/${sub}`)) {
      const name = `${sub}${entry.name}`;
      if (entry.isDirectory) walk(`${name}/`);
      else if (entry.isFile && name.endsWith(".js")) {
        const filter = executed !== null && PROFILED_FILES.includes(name)
          ? profiledFilter(`${dir}/${name}`, executed)
          : undefined;
        markFile(`${dir}/${name}`, filter);
      }
    }
  };
  walk("");
}

/** Marks the functions of the file at `path` that `executed` names, or that have no key. */
function profiledFilter(path: string, executed: ReadonlySet<string>): EagerFilter {
  const keys = new Map(keyedFunctionsOfFile(ROOT, path).map((fn) => [fn.start, fn.key]));
  return (fn) => {
    const key = keys.get(fn.start);
    return key === undefined || key === null || executed.has(key);
  };
}

/** Rewrites the file at `path` and its map (every function, or those `keep` accepts). */
function markFile(path: string, keep?: EagerFilter): void {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const bundled = JSON.parse(Deno.readTextFileSync(`${path}.map`));
  const eager = markEagerCompileWithMap(Deno.readTextFileSync(path), name, keep);
  const map = remapping([eager.map, bundled], () => null, { excludeContent: true });
  map.file = name;
  Deno.writeTextFileSync(path, eager.code);
  Deno.writeTextFileSync(`${path}.map`, `${map.toString()}\n`);
}

function say(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`dhyve build: ${line}\n`));
}

if (import.meta.main) {
  const warm = !Deno.args.includes("--no-warm");
  const outArg = Deno.args.find((a) => !a.startsWith("--"));
  const outDir = outArg === undefined
    ? `${ROOT}/${BUNDLE_DIR}`
    : outArg.startsWith("/")
    ? outArg
    : `${Deno.cwd()}/${outArg}`;
  try {
    await buildBundle(outDir);
  } catch (error) {
    say(error instanceof Error ? error.message : String(error));
    Deno.exit(1);
  }
  if (warm && !(await warmCodeCache(outDir))) {
    say("warming the V8 code cache failed (dhyve runs, only slower)");
  }
}
