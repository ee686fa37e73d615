/**
 * `scripts/startup_profile.ts`: how the build names a bundle function in the
 * start-up profile. What must hold: a key comes from the source line the
 * function starts on (through the source map), not from where it lands in
 * the bundle or on which line of its source; it stays the same when other
 * lines move, changes when its own line does, and functions that start
 * with the same text in one file get distinct keys.
 * @module
 */

import assert from "node:assert/strict";
import MagicString from "npm:magic-string@1.4.5";
import { keyedFunctions, type SourceReader } from "../../scripts/startup_profile.ts";

/** A stand-in for a bundler: the source with a header put in front and comments dropped. */
function bundle(source: string): { code: string; map: string } {
  const text = new MagicString(source);
  text.prepend("// bundled\nvar glue = 1;\n");
  for (const match of source.matchAll(/\/\/ [^\n]*/g)) {
    text.remove(match.index, match.index + match[0].length);
  }
  const map = text.generateMap({ source: "../src/app.ts", hires: true, includeContent: false });
  return { code: text.toString(), map: map.toString() };
}

function reader(source: string): SourceReader {
  return (name) =>
    name === "../src/app.ts" ? { name: "src/app.ts", lines: source.split("\n") } : null;
}

function keysOf(source: string): (string | null)[] {
  const { code, map } = bundle(source);
  return keyedFunctions(code, map, reader(source)).map((f) => f.key);
}

const SOURCE = `// the app
function first(a) {
  return [1, 2].map((x) => x + a);
}
class Box {
  open(n) { return n; }
  close() { return (x) => x; }
}
const twin = [(x) => x, 0];
const twin2 = [(x) => x, 0];
`;

Deno.test("a function's key is its source file and the rest of the line it starts on", () => {
  assert.deepEqual(keysOf(SOURCE), [
    "src/app.ts\tfunction first(a) {",
    "src/app.ts\t(x) => x + a);",
    "src/app.ts\t(n) { return n; }",
    "src/app.ts\t() { return (x) => x; }",
    "src/app.ts\t(x) => x; }",
    "src/app.ts\t(x) => x, 0];",
    "src/app.ts\t(x) => x, 0];\t#2",
  ]);
});

Deno.test("keys stay when other lines move, and change with their own line", () => {
  const moved = SOURCE.replace("// the app\n", "// the app\nconst added = 1;\n\n// more\n");
  assert.deepEqual(keysOf(moved), keysOf(SOURCE));
  const edited = SOURCE.replace("open(n) { return n; }", "open(n) { return n + 1; }");
  const changed = keysOf(edited).filter((k, i) => k !== keysOf(SOURCE)[i]);
  assert.deepEqual(changed, ["src/app.ts\t(n) { return n + 1; }"]);
});

Deno.test("a function the map cannot place, or whose source cannot be read, has no key", () => {
  const { code, map } = bundle(SOURCE);
  const unreadable = keyedFunctions(code, map, () => null);
  assert.equal(unreadable.length, 7);
  assert.ok(unreadable.every((f) => f.key === null));
  // A line the bundler added after the mapped code (no mapping on it).
  const glued = keyedFunctions(`${code}\n(() => 0)();\n`, map, reader(SOURCE));
  assert.equal(glued.length, 8);
  assert.equal(glued[7]!.key, null);
  assert.ok(glued.slice(0, 7).every((f) => f.key !== null));
});
