/**
 * `src/` names its npm packages as `npm:name@version` (so that `mod.ts` loads
 * from another project by path), while `npm ci` installs them from
 * `package.json` into `node_modules`, where this project's own runs find them
 * offline. The two lists must agree exactly. Needs read access to the repo.
 * @module
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../_helpers/repo.ts";

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...sources(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const files = [...sources(`${REPO_ROOT}/src`), `${REPO_ROOT}/main.ts`, `${REPO_ROOT}/mod.ts`];
const pkg = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/package.json`)) as {
  dependencies: Record<string, string>;
};

Deno.test("src/ imports npm packages only as npm:name@version, never by a bare name", () => {
  for (const file of files) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/^\s*(?:import|export)[^"';]*?from\s+"([^"]+)"/gm)) {
      const spec = m[1]!;
      assert.ok(
        /^(\.{1,2}\/|node:|npm:)/.test(spec),
        `${file}: "${spec}" resolves only with this project's config; write npm:${spec}@<version>`,
      );
    }
  }
});

Deno.test("every npm:name@version in src/ is the exact version package.json pins", () => {
  let seen = 0;
  for (const file of files) {
    for (
      const m of Deno.readTextFileSync(file).matchAll(/"npm:((?:@[^/"@]+\/)?[^/"@]+)@([^/"]+)/g)
    ) {
      seen++;
      const [, name, version] = m as unknown as [string, string, string];
      assert.equal(version, pkg.dependencies[name], `${file}: npm:${name}@${version}`);
      const installed = JSON.parse(
        Deno.readTextFileSync(`${REPO_ROOT}/node_modules/${name}/package.json`),
      ) as { version: string };
      assert.equal(installed.version, version, `node_modules/${name} (run npm ci)`);
    }
  }
  assert.ok(seen >= 2, "src/ uses LogTape and smol-toml");
});
