/**
 * A copy of dhyve that another user can run. Tests that run dhyve as `nobody`
 * cannot use the checkout itself when it lives in a private directory (a
 * clone into `mktemp -d` or root's home is mode 0700), so they stage what a
 * run needs in a world-readable temp dir: `main.ts`, `mod.ts`, `src/`, the
 * project files, the npm packages `src/` imports (from `node_modules`), the
 * deno binary (hard-linked where possible) and the test's own files.
 * Needs `--allow-read`, `--allow-write` and root (for the unprivileged user's
 * home directory).
 * @module
 */

import { REPO_ROOT } from "./repo.ts";

/** The unprivileged user the staged runs use (`nobody` on Debian, Fedora and Arch). */
export const NOBODY_ID = 65534;

/** `setpriv` arguments that drop to {@linkcode NOBODY_ID} with no groups. */
export const AS_NOBODY: readonly string[] = [
  "setpriv",
  `--reuid=${NOBODY_ID}`,
  `--regid=${NOBODY_ID}`,
  "--clear-groups",
];

/** A staged copy of dhyve, removed by `dispose()`. */
export interface Stage {
  /** The staged `main.ts`. */
  readonly main: string;
  /** The staged deno binary. */
  readonly deno: string;
  /** A home directory (and cwd) owned by the unprivileged user. */
  readonly home: string;
  /** The staged copy of each extra file, by its original path. */
  readonly files: ReadonlyMap<string, string>;
  /** The environment for a run as that user (HOME and DENO_DIR inside `home`). */
  readonly env: Record<string, string>;
  /** Removes the staged tree. */
  dispose(): Promise<void>;
}

/**
 * A parent directory every user can enter (`/tmp` or `$TMPDIR`), or null:
 * staged runs are impossible where none is.
 */
export function stageParent(): string | null {
  const tmpdir = Deno.env.get("TMPDIR");
  for (const dir of ["/tmp", ...(tmpdir === undefined ? [] : [tmpdir])]) {
    try {
      const info = Deno.statSync(dir);
      if (info.isDirectory && info.mode !== null && (info.mode & 0o001) !== 0) return dir;
    } catch {
      // not there: try the next
    }
  }
  return null;
}

/** The npm packages that `src/` imports through `npm:` specifiers (their names). */
function npmPackagesOfSrc(): string[] {
  const names = new Set<string>();
  function scan(dir: string): void {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) scan(path);
      else if (entry.name.endsWith(".ts")) {
        for (const m of Deno.readTextFileSync(path).matchAll(/"npm:((?:@[^/"@]+\/)?[^/"@]+)@/g)) {
          names.add(m[1]!);
        }
      }
    }
  }
  scan(`${REPO_ROOT}/src`);
  return [...names];
}

/** `names` and their dependencies, by the `package.json` files in `node_modules`. */
function withDependencies(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const queue = [...names];
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const manifest = JSON.parse(
      Deno.readTextFileSync(`${REPO_ROOT}/node_modules/${name}/package.json`),
    ) as { dependencies?: Record<string, string> };
    queue.push(...Object.keys(manifest.dependencies ?? {}));
  }
  return [...seen];
}

async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (!info.isDirectory) {
    await Deno.copyFile(from, to);
    await Deno.chmod(to, (info.mode ?? 0o644) & 0o111 ? 0o755 : 0o644);
    return;
  }
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  await Deno.chmod(to, 0o755);
  for await (const entry of Deno.readDir(from)) {
    await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** Stages dhyve and `files` (e.g. kernels) for a run as {@linkcode NOBODY_ID}. */
export async function stageDhyve(files: readonly string[] = []): Promise<Stage> {
  const parent = stageParent();
  if (parent === null) throw new Error("No world-accessible temp directory to stage dhyve in");
  const root = await Deno.makeTempDir({ dir: parent, prefix: "dhyve-stage-" });
  try {
    await Deno.chmod(root, 0o755);
    await Deno.mkdir(`${root}/dhyve/node_modules`, { recursive: true, mode: 0o755 });
    for (const name of ["main.ts", "mod.ts", "deno.json", "package.json", "src", "dist/bundle"]) {
      await copyTree(`${REPO_ROOT}/${name}`, `${root}/dhyve/${name}`);
    }
    for (const name of withDependencies(npmPackagesOfSrc())) {
      await copyTree(`${REPO_ROOT}/node_modules/${name}`, `${root}/dhyve/node_modules/${name}`);
    }
    const deno = `${root}/deno`;
    try {
      await Deno.link(Deno.execPath(), deno); // same file system: no 100 MB copy
    } catch {
      await Deno.copyFile(Deno.execPath(), deno);
    }
    await Deno.chmod(deno, 0o755);
    const staged = new Map<string, string>();
    await Deno.mkdir(`${root}/files`, { mode: 0o755 });
    for (const [i, file] of files.entries()) {
      const to = `${root}/files/${i}-${file.split("/").pop()}`;
      await copyTree(file, to);
      staged.set(file, to);
    }
    const home = `${root}/home`;
    await Deno.mkdir(home);
    await Deno.chown(home, NOBODY_ID, NOBODY_ID);
    return {
      main: `${root}/dhyve/main.ts`,
      deno,
      home,
      files: staged,
      env: { HOME: home, DENO_DIR: `${home}/deno` },
      dispose: () => Deno.remove(root, { recursive: true }),
    };
  } catch (error) {
    await Deno.remove(root, { recursive: true });
    throw error;
  }
}
