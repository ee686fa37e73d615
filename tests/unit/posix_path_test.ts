/**
 * Unit tests of `src/posix_path.ts`: each function gives what
 * `node:path/posix` (and `node:url`'s `fileURLToPath`) gives, on hand-picked
 * edge cases and on random paths made of "/", ".", ".." and short names.
 * @module
 */

import assert from "node:assert/strict";
import * as nodePath from "node:path/posix";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  basename,
  dirname,
  fileHrefToPath,
  fileUrlToPath,
  isAbsolute,
  join,
  normalize,
  resolve,
} from "../../src/posix_path.ts";

const EDGES = [
  "",
  "/",
  "//",
  "///a",
  ".",
  "..",
  "./",
  "../",
  "a",
  "a/",
  "/a",
  "/a/",
  "//a",
  "a//b",
  "/a/b/../c",
  "/../a",
  "../../a/./b",
  "a/../..",
  "a/..",
  "/a/b/..",
  "/a/b/../",
  "./a/./b/.",
];

/** Paths built from separators, dots and short names. */
const paths = fc.array(fc.constantFrom("/", "//", ".", "..", "a", "bc", "d.e", "/", "/"), {
  maxLength: 12,
}).map((parts) => parts.join(""));

Deno.test("posix_path: normalize, dirname, basename, isAbsolute match node:path/posix", () => {
  const check = (p: string): void => {
    assert.equal(normalize(p), nodePath.normalize(p), `normalize(${JSON.stringify(p)})`);
    assert.equal(dirname(p), nodePath.dirname(p), `dirname(${JSON.stringify(p)})`);
    assert.equal(basename(p), nodePath.basename(p), `basename(${JSON.stringify(p)})`);
    assert.equal(isAbsolute(p), nodePath.isAbsolute(p), `isAbsolute(${JSON.stringify(p)})`);
  };
  EDGES.forEach(check);
  fc.assert(fc.property(paths, (p) => check(p)), { numRuns: 2000 });
});

Deno.test("posix_path: join and resolve match node:path/posix", () => {
  const check = (a: string, b: string, c: string): void => {
    assert.equal(join(a, b, c), nodePath.join(a, b, c), `join(${a}, ${b}, ${c})`);
    const abs = `/${a}`;
    assert.equal(resolve(abs, b, c), nodePath.resolve(abs, b, c), `resolve(${abs}, ${b}, ${c})`);
    assert.equal(resolve(abs), nodePath.resolve(abs), `resolve(${abs})`);
  };
  for (const a of EDGES) for (const b of EDGES) check(a, b, "x");
  fc.assert(fc.property(paths, paths, paths, (a, b, c) => check(a, b, c)), { numRuns: 2000 });
  assert.equal(join(), nodePath.join());
});

/** file: URLs both converters must read as node:url does. */
const FILE_HREFS = [
  "file:///",
  "file:///a/b/",
  "file:///a%20b/c%C3%A9",
  "file://localhost/x",
  "file:///a/../b",
  "file:///a/b?q=1#f",
  "file:///%E2%82%AC/%25/x",
];
/** What neither accepts: another scheme, a host, an encoded "/". */
const BAD_HREFS = ["http://x/a", "file://host/a", "file:///a%2Fb"];

Deno.test("posix_path: fileUrlToPath matches node:url's fileURLToPath on file: URLs", () => {
  for (const href of FILE_HREFS) {
    assert.equal(fileUrlToPath(new URL(href)), fileURLToPath(new URL(href)), href);
  }
  assert.equal(
    fileUrlToPath(new URL("../main.ts", import.meta.url)),
    fileURLToPath(new URL("../main.ts", import.meta.url)),
  );
  for (const href of BAD_HREFS) {
    assert.throws(() => fileUrlToPath(new URL(href)), TypeError, href);
  }
});

Deno.test("posix_path: fileHrefToPath reads a normalised file: URL's text as fileURLToPath does", () => {
  for (const href of FILE_HREFS) {
    const url = new URL(href);
    assert.equal(fileHrefToPath(url.href), fileURLToPath(url), href);
  }
  assert.equal(fileHrefToPath(import.meta.url), fileURLToPath(import.meta.url));
  for (const href of [...BAD_HREFS, "file:a", "/a/b"]) {
    assert.throws(() => fileHrefToPath(href), TypeError, href);
  }
});
