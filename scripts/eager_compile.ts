/**
 * Rewrites a bundle file so that V8 compiles its functions when it compiles
 * the file, not on their first call, and Deno's code cache keeps them.
 *
 * Why: Deno makes a module's V8 code cache right after compiling it, and V8
 * compiles only the top level then; every other function is compiled on its
 * first call, in every run, and never cached. For a dhyve run that was ~8–11
 * ms of parsing and bytecode generation on the way to the first KVM_RUN
 * (measured with `--v8-flags=--no-lazy`, which a `deno run main.ts` user does
 * not pass). V8 compiles a function eagerly when it is written inside
 * parentheses (its "possibly invoked function expression" heuristic), and
 * then the cache holds its bytecode. So this:
 *
 * - puts every function expression and arrow function in parentheses
 *   (`map((x) => x + 1)` becomes `map(((x) => x + 1))`);
 * - turns every function declaration at the top of a module or a function
 *   body into `var f = (function f(…) {…});` at the start of that body, which
 *   is where the declaration's binding and value were hoisted to anyway.
 *
 * Left as they were (V8 has no hint for them): class and object-literal
 * methods, getters and setters, and function declarations inside blocks
 * or `export` statements. The rewrite keeps the program's meaning; only the
 * moment V8 compiles changes. Parsing uses acorn, the edits (and their source
 * map) magic-string.
 * @module
 */

import { parse } from "npm:acorn@8.19.0";
import { ancestor } from "npm:acorn-walk@8.3.5";
import type { Node } from "npm:acorn@8.19.0";
import MagicString from "npm:magic-string@1.4.5";

interface Ranged {
  start: number;
  end: number;
}

interface FunctionLike extends Ranged {
  type: string;
  body: Ranged & { type: string; body?: unknown };
}

interface Declaration extends Ranged {
  id: (Ranged & { name: string }) | null;
}

/** A rewritten file and the source map from it back to the file it was made of. */
export interface EagerOutput {
  /** The rewritten text. */
  code: string;
  /** Source map (v3) of `code` against the input, whose name is `source`. */
  map: { version: number; sources: string[]; mappings: string; names: string[] };
}

/**
 * Returns `source` (an ES module) with its functions marked for eager
 * compilation as described in the module comment. Throws acorn's
 * `SyntaxError` when `source` does not parse.
 */
export function markEagerCompile(source: string): string {
  return rewrite(source).toString();
}

/**
 * {@linkcode markEagerCompile}, with a source map of the result against
 * `source` (named `sourceName` in the map), so that positions in the
 * rewritten file still lead back to the bundle's sources.
 */
export function markEagerCompileWithMap(source: string, sourceName: string): EagerOutput {
  const text = rewrite(source);
  const map = text.generateMap({ source: sourceName, hires: true, includeContent: false });
  return {
    code: text.toString(),
    map: { version: 3, sources: [sourceName], mappings: map.mappings, names: map.names },
  };
}

function rewrite(source: string): MagicString {
  const program = parse(source, {
    ecmaVersion: "latest",
    sourceType: "module",
    preserveParens: true,
  }) as unknown as Node;
  const text = new MagicString(source);

  // The texts attach to the function's own first and last character, so they travel with it
  // when a hoisted declaration around it moves. Walked inner first: at a shared end the inner
  // `)` goes first, at a shared start the outer `(` is put in front.
  const parenthesize = (node: Ranged): void => {
    text.prependRight(node.start, "(");
    text.appendLeft(node.end, ")");
  };

  /** Moves the declarations among `statements` to offset `at` (the start of their body), in order. */
  const hoist = (statements: unknown, at: number): void => {
    if (!Array.isArray(statements)) return;
    let anchor = at;
    for (const statement of statements as Array<Ranged & { type: string }>) {
      if (statement.type !== "FunctionDeclaration") continue;
      const declaration = statement as unknown as Declaration;
      if (declaration.id === null) continue;
      text.prependRight(declaration.start, `var ${declaration.id.name} = (`);
      text.appendLeft(declaration.end, ");\n");
      // Already first (nothing but blanks before it): it stays, and the next ones follow it.
      // The order matters: a name declared twice in one body takes the last value.
      if (/^\s*$/.test(source.slice(anchor, declaration.start))) {
        anchor = declaration.end;
      } else {
        text.move(declaration.start, declaration.end, anchor);
      }
    }
  };

  hoist((program as unknown as { body: unknown }).body, 0);
  ancestor(program, {
    Function(node: Node, _state: unknown, ancestors: Node[]): void {
      const fn = node as unknown as FunctionLike;
      if (fn.body.type === "BlockStatement") {
        hoist(fn.body.body, afterDirectives(fn.body));
      }
      if (fn.type === "FunctionDeclaration") return;
      const parent = ancestors[ancestors.length - 2] as unknown as
        | { type: string; method?: boolean; kind?: string; value?: unknown }
        | undefined;
      if (parent === undefined || parent.type === "ParenthesizedExpression") return;
      // A method's, getter's or setter's function is not an expression that can be wrapped.
      if (parent.type === "MethodDefinition") return;
      if (parent.type === "Property" && (parent.method === true || parent.kind !== "init")) return;
      parenthesize(fn);
    },
  });
  return text;
}

/** Where a function body's statements begin: after `{` and any "use strict"-like directives. */
function afterDirectives(body: Ranged & { body?: unknown }): number {
  let at = body.start + 1;
  for (const statement of (body.body ?? []) as Array<Ranged & { directive?: string }>) {
    if (statement.directive === undefined) break;
    at = statement.end;
  }
  return at;
}
