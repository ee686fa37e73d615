/**
 * The bundle is minified, so its source maps are how a stack trace leads
 * back to `src/`: `scripts/build.ts` composes the map of its eager-compile
 * rewrite with esbuild's. Checked on the shipped `dist/bundle`: every string
 * literal of dhyve's own code in every bundle file maps to a source line
 * that holds the same text (or one of the two lines before it), and `deno task stack` (`scripts/map_stack.ts`) turns a bundle
 * position into that source position.
 * @module
 */

import assert from "node:assert/strict";
import { parse } from "npm:acorn@8.19.0";
import { simple } from "npm:acorn-walk@8.3.5";
import type { Node } from "npm:acorn@8.19.0";
import { originalPositionFor, TraceMap } from "npm:@jridgewell/trace-mapping@0.3.31";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { testUnless } from "../_helpers/skip.ts";
import { BUNDLE_DIR } from "../../src/locations.ts";
import { mapStack } from "../../scripts/map_stack.ts";

const BUNDLE = `${REPO_ROOT}/${BUNDLE_DIR}`;
const canRead = Deno.permissions.querySync({ name: "read" }).state === "granted";
const skip = canRead ? null : "needs --allow-read (it reads dist/bundle and src/)";

/** Every `.js` file of the bundle, as a path below it. */
function bundleFiles(dir = BUNDLE, below = ""): string[] {
  const files: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const name = `${below}${entry.name}`;
    if (entry.isDirectory) files.push(...bundleFiles(`${dir}/${entry.name}`, `${name}/`));
    else if (entry.name.endsWith(".js")) files.push(name);
  }
  return files;
}

/** 1-based line and 0-based column of `offset` in `text`. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - (before.lastIndexOf("\n") + 1) };
}

/** Plain string literals (no escapes) long enough to be told apart. */
function literals(code: string): { start: number; value: string }[] {
  const found: { start: number; value: string }[] = [];
  const program = parse(code, { ecmaVersion: "latest", sourceType: "module" });
  // Module specifiers are the bundlers' own (chunk names, the imports rollup hoists): not dhyve's.
  const specifiers = new Set<number>();
  const specifier = (node: Node): void => {
    const source = (node as unknown as { source?: { start: number } | null }).source;
    if (source) specifiers.add(source.start);
  };
  simple(program as unknown as Node, {
    ImportDeclaration: specifier,
    ExportNamedDeclaration: specifier,
    ExportAllDeclaration: specifier,
    ImportExpression: specifier,
  });
  simple(program as unknown as Node, {
    Literal(node: Node): void {
      const literal = node as unknown as { start: number; value: unknown; raw: string };
      if (typeof literal.value !== "string" || literal.value.length < 8) return;
      if (literal.raw.includes("\\")) return;
      if (specifiers.has(literal.start)) return;
      found.push({ start: literal.start, value: literal.value });
    },
  });
  return found;
}

testUnless(skip, "every string literal in the bundle maps to a source line holding it", () => {
  const sources = new Map<string, string[]>();
  let checked = 0;
  const wrong: string[] = [];
  for (const file of bundleFiles()) {
    const code = Deno.readTextFileSync(`${BUNDLE}/${file}`);
    const map = new TraceMap(Deno.readTextFileSync(`${BUNDLE}/${file}.map`));
    for (const literal of literals(code)) {
      const at = originalPositionFor(map, lineColumn(code, literal.start));
      checked++;
      if (at.source === null || at.line === null) {
        wrong.push(`${file}: "${literal.value}" maps nowhere`);
        continue;
      }
      const source = new URL(at.source, `file://${BUNDLE}/${file}`).pathname;
      // npm packages come with maps of their own, to sources they do not ship.
      if (!source.startsWith(`${REPO_ROOT}/src/`)) continue;
      if (!sources.has(source)) sources.set(source, Deno.readTextFileSync(source).split("\n"));
      // The mapped line or the two after it: deno bundle's own map sometimes points at the
      // comment or line before the statement (as raw `deno bundle` output does: not the
      // rewrite's doing). The first characters only: it folds template literals with
      // constants into strings.
      const lines = sources.get(source)!.slice(at.line - 1, at.line + 2).join("\n");
      if (!lines.includes(literal.value.slice(0, 9))) {
        wrong.push(`${file}: "${literal.value}" -> ${source}:${at.line}: ${lines.trim()}`);
      }
    }
  }
  assert.ok(checked > 500, `only ${checked} literals: the walk is broken`);
  assert.deepEqual(wrong, [], `${wrong.length} of ${checked} literals map to the wrong line`);
});

testUnless(skip, "deno task stack turns a bundle position into the source position", () => {
  const file = "main.js";
  const code = Deno.readTextFileSync(`${BUNDLE}/${file}`);
  const needle = '"already exists: remove it or choose another with -o"';
  const offset = code.indexOf(needle.slice(1, -1));
  assert.ok(offset > 0, "the message is in main.js");
  const { line, column } = lineColumn(code, offset - 1); // at the opening quote or backtick
  const position = `file://${BUNDLE}/${file}:${line}:${column + 1}`;
  const mapped = mapStack(`Error: x\n    at Xy (${position})\n`);
  const expected = Deno.readTextFileSync(`${REPO_ROOT}/src/main.ts`).split("\n")
    .findIndex((l) => l.includes(needle.slice(1, -1))) + 1;
  assert.ok(expected > 0);
  assert.ok(mapped.includes(`(${position} [src/main.ts:`), mapped);
  const shown = /\[src\/main\.ts:(\d+):\d+/.exec(mapped);
  assert.equal(Number(shown![1]), expected, mapped);
  // A position outside the bundle is left alone.
  assert.equal(mapStack("at f (file:///elsewhere/x.js:1:1)"), "at f (file:///elsewhere/x.js:1:1)");
});
