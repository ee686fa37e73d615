/**
 * A fake {@linkcode HypercallContext} for handler unit tests: guest RAM is a
 * {@linkcode GuestMemory} over a plain ArrayBuffer at a non-zero base (so a
 * handler that forgets `mem.base` fails), output goes to capture sinks, and
 * `translateRange` walks a made-up page map instead of real page tables.
 * Test-only; needs no permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { CaptureSink, GuestOutput } from "../../src/io/guest_output.ts";
import {
  type GuestCommandLine,
  type HandlerResult,
  type HypercallContext,
  VmStop,
} from "../../src/hypercall/context.ts";
import { GuestMemory } from "../../src/memory/guest_memory.ts";

/** Default guest-physical base of the fake RAM: not 0, to catch base mistakes. */
export const FAKE_RAM_BASE = 0x1000_0000;
/** Default size of the fake RAM. */
export const FAKE_RAM_SIZE = 0x1_0000;
/** Page size of the fake page map. */
export const FAKE_PAGE_SIZE = 0x1000;

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Options of {@linkcode fakeContext}. */
export interface FakeContextOptions {
  /** Guest-physical base of RAM (default {@linkcode FAKE_RAM_BASE}). */
  base?: number;
  /** RAM size in bytes (default {@linkcode FAKE_RAM_SIZE}). */
  size?: number;
  /** The command line: argv[0] first (the kernel path), as vm.ts builds it. */
  argv?: readonly string[];
  /** `KEY=VALUE` environment entries. */
  env?: readonly string[];
  /**
   * Virtual page address → guest-physical page address, both 4 KiB aligned.
   * Without it, `translateRange` is the identity on guest RAM.
   */
  pages?: ReadonlyMap<number, number>;
  /** The guest's stdout, for tests with a sink of their own (then `output()` omits it). */
  stdout?: GuestOutput;
}

/** A fake context plus what the tests inspect. */
export interface FakeContext {
  /** The context to pass to handlers. */
  readonly ctx: HypercallContext;
  /** Its guest memory (also `ctx.mem`). */
  readonly mem: GuestMemory;
  /** Calls of `ctx.translateRange` so far. */
  readonly translateCalls: number;
  /** Flushes both outputs and returns everything they received, as text. */
  output(): { stdout: string; stderr: string };
  /** What the sinks received so far, without flushing (line buffering shows). */
  captured(): { stdout: string; stderr: string };
}

/** The pieces `[gpa, len]` of a virtual range under a page map, or null if a page is missing. */
function pagePieces(
  mem: GuestMemory,
  pages: ReadonlyMap<number, number>,
  vaddr: number,
  len: number,
): [number, number][] | null {
  const pieces: [number, number][] = [];
  let at = vaddr;
  const end = vaddr + len;
  while (at < end) {
    const page = at - (at % FAKE_PAGE_SIZE);
    const frame = pages.get(page);
    const n = Math.min(end, page + FAKE_PAGE_SIZE) - at;
    if (frame === undefined) return null;
    const gpa = frame + (at - page);
    if (!mem.contains(gpa, n)) return null;
    const last = pieces[pieces.length - 1];
    if (last !== undefined && last[0] + last[1] === gpa) last[1] += n;
    else pieces.push([gpa, n]);
    at += n;
  }
  return pieces;
}

/** Builds a fake context over fresh, zeroed RAM. */
export function fakeContext(options: FakeContextOptions = {}): FakeContext {
  const mem = new GuestMemory(
    new ArrayBuffer(options.size ?? FAKE_RAM_SIZE),
    options.base ?? FAKE_RAM_BASE,
  );
  const stdoutSink = new CaptureSink();
  const stderrSink = new CaptureSink();
  const stdout = options.stdout ?? new GuestOutput(stdoutSink);
  const stderr = new GuestOutput(stderrSink);
  const cmdline: GuestCommandLine = {
    argv: (options.argv ?? ["/kernel"]).map(utf8),
    env: (options.env ?? []).map(utf8),
  };
  const pages = options.pages;
  let translateCalls = 0;
  const ctx: HypercallContext = {
    mem,
    stdout,
    stderr,
    cmdline,
    translateRange(vaddr, len, visit): boolean {
      translateCalls++;
      const pieces = pages === undefined
        ? (mem.contains(vaddr, len) ? [[vaddr, len] as [number, number]] : null)
        : pagePieces(mem, pages, vaddr, len);
      if (pieces === null) return false;
      for (const [gpa, n] of pieces) visit(gpa, n);
      return true;
    },
  };
  return {
    ctx,
    mem,
    get translateCalls(): number {
      return translateCalls;
    },
    output(): { stdout: string; stderr: string } {
      stdout.flush();
      stderr.flush();
      return { stdout: stdoutSink.text(), stderr: stderrSink.text() };
    },
    captured(): { stdout: string; stderr: string } {
      return { stdout: stdoutSink.text(), stderr: stderrSink.text() };
    },
  };
}

/**
 * Asserts that a handler stopped the VM for a protocol violation: kind
 * "error", {@linkcode EXIT_CODE.GUEST_PROTOCOL}, and one line naming the
 * hypercall, its port in hex and every fragment in `mentions`.
 */
export function assertProtocolStop(
  result: HandlerResult | null | boolean,
  expected: { call: string; port: number; mentions?: readonly string[] },
): VmStop {
  assert.ok(result instanceof VmStop, `expected a VmStop, got ${String(result)}`);
  assert.equal(result.kind, "error");
  assert.equal(result.code, EXIT_CODE.GUEST_PROTOCOL);
  assert.ok(!result.message.includes("\n"), `not one line: ${result.message}`);
  const port = `port 0x${expected.port.toString(16)}`;
  for (const part of [expected.call, port, ...(expected.mentions ?? [])]) {
    assert.ok(result.message.includes(part), `"${result.message}" does not mention "${part}"`);
  }
  return result;
}
