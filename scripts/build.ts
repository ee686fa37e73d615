/**
 * `deno task build` (also run by `npm ci`): bundles the command line
 * (`src/main.ts`) and the Workers' entry modules into `dist/bundle/` with
 * `deno bundle --code-splitting`, which `main.ts` loads. Deno then reads a
 * few files instead of ~90 TypeScript modules at every start; the parts a
 * plain run does not need (GDB stub, `--net`, SMP, the emulator, the Hermit
 * image reader, LogTape, the TOML parser) stay in chunks loaded on use.
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
import { markEagerCompile } from "./eager_compile.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** The bundle's entry modules (the Workers must match `src/locations.ts`). */
export const BUNDLE_ENTRIES: readonly string[] = [
  "src/machine/early_vm.ts",
  "src/main.ts",
  "src/vcpu/worker.ts",
  "src/net/net_worker.ts",
];

/** Writes the bundle to `outDir` (replaced); throws with deno bundle's output when it fails. */
export async function buildBundle(outDir: string): Promise<void> {
  await Deno.remove(outDir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=deno",
      "--code-splitting",
      `--outdir=${outDir}`,
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
  markBundleEager(outDir);
}

/** Rewrites every `.js` file under `dir` with {@linkcode markEagerCompile}. */
function markBundleEager(dir: string): void {
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) markBundleEager(path);
    else if (entry.isFile && entry.name.endsWith(".js")) {
      Deno.writeTextFileSync(path, markEagerCompile(Deno.readTextFileSync(path)));
    }
  }
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
