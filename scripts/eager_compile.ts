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
 * moment V8 compiles changes. Parsing uses acorn.
 * @module
 */

import { parse } from "npm:acorn@8.19.0";
import { ancestor } from "npm:acorn-walk@8.3.5";
import type { Node } from "npm:acorn@8.19.0";

/** One text insertion; `order` sorts insertions at the same offset. */
interface Insertion {
  at: number;
  order: number;
  text: () => string;
}

/** A range of the source that moves elsewhere (a hoisted declaration). */
interface Removal {
  start: number;
  end: number;
}

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

/**
 * Returns `source` (an ES module) with its functions marked for eager
 * compilation as described in the module comment. Throws acorn's
 * `SyntaxError` when `source` does not parse.
 */
export function markEagerCompile(source: string): string {
  const program = parse(source, {
    ecmaVersion: "latest",
    sourceType: "module",
    preserveParens: true,
  }) as unknown as Node;
  const insertions: Insertion[] = [];
  const removals: Removal[] = [];

  const parenthesize = (node: Ranged): void => {
    // Outer before inner at the same start; inner before outer at the same end.
    insertions.push({ at: node.start, order: -node.end, text: () => "(" });
    insertions.push({ at: node.end, order: node.start, text: () => ")" });
  };

  /** Moves the declarations among `statements` to offset `at` (the start of their body). */
  const hoist = (statements: unknown, at: number): void => {
    if (!Array.isArray(statements)) return;
    for (const statement of statements as Array<Ranged & { type: string }>) {
      if (statement.type !== "FunctionDeclaration") continue;
      const declaration = statement as unknown as Declaration;
      if (declaration.id === null) continue;
      const { name } = declaration.id;
      removals.push({ start: declaration.start, end: declaration.end });
      insertions.push({
        at,
        // Same offset: keep the declarations' order (a name declared twice: the last wins).
        order: Number.MIN_SAFE_INTEGER + declaration.start,
        text: () => `var ${name} = (${render(declaration.start, declaration.end, false)});\n`,
      });
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

  insertions.sort((a, b) => a.at - b.at || a.order - b.order);
  removals.sort((a, b) => a.start - b.start);

  /** The source from `start` to `end` with every edit inside that range applied. */
  function render(start: number, end: number, whole: boolean): string {
    let text = "";
    let at = start;
    // A moved declaration's text starts after what is inserted where it stood (the hoisted
    // declarations of the scope it is in, itself among them), and its own removal is not skipped.
    let i = lowerBound(insertions, whole ? start : start + 1);
    let r = removals.findIndex((removal) => whole ? removal.start >= start : removal.start > start);
    if (r < 0) r = removals.length;
    while (at < end) {
      const nextInsert = i < insertions.length ? insertions[i]!.at : Infinity;
      const nextRemoval = r < removals.length ? removals[r]!.start : Infinity;
      const next = Math.min(nextInsert, nextRemoval, end);
      text += source.slice(at, next);
      at = next;
      if (at === end) break;
      if (nextInsert === at && nextInsert <= nextRemoval) {
        text += insertions[i]!.text();
        i++;
        continue;
      }
      // A hoisted declaration: skip its text and the edits inside it.
      at = removals[r]!.end;
      r++;
      while (i < insertions.length && insertions[i]!.at < at) i++;
      while (r < removals.length && removals[r]!.start < at) r++;
    }
    // Insertions at `end` itself (closing parentheses of what ends here).
    while (i < insertions.length && insertions[i]!.at === end && end === source.length) {
      text += insertions[i]!.text();
      i++;
    }
    return text;
  }

  return render(0, source.length, true);
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

function lowerBound(insertions: Insertion[], at: number): number {
  let lo = 0;
  let hi = insertions.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (insertions[mid]!.at < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
