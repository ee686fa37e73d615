/**
 * `scripts/eager_compile.ts`: the build step that writes the bundle's
 * functions so that V8 compiles them with their module (and Deno's code
 * cache keeps them). What must hold: the program means the same, every
 * function that can carry V8's hint carries it, and what cannot is left
 * untouched. (That V8 then compiles them eagerly is measured in
 * `bench/startup.ts`, not here.)
 * @module
 */

import assert from "node:assert/strict";
import { parse } from "npm:acorn@8.19.0";
import { ancestor } from "npm:acorn-walk@8.3.5";
import type { Node } from "npm:acorn@8.19.0";
import { markEagerCompile, markEagerCompileWithMap } from "../../scripts/eager_compile.ts";

/** A module that leans on what the rewrite touches: hoisting, names, `this`, nesting. */
const SAMPLE = `
// Called before its declaration, during the module's evaluation (hoisting).
const early = twice(21);
function twice(x) { return inner(x) * 1; function inner(y) { "use strict"; return y * 2; } }
export const names = [twice.name, ((a) => a).name];
const arrow = (a) => (b) => a + b;
const named = function (q) { return q + 1; };
names.push(arrow.name, named.name);
export class Counter {
  #count = 0;
  step = function () { return 1; };
  add(n) { const bump = () => { this.#count += n * this.step(); }; bump(); return this; }
  get count() { return this.#count; }
  static make() { return new Counter(); }
}
class Base { hello() { return "base"; } static kind() { return "Base"; } }
export class Derived extends Base {
  #secret = 5;
  constructor() { super(); this.made = true; }
  hello() { return "derived+" + super.hello(); }
  #hidden() { return this.#secret; }
  reveal() { return this.#hidden(); }
  get secret() { return this.#secret; }
  set secret(v) { this.#secret = v; }
  delete() { return "deleted"; }
  [Symbol.iterator]() { return [1, 2][Symbol.iterator](); }
  static create() { return new Derived(); }
  async *gen() { yield 1; yield 2; }
  twice() { return twice(2); }
}
class WithStatic { static seed = WithStatic.make(); static make() { return 3; } }
function describe(target, key) {
  const d = Object.getOwnPropertyDescriptor(target, key);
  return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, typeof v === "function" ? "fn" : v]));
}
const object = { method() { return 1; }, plain: function () { return 2; }, get value() { return 3; },
  set value(v) { this.seen = v; }, async later() { return 4; }, arrow: async (x) => x };
async function* countTo(n) { for (let i = 1; i <= n; i++) yield i; }
function defaults(f = () => 5) { return f(); }
function shadowing() {
  return shadowed();
  function shadowed() { return "first"; }
  function shadowed() { return "second"; }
}
if (early > 0) { function inBlock() { return "block"; } names.push(inBlock()); }
export default function () { return "default"; }
export async function run() {
  const seen = [];
  for await (const i of countTo(3)) seen.push(i);
  object.value = 7;
  return {
    early, names, sum: arrow(2)(3), named: named(1), count: Counter.make().add(2).add(3).count,
    object: [object.method(), object.plain(), object.value, await object.later(),
      await object.arrow(9), object.seen],
    seen, defaults: defaults(), shadowed: shadowing(), lengths: [twice.length, arrow.length],
    classes: await classes(),
  };
}
async function classes() {
  const d = Derived.create();
  d.secret = 9;
  const gen = [];
  for await (const v of d.gen()) gen.push(v);
  return {
    hello: d.hello(), reveal: d.reveal(), secret: d.secret, deleted: d.delete(), spread: [...d],
    made: d.made, gen, twice: d.twice(), kind: Base.kind(), seed: WithStatic.seed,
    names: [Derived.prototype.reveal.name, Derived.create.name, object.method.name],
    keys: [Object.keys(Derived.prototype), Object.keys(Derived), Object.keys(d)],
    descriptors: [describe(Derived.prototype, "reveal"), describe(Derived.prototype, "secret"),
      describe(Derived, "create"), describe(Derived.prototype, Symbol.iterator),
      describe(object, "method")],
  };
}
`;

async function evaluate(source: string): Promise<unknown> {
  const url = `data:application/javascript,${encodeURIComponent(source)}`;
  const module = await import(url);
  return { run: await module.run(), default: module.default() };
}

function parseModule(source: string): Node {
  return parse(source, {
    ecmaVersion: "latest",
    sourceType: "module",
    preserveParens: true,
  }) as unknown as Node;
}

interface Seen {
  type: string;
  parent: string | undefined;
  topLevelDeclaration: boolean;
}

/** Every function in `source`, with its parent node's type. */
function functionsOf(source: string): Seen[] {
  const seen: Seen[] = [];
  ancestor(parseModule(source), {
    Function(node: Node, _state: unknown, ancestors: Node[]): void {
      const parent = ancestors[ancestors.length - 2] as { type: string } | undefined;
      const grand = ancestors[ancestors.length - 3] as { type: string } | undefined;
      seen.push({
        type: node.type,
        parent: parent?.type,
        topLevelDeclaration: node.type === "FunctionDeclaration" &&
          (parent?.type === "Program" ||
            (parent?.type === "BlockStatement" && grand?.type !== undefined &&
              /Function/.test(grand.type))),
      });
    },
  });
  return seen;
}

Deno.test("the rewritten module computes the same as the original", async () => {
  const rewritten = markEagerCompile(SAMPLE);
  assert.notEqual(rewritten, SAMPLE);
  const expected = await evaluate(SAMPLE);
  assert.deepEqual(await evaluate(rewritten), expected);
  // And the sample does exercise what it is meant to.
  const run = (expected as { run: Record<string, unknown> }).run;
  assert.equal(run.early, 42);
  assert.deepEqual(run.names, ["twice", "", "arrow", "named", "block"]);
  assert.equal(run.shadowed, "second");
  const classes = run.classes as Record<string, unknown>;
  assert.equal(classes.hello, "derived+base");
  assert.equal(classes.twice, 4);
  assert.deepEqual(classes.names, ["reveal", "create", "method"]);
  assert.deepEqual(classes.keys, [[], [], ["made"]]);
});

Deno.test("every function expression and arrow ends up in parentheses; declarations become them", () => {
  const after = functionsOf(markEagerCompile(SAMPLE));
  for (const fn of after) {
    if (fn.type === "FunctionDeclaration") {
      // Only those V8 cannot be told about remain: in a block, or `export default`.
      assert.ok(
        !fn.topLevelDeclaration || fn.parent === "ExportDefaultDeclaration",
        `${fn.parent}`,
      );
      continue;
    }
    const method = fn.parent === "MethodDefinition" || fn.parent === "Property";
    assert.ok(method || fn.parent === "ParenthesizedExpression", `${fn.type} in ${fn.parent}`);
  }
  // Nothing is lost, and one is added: the helper that defines the rewritten class methods.
  const before = functionsOf(SAMPLE);
  assert.equal(after.length, before.length + 1);
  const methods = (list: Seen[]): number =>
    list.filter((f) => f.parent === "MethodDefinition").length;
  assert.equal(methods(before), 17);
  // Left as methods: Derived's constructor, its private #hidden, hello (it uses super), and
  // WithStatic's make (a static field could call it before a static block defined it).
  assert.equal(methods(after), 4);
  // Object literals keep their getter and setter; their methods become properties.
  const accessors = (list: Seen[]): number => list.filter((f) => f.parent === "Property").length;
  assert.equal(accessors(before), 6); // 2 methods, a getter, a setter, 2 function values
  assert.equal(accessors(after), 2);
});

Deno.test("a second pass changes nothing, and a syntax error is thrown, not passed on", () => {
  const once = markEagerCompile(SAMPLE);
  assert.equal(markEagerCompile(once), once);
  assert.throws(() => markEagerCompile("function ("), SyntaxError);
});

Deno.test("with a filter, only the functions it accepts are marked, and the module means the same", async () => {
  const expected = await evaluate(SAMPLE);
  // Refusing everything leaves the file as it was.
  assert.equal(markEagerCompileWithMap(SAMPLE, "sample.js", () => false).code, SAMPLE);
  // Every other function (by position): a mix of marked and unmarked ones in one class, one body.
  const starts = new Set<number>();
  ancestor(parseModule(SAMPLE), { Function: (node: Node) => void starts.add(node.start) });
  const every = [...starts].sort((a, b) => a - b);
  const kept = new Set(every.filter((_, i) => i % 2 === 0));
  const asked: number[] = [];
  const half = markEagerCompileWithMap(SAMPLE, "sample.js", (fn) => {
    asked.push(fn.start);
    return kept.has(fn.start);
  }).code;
  assert.ok(
    asked.every((start) => starts.has(start)),
    "the filter sees the functions' own offsets",
  );
  assert.deepEqual(await evaluate(half), expected);
  const marked = (source: string): number =>
    functionsOf(source).filter((f) =>
      f.parent === "ParenthesizedExpression" || f.parent === "VariableDeclarator"
    ).length;
  const all = marked(markEagerCompile(SAMPLE));
  assert.ok(marked(half) > marked(SAMPLE) && marked(half) < all, `${marked(half)} of ${all}`);
});
