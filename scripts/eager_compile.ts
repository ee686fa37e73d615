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
 * - turns class methods, getters and setters into function expressions
 *   that a static block at the same place defines, with the attributes a
 *   class gives them (`m(a) {…}` becomes
 *   `static{D(this.prototype,"m",0,(function m(a) {…}))}`, D being
 *   `Object.defineProperty` with a method's, getter's or setter's
 *   descriptor, written once at the top of the file), and object-literal
 *   methods into properties (`m(a) {…}` becomes `m:(function m(a) {…})`).
 *   Their bodies stay inside the class, so private names still resolve.
 *
 * Left as they were (V8 has no hint for them, or the rewrite could change
 * the meaning): constructors, private methods (`#m() {}`), methods that use
 * `super`, computed keys other than `Symbol.x`, every method of a class with
 * static fields or static blocks (those could call a method before its block
 * ran), object-literal getters and setters, and function declarations inside
 * blocks or `export` statements. The rewrite keeps the program's meaning;
 * only the moment V8 compiles changes. Two details differ for a rewritten
 * method, neither of which dhyve's code looks at: its function has a
 * `prototype` and could be called with `new` (a method throws), and it is
 * anonymous where its body uses its own name for something else. Parsing
 * uses acorn, the edits (and their source map) magic-string.
 * @module
 */

import { parse } from "npm:acorn@8.19.0";
import { ancestor, simple } from "npm:acorn-walk@8.3.5";
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
 * Which functions to mark, by their place in the source (acorn's node
 * offsets: a declaration's, an expression's, or a method's function, which
 * starts at its parameters). A function it refuses is compiled on its first
 * call, as V8 would have done anyway.
 */
export type EagerFilter = (fn: { readonly start: number; readonly end: number }) => boolean;

/**
 * {@linkcode markEagerCompile}, with a source map of the result against
 * `source` (named `sourceName` in the map), so that positions in the
 * rewritten file still lead back to the bundle's sources. With `keep`, only
 * the functions it accepts are marked (`scripts/startup_profile.ts`).
 */
export function markEagerCompileWithMap(
  source: string,
  sourceName: string,
  keep: EagerFilter = () => true,
): EagerOutput {
  const text = rewrite(source, keep);
  const map = text.generateMap({ source: sourceName, hires: true, includeContent: false });
  return {
    code: text.toString(),
    map: { version: 3, sources: [sourceName], mappings: map.mappings, names: map.names },
  };
}

function rewrite(source: string, keep: EagerFilter = () => true): MagicString {
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
      if (declaration.id === null || !keep(declaration)) continue;
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
  let defines = 0;
  ancestor(program, {
    ClassBody(node: Node): void {
      defines += rewriteClassMethods(text, node as unknown as ClassBodyNode, keep);
    },
    ObjectExpression(node: Node): void {
      rewriteObjectMethods(text, node as unknown as { properties: PropertyNode[] }, keep);
    },
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
      if (keep(fn)) parenthesize(fn);
    },
  });
  if (defines > 0) {
    if (source.includes(DEFINE)) throw new Error(`The source already uses the name ${DEFINE}`);
    text.prepend(DEFINE_HELPER);
  }
  return text;
}

/** The helper that defines a rewritten class method, getter or setter (see the module comment). */
const DEFINE = "__eagerDefine";

/** `D(target, key, kind, fn)`: kind 0 a method, 1 a getter, 2 a setter; as a class defines them. */
const DEFINE_HELPER = `var ${DEFINE} = (function (o, k, t, f) { Object.defineProperty(o, k, ` +
  `t === 0 ? { value: f, writable: true, configurable: true } : t === 1 ? ` +
  `{ get: f, configurable: true } : { set: f, configurable: true }); });\n`;

/** Words that cannot name a function expression in a module (strict mode). */
const RESERVED = new Set(
  ("arguments await break case catch class const continue debugger default delete do else enum " +
    "eval export extends false finally for function if implements import in instanceof " +
    "interface let new null package private protected public return static super switch this " +
    "throw true try typeof var void while with yield").split(" "),
);

interface KeyNode extends Ranged {
  type: string;
  name?: string;
  value?: unknown;
  computed?: boolean;
  object?: KeyNode;
  property?: KeyNode;
}

interface FunctionValue extends Ranged {
  type: string;
  async: boolean;
  generator: boolean;
}

interface MethodNode extends Ranged {
  type: string;
  kind: string;
  static: boolean;
  computed: boolean;
  key: KeyNode;
  value: FunctionValue;
}

interface ClassBodyNode extends Ranged {
  body: Array<MethodNode | (Ranged & { type: string; static?: boolean })>;
}

interface PropertyNode extends Ranged {
  type: string;
  kind: string;
  method: boolean;
  computed: boolean;
  shorthand: boolean;
  key: KeyNode;
  value: FunctionValue;
}

/**
 * The key as an expression a static block can evaluate again, or null when
 * it cannot be moved: a name, a string, or `Symbol.x` (no side effects).
 */
function keyExpression(key: KeyNode, computed: boolean): string | null {
  if (!computed) {
    if (key.type === "Identifier") return JSON.stringify(key.name);
    if (key.type === "Literal" && typeof key.value === "string") return JSON.stringify(key.value);
    return null;
  }
  if (
    key.type === "MemberExpression" && key.computed === false &&
    key.object?.type === "Identifier" && key.object.name === "Symbol" &&
    key.property?.type === "Identifier"
  ) {
    return `Symbol.${key.property.name}`;
  }
  return null;
}

/** Whether `fn` (its parameters and body) contains `super`. */
function usesSuper(fn: FunctionValue): boolean {
  let found = false;
  simple(fn as unknown as Node, { Super: () => void (found = true) });
  return found;
}

interface ParentNode {
  type: string;
  property?: unknown;
  key?: unknown;
  computed?: boolean;
  shorthand?: boolean;
}

/** Whether `name` appears in `fn` as anything but a property name (a binding or a reference). */
function mentions(fn: FunctionValue, name: string): boolean {
  let found = false;
  ancestor(fn as unknown as Node, {
    Identifier(node: Node, _state: unknown, ancestors: Node[]): void {
      if ((node as unknown as { name: string }).name !== name) return;
      const parent = ancestors[ancestors.length - 2] as unknown as ParentNode | undefined;
      const propertyName = parent !== undefined && parent.computed !== true && (
        (parent.type === "MemberExpression" && parent.property === node) ||
        (parent.type === "Property" && parent.key === node && parent.shorthand !== true) ||
        ((parent.type === "MethodDefinition" || parent.type === "PropertyDefinition") &&
          parent.key === node)
      );
      if (!propertyName) found = true;
    },
  });
  return found;
}

/** `(async function* name` for a method called `name`, without the name where it would clash. */
function functionHead(key: KeyNode, computed: boolean, fn: FunctionValue): string {
  const name = !computed && key.type === "Identifier" ? key.name! : "";
  const usable = /^[A-Za-z_$][\w$]*$/.test(name) && !RESERVED.has(name) && !mentions(fn, name);
  const keyword = `${fn.async ? "async " : ""}function${fn.generator ? "*" : ""}`;
  return usable ? `(${keyword} ${name}` : `(${keyword}`;
}

/** Rewrites the class's methods, getters and setters; returns how many. */
function rewriteClassMethods(
  text: MagicString,
  body: ClassBodyNode,
  keep: EagerFilter,
): number {
  const staticInit = body.body.some((e) =>
    e.type === "StaticBlock" || (e.type === "PropertyDefinition" && e.static === true)
  );
  if (staticInit) return 0;
  let count = 0;
  for (const element of body.body) {
    if (element.type !== "MethodDefinition") continue;
    const method = element as MethodNode;
    if (method.kind === "constructor" || method.key.type === "PrivateIdentifier") continue;
    const key = keyExpression(method.key, method.computed);
    if (key === null || usesSuper(method.value) || !keep(method.value)) continue;
    const kind = method.kind === "get" ? 1 : method.kind === "set" ? 2 : 0;
    const target = method.static ? "this" : "this.prototype";
    const head = functionHead(method.key, method.computed, method.value);
    text.overwrite(
      method.start,
      method.value.start,
      `static{${DEFINE}(${target},${key},${kind},${head}`,
    );
    text.appendLeft(method.end, "))}");
    count++;
  }
  return count;
}

/** Rewrites the object literal's methods into properties holding function expressions. */
function rewriteObjectMethods(
  text: MagicString,
  object: { properties: PropertyNode[] },
  keep: EagerFilter,
): void {
  for (const property of object.properties) {
    if (property.type !== "Property" || !property.method || property.kind !== "init") continue;
    const key = keyExpression(property.key, property.computed);
    // `__proto__: f` would set the prototype; a method by that name does not.
    if (key === null || key === '"__proto__"' || usesSuper(property.value)) continue;
    if (!keep(property.value)) continue;
    const keyText = property.computed ? `[${key}]` : key;
    text.overwrite(
      property.start,
      property.value.start,
      `${keyText}:${functionHead(property.key, property.computed, property.value)}`,
    );
    text.appendLeft(property.end, ")");
  }
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
