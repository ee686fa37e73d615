/**
 * `deno task stack`: turns positions in dhyve's minified bundle
 * (`…/dist/bundle/chunk-X.js:1:2345`, as in an "Internal error" report)
 * into positions in the sources (`src/kvm/vm.ts:57:11`), with the source
 * maps `deno task build` writes beside the bundle files. Reads the text
 * from standard input (or the files named) and writes it back with each
 * bundle position followed by its source position, and the source name of
 * the function where the map has one.
 *
 * Usage: `deno task stack < report.txt`.
 * @module
 */

import { originalPositionFor, TraceMap } from "npm:@jridgewell/trace-mapping@0.3.31";
import { fileURLToPath } from "node:url";
import { BUNDLE_DIR } from "../src/locations.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** A bundle position in a stack trace: the file's path below dist/bundle, line and column. */
const POSITION = new RegExp(
  String.raw`(?:file://)?[^\s()]*/${BUNDLE_DIR}/([\w./-]+\.js):(\d+):(\d+)`,
  "g",
);

/**
 * `text` with every bundle position followed by ` [src/…:line:column]` (and
 * ` name` where the map names the function). `bundleDir` holds the bundle
 * and its `.map` files; positions whose file or map is missing stay as they are.
 */
export function mapStack(text: string, bundleDir: string = `${ROOT}/${BUNDLE_DIR}`): string {
  const maps = new Map<string, TraceMap | null>();
  const mapOf = (file: string): TraceMap | null => {
    if (!maps.has(file)) {
      try {
        maps.set(file, new TraceMap(Deno.readTextFileSync(`${bundleDir}/${file}.map`)));
      } catch {
        maps.set(file, null);
      }
    }
    return maps.get(file)!;
  };
  return text.replace(POSITION, (whole: string, file: string, line: string, column: string) => {
    const map = mapOf(file);
    if (map === null) return whole;
    // V8's columns count from 1, the maps' from 0.
    const at = originalPositionFor(map, { line: Number(line), column: Number(column) - 1 });
    if (at.source === null || at.line === null || at.column === null) return whole;
    const source = new URL(at.source, `file://${bundleDir}/${file}`).pathname;
    const shown = source.startsWith(`${ROOT}/`) ? source.slice(ROOT.length + 1) : source;
    const name = at.name === null ? "" : ` ${at.name}`;
    return `${whole} [${shown}:${at.line}:${at.column + 1}${name}]`;
  });
}

if (import.meta.main) {
  const inputs = Deno.args.length === 0
    ? [new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer())]
    : Deno.args.map((path) => Deno.readTextFileSync(path));
  for (const text of inputs) Deno.stdout.writeSync(new TextEncoder().encode(mapStack(text)));
}
