/**
 * Shared by `tests/unit/loader/elf_*_test.ts`: parse a synthetic kernel, assert
 * a one-line `ImageFormatError`, and a filler code segment. No permissions.
 * @module
 */

import assert from "node:assert/strict";
import { type KernelImage, parseKernel } from "../../src/loader/elf.ts";
import { ImageFormatError } from "../../src/loader/errors.ts";
import { buildElf, type ElfOptions } from "./elf_builder.ts";

/** Asserts that `fn` throws an ImageFormatError whose message is or matches `message`. */
export function assertFormatError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${String(e)}`);
    assert.equal(e.name, "ImageFormatError");
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.ok(!e.message.endsWith("."), "no final period");
    assert.match(e.message, /^[A-Z]/, "capital first letter");
    return true;
  });
}

/** Builds a synthetic ELF from `opts` and parses it. */
export function parse(opts: ElfOptions): KernelImage {
  return parseKernel(buildElf(opts));
}

/** A filler code segment (NOPs). */
export const CODE: Uint8Array = new Uint8Array(0x40).fill(0x90);
