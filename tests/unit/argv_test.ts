/**
 * Unit tests of `src/argv.ts`: on random command lines over dhyve-like
 * options, `parseFlags` accepts exactly what `node:util`'s strict
 * `parseArgs` accepts and gives the same values and positionals; and its
 * error messages name the flag.
 * @module
 */

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { FlagError, parseFlags } from "../../src/argv.ts";

const OPTIONS = {
  "memory-size": { type: "string", short: "m" },
  "env-vars": { type: "string", short: "e", multiple: true },
  tempdir: { type: "string" },
  stats: { type: "boolean" },
  "no-aslr": { type: "boolean" },
  verbose: { type: "boolean", short: "v", multiple: true },
  quiet: { type: "boolean", short: "q" },
} as const;

const WORDS = [
  "k",
  "a1",
  "-",
  "--",
  "-m",
  "-m64",
  "--memory-size",
  "--memory-size=1G",
  "--memory-size=",
  "-e",
  "-eA=b",
  "--env-vars=X=y",
  "--tempdir",
  "--stats",
  "--stats=1",
  "--no-aslr",
  "-v",
  "-vv",
  "-vq",
  "-vm64",
  "-qe",
  "--verbose",
  "-z",
  "-vz",
  "--bogus",
  "--constructor",
  "-1",
];

function node(args: string[]): unknown {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: OPTIONS,
      strict: true,
      allowPositionals: true,
    });
    return { values: { ...values }, positionals };
  } catch {
    return "error";
  }
}

function ours(args: string[]): unknown {
  try {
    const { values, positionals } = parseFlags(args, OPTIONS);
    return { values: { ...values }, positionals };
  } catch (error) {
    assert.ok(error instanceof FlagError, `unexpected ${error}`);
    assert.ok(!error.message.includes("\n"), "one line");
    return "error";
  }
}

Deno.test("parseFlags() agrees with node:util parseArgs (strict, positionals allowed)", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...WORDS), { maxLength: 7 }), (args) => {
      assert.deepEqual(ours(args), node(args), JSON.stringify(args));
    }),
    { numRuns: 5000 },
  );
});

Deno.test("parseFlags() errors name the flag", () => {
  const message = (args: string[]): string => {
    try {
      parseFlags(args, OPTIONS);
    } catch (error) {
      if (error instanceof FlagError) return error.message;
    }
    throw new Error(`no FlagError for ${args.join(" ")}`);
  };
  assert.match(message(["--bogus"]), /'--bogus'/);
  assert.match(message(["-z"]), /'-z'/);
  assert.match(message(["-m"]), /-m, --memory-size <value>' argument missing/);
  assert.match(message(["--stats=1"]), /'--stats' does not take an argument/);
  assert.match(message(["-m", "-v"]), /'-m' argument is ambiguous/);
});
