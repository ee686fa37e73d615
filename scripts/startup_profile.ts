/**
 * The start-up profile: which functions of the command line's start-up
 * files (`machine/early_vm.js` and `main.js`) a plain run executes. In
 * those two files the build marks only these for eager compilation
 * (`scripts/eager_compile.ts`); in every file loaded later it still marks
 * all.
 *
 * Why: a function marked eager has its bytecode in Deno's code cache, which
 * saves compiling it on its first call but costs deserialising it at every
 * start, called or not (2.6 ms for the two files all eager, 1.1 ms all lazy;
 * docs/performance.md). A noop run calls about half their functions; the
 * other half (error messages, `--net`, the file hypercalls a guest may never
 * make, the config file) is compiled on first use, as V8 does by default.
 *
 * A function is named by where its first character came from in `src/`
 * (through the bundle's source map): the source file, the rest of that
 * source line from that column on, and a number when that text starts
 * several functions of one file (`src/cli.ts\t(argv) => {`, then
 * `…\t#2`). Unlike a line number, that survives edits elsewhere in the
 * file; a function whose line was edited leaves the profile until
 * `deno task profile` records it again, and is compiled on first call until
 * then: slower, never wrong. `scripts/profile_startup.ts` records the
 * profile; `tests/kvm/startup_profile_test.ts` fails when it has drifted
 * too far from what a noop run executes.
 * @module
 */

import { parse } from "npm:acorn@8.19.0";
import type { Node } from "npm:acorn@8.19.0";
import { simple } from "npm:acorn-walk@8.3.5";
import {
  originalPositionFor,
  type SourceMapInput,
  TraceMap,
} from "npm:@jridgewell/trace-mapping@0.3.31";

/** The profile's file, from the repository's root. */
export const PROFILE_FILE = "scripts/startup_profile.json";

/** The bundle files the profile covers (below the bundle directory): the command line's start. */
export const PROFILED_FILES: readonly string[] = ["machine/early_vm.js", "main.js"];

/** What {@linkcode PROFILE_FILE} holds. */
export interface StartupProfile {
  /** One line saying what the file is and how to remake it. */
  readonly about: string;
  /** The guests whose runs were recorded. */
  readonly runs: readonly string[];
  /** The keys of the functions they executed, sorted. */
  readonly functions: readonly string[];
}

/** A function of a bundle file: its place there and its key (null: no source position). */
export interface KeyedFunction {
  /** Offset of its first character in the bundle file (acorn's `start`). */
  readonly start: number;
  /** Offset just past its last character (acorn's and V8's `end`). */
  readonly end: number;
  /** Its name in the profile, or null where the source map has no position for it. */
  readonly key: string | null;
}

/**
 * Reads a source the map names (its `sources` entry, relative to the bundle
 * file) and returns its name in keys (relative to the repository) with its
 * lines, or null when it cannot be read.
 */
export type SourceReader = (source: string) => { name: string; lines: string[] } | null;

/**
 * The functions of `code` (a bundle file as the bundler wrote it, before
 * the eager marks) in order of position, each with its key.
 */
export function keyedFunctions(
  code: string,
  map: SourceMapInput,
  readSource: SourceReader,
): KeyedFunction[] {
  const program = parse(code, { ecmaVersion: "latest", sourceType: "module" }) as unknown as Node;
  const nodes: { start: number; end: number }[] = [];
  simple(program, {
    Function: (node: Node) => void nodes.push({ start: node.start, end: node.end }),
  });
  nodes.sort((a, b) => a.start - b.start || b.end - a.end);
  const trace = new TraceMap(map);
  const lineStarts = lineStartsOf(code);
  const sources = new Map<string, { name: string; lines: string[] } | null>();
  const seen = new Map<string, number>();
  return nodes.map(({ start, end }) => {
    const original = originalPositionFor(trace, positionOf(lineStarts, start));
    if (original.source === null || original.line === null || original.column === null) {
      return { start, end, key: null };
    }
    if (!sources.has(original.source)) sources.set(original.source, readSource(original.source));
    const source = sources.get(original.source)!;
    const line = source?.lines[original.line - 1];
    if (source === null || source === undefined || line === undefined) {
      return { start, end, key: null };
    }
    const base = `${source.name}\t${line.slice(original.column).trimEnd()}`;
    const count = (seen.get(base) ?? 0) + 1;
    seen.set(base, count);
    return { start, end, key: count === 1 ? base : `${base}\t#${count}` };
  });
}

/**
 * {@linkcode keyedFunctions} of the bundle file at `path` (its map beside it,
 * `path.map`), its sources read below `root` ({@linkcode repoSourceReader}).
 */
export function keyedFunctionsOfFile(root: string, path: string): KeyedFunction[] {
  return keyedFunctions(
    Deno.readTextFileSync(path),
    Deno.readTextFileSync(`${path}.map`),
    repoSourceReader(root, path),
  );
}

/**
 * A {@linkcode SourceReader} for a bundle file at `bundleFile`, whose map
 * names its sources relative to the file; keys name them relative to `root`.
 */
export function repoSourceReader(root: string, bundleFile: string): SourceReader {
  const dir = bundleFile.slice(0, bundleFile.lastIndexOf("/") + 1);
  return (source) => {
    const path = normalize(source.startsWith("/") ? source : `${dir}${source}`);
    if (!path.startsWith(`${root}/`)) return null;
    try {
      return { name: path.slice(root.length + 1), lines: Deno.readTextFileSync(path).split("\n") };
    } catch {
      return null;
    }
  };
}

/** Reads the profile at `path`; null when there is none (the build then marks everything). */
export function readProfile(path: string): StartupProfile | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const profile = JSON.parse(text) as StartupProfile;
  if (!Array.isArray(profile.functions)) throw new Error(`${path}: no "functions" list`);
  return profile;
}

/** `a/./b/../c` → `a/c`, for absolute paths. */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") out.pop();
    else if (part !== "." && part !== "") out.push(part);
  }
  return `/${out.join("/")}`;
}

function lineStartsOf(code: string): number[] {
  const starts = [0];
  for (let i = code.indexOf("\n"); i !== -1; i = code.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** The offset as trace-mapping wants it: line from 1, column from 0. */
function positionOf(lineStarts: number[], offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - lineStarts[lo]! };
}
