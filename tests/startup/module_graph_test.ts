/**
 * What a plain run loads at start-up. `main.ts` loads the bundle of
 * `src/main.ts` (`deno task build`, `dist/bundle/`); both the sources' static
 * import graph and the bundle's (from `deno info --json`: what Deno loads
 * before the first line runs) must not reach the modules a plain run does
 * not need, each of which costs every run start-up time and memory
 * (docs/performance.md, "Start-up"): Deno's Node compatibility layer (any
 * `node:` module), npm packages (LogTape, smol-toml), the GDB stub, the
 * --net device, its virtio model and data path, the SMP Workers, the
 * instruction emulator, the Hermit image reader and the statistics report.
 * Those are loaded with `await import()` where they are used, and the
 * bundle keeps each in a chunk of its own. The bundle must also be what
 * `deno task build` makes of today's sources. No timing here: the figures
 * live in `bench/startup.ts`.
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { fileURLToPath } from "node:url";
import { testUnless } from "../_helpers/skip.ts";
import { BUNDLE_DIR } from "../../src/locations.ts";
import { buildBundle } from "../../scripts/build.ts";
import { markEagerCompile } from "../../scripts/eager_compile.ts";
import { PROFILED_FILES } from "../../scripts/startup_profile.ts";

/** Modules a plain run (one vCPU, no --net, no -s, an ELF kernel) must not load eagerly. */
const NOT_ON_THE_PLAIN_PATH: readonly { what: string; test: (specifier: string) => boolean }[] = [
  { what: "a node: built-in (Node compatibility layer)", test: (s) => s.startsWith("node:") },
  {
    what: "an npm package",
    test: (s) => (s.startsWith("npm:") || s.includes("/node_modules/")),
  },
  {
    what: "the GDB stub",
    test: (s) => s.includes("/src/gdb/") && !s.endsWith("/gdb/listen_error.ts"),
  },
  {
    what: "the --net device",
    test: (s) => /\/(net_device|host_io|net_data_path|net_worker)\.ts$/.test(s),
  },
  {
    what: "the virtio-net device model",
    test: (s) => /\/virtio\/(net_registers|net_state|virtqueue)\.ts$/.test(s),
  },
  {
    what: "the SMP Workers",
    test: (s) => /\/(vcpu\/(smp|worker|file_channel)|machine\/run_smp)\.ts$/.test(s),
  },
  {
    what: "the instruction emulator",
    test: (s) => /\/(sse|sse_float|run_ahead|int|decode)\.ts$/.test(s) || s.endsWith("/emulate.ts"),
  },
  { what: "the Hermit image reader", test: (s) => s.endsWith("/hermit_image.ts") },
  { what: "the --stats report", test: (s) => s.endsWith("/stats_report.ts") },
  { what: "the LogTape bridge", test: (s) => s.endsWith("/log_logtape.ts") },
];

interface Dependency {
  specifier: string;
  code?: { specifier?: string };
  isDynamic?: boolean;
}

interface ModuleGraph {
  roots: string[];
  modules: { specifier: string; dependencies?: Dependency[] }[];
  redirects: Record<string, string>;
}

const canRun = Deno.permissions.querySync({ name: "run" }).state === "granted" &&
  Deno.permissions.querySync({ name: "read" }).state === "granted";
const skip = canRun ? null : "needs --allow-run and --allow-read (it runs deno info)";

async function graphOf(entry: string): Promise<ModuleGraph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.ok(out.success, `deno info ${entry} failed: ${text.decode(out.stderr)}`);
  return JSON.parse(text.decode(out.stdout)) as ModuleGraph;
}

/**
 * Every module reachable from the roots by static (non-type) imports, with
 * one importer each. With `rootsAwait`, the roots' own dynamic imports count
 * as static: `main.ts` awaits its import of the bundle at its top level.
 */
function staticClosure(graph: ModuleGraph, rootsAwait = false): Map<string, string> {
  const byName = new Map(graph.modules.map((m) => [m.specifier, m]));
  const importer = new Map<string, string>(graph.roots.map((r) => [r, "(root)"]));
  const queue = [...graph.roots];
  while (queue.length > 0) {
    const from = queue.shift()!;
    for (const dep of byName.get(from)?.dependencies ?? []) {
      const target = dep.code?.specifier;
      if ((dep.isDynamic && !(rootsAwait && graph.roots.includes(from))) || target === undefined) {
        continue;
      }
      const resolved = graph.redirects[target] ?? target;
      if (!importer.has(resolved)) {
        importer.set(resolved, from);
        queue.push(resolved);
      }
    }
  }
  return importer;
}

/** Which of the not-needed modules `closure` holds, each with its importer. */
function offenders(closure: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [specifier, from] of closure) {
    const rule = NOT_ON_THE_PLAIN_PATH.find((r) => r.test(specifier));
    if (rule !== undefined) found.push(`${specifier} (${rule.what}), imported by ${from}`);
  }
  return found;
}

testUnless(
  skip,
  "src/main.ts: a plain run's static imports reach no module it does not need",
  async () => {
    const closure = staticClosure(await graphOf("src/main.ts"));
    assert.ok(closure.size > 20, `only ${closure.size} modules: the graph walk is broken`);
    assert.ok([...closure.keys()].some((s) => s.endsWith("/src/vm.ts")), "vm.ts is loaded");
    assert.deepEqual(
      offenders(closure),
      [],
      "load these with `await import()` where they are used, not at start-up",
    );
  },
);

testUnless(
  skip,
  "the graph walk sees what the check forbids: mod.ts loads LogTape, src/main.ts the rest lazily",
  async () => {
    // mod.ts (the library entry) imports LogTape statically: the walk must find it.
    const library = offenders(staticClosure(await graphOf("mod.ts")));
    assert.ok(library.some((o) => o.includes("log_logtape.ts")), library.join("\n"));
    // The modules src/main.ts loads on use are in its graph, as dynamic imports only.
    const all = (await graphOf("src/main.ts")).modules.map((m) => m.specifier);
    for (
      const lazy of ["/src/gdb/run.ts", "/src/machine/run_smp.ts", "/src/loader/hermit_image.ts"]
    ) {
      assert.ok(all.some((s) => s.endsWith(lazy)), `${lazy} is in src/main.ts's full graph`);
    }
  },
);

/**
 * The source modules a bundle file holds, as paths from the repository root
 * (`src/…`, `node_modules/…`): the `sources` of its source map (the bundle is
 * minified; `scripts/build.ts` writes a map beside each file).
 */
function sourcesOf(bundleFile: string): string[] {
  const map = JSON.parse(Deno.readTextFileSync(`${bundleFile}.map`)) as { sources: string[] };
  const root = new URL(`file://${REPO_ROOT}/`);
  return map.sources.map((source) =>
    new URL(source, `file://${bundleFile}`).href.slice(root.href.length)
  );
}

testUnless(
  skip,
  "main.ts loads only the bundle, and the bundle's start-up files hold no module a plain run does not need",
  async () => {
    const graph = await graphOf("main.ts");
    const files = [...staticClosure(graph, true).keys()].filter((s) => !graph.roots.includes(s));
    const outside = files.filter((s) => !s.includes(`/${BUNDLE_DIR}/`));
    assert.deepEqual(outside, [], "main.ts must load dhyve through the bundle only");
    const held = new Map<string, string>();
    for (const file of files) {
      for (const source of sourcesOf(fileURLToPath(file))) held.set(`/${source}`, file);
    }
    assert.ok(
      held.has("/src/machine/build.ts") && held.size > 20,
      `the bundle holds ${held.size} modules`,
    );
    const found: string[] = [];
    for (const [source, file] of held) {
      const rule = NOT_ON_THE_PLAIN_PATH.find((r) => r.test(source));
      if (rule !== undefined) found.push(`${source} (${rule.what}), in ${file}`);
    }
    assert.deepEqual(found, [], "the bundle loads these at start-up: keep them in lazy chunks");
  },
);

testUnless(
  skip,
  "a plain run loads two bundle files: the early VM step's and the command line's (scripts/rechunk.ts)",
  async () => {
    // Deno spends ~70 µs on each module file it loads; esbuild alone left 25 here.
    const graph = await graphOf("main.ts");
    const files = [...staticClosure(graph, true).keys()]
      .filter((s) => !graph.roots.includes(s))
      .map((s) => s.slice(s.indexOf(`/${BUNDLE_DIR}/`) + BUNDLE_DIR.length + 2))
      .sort();
    assert.deepEqual(files, ["machine/early_vm.js", "main.js"]);
  },
);

const canBuild = canRun && Deno.permissions.querySync({ name: "write" }).state === "granted";

testUnless(
  canBuild ? null : "needs --allow-run, --allow-read and --allow-write (it runs deno bundle)",
  "dist/bundle is what `deno task build` makes of today's sources",
  async () => {
    const fresh = await Deno.makeTempDir({ prefix: "dhyve-bundle-" });
    try {
      await buildBundle(fresh);
      const built = listTree(fresh);
      const shipped = listTree(`${REPO_ROOT}/${BUNDLE_DIR}`);
      const stale = "dist/bundle is older than src/: run `deno task build`";
      assert.deepEqual([...shipped.keys()].sort(), [...built.keys()].sort(), stale);
      for (const [name, bytes] of built) {
        assert.ok(equalBytes(bytes, shipped.get(name)!), `${name} differs. ${stale}`);
      }
    } finally {
      await Deno.remove(fresh, { recursive: true });
    }
  },
);

testUnless(
  Deno.permissions.querySync({ name: "read" }).state === "granted" ? null : "needs --allow-read",
  "bundle files have their functions marked for eager compilation (V8 compiles them with the file)",
  () => {
    const text = new TextDecoder();
    // The start-up files only as far as the start-up profile says (scripts/startup_profile.ts);
    // that they are what the build makes of it, the test above checks.
    const unmarked = [...listTree(`${REPO_ROOT}/${BUNDLE_DIR}`)]
      .filter(([name]) => name.endsWith(".js"))
      .filter(([name, bytes]) => {
        const source = text.decode(bytes);
        return PROFILED_FILES.includes(name)
          ? !source.startsWith("var __eagerDefine = ")
          : markEagerCompile(source) !== source;
      })
      .map(([name]) => name);
    assert.deepEqual(unmarked, [], "scripts/build.ts must run scripts/eager_compile.ts");
  },
);

function listTree(dir: string, prefix = ""): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [k, v] of listTree(path, `${prefix}${entry.name}/`)) out.set(k, v);
    } else out.set(`${prefix}${entry.name}`, Deno.readFileSync(path));
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
