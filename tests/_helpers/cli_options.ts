/**
 * What the `tests/kvm/cli_*_test.ts` files share: how they run `main.ts` (a
 * clean environment, an empty cwd, KVM and read permissions), temp dirs, the
 * `--stats=json` document and the guests they use most.
 * @module
 */

import assert from "node:assert/strict";
import { type CliRun, describeRun, type DhyveOptions, runDhyve } from "./cli.ts";
import { buildGuest, type GuestBuild } from "./guests.ts";

/** Decodes child output. */
export const decoder: TextDecoder = new TextDecoder();
/** Encodes child input. */
export const encoder: TextEncoder = new TextEncoder();

/** The default permissions of a run: KVM, reading the kernel, the config and the environment. */
export const PERMS: readonly string[] = ["--allow-ffi", "--allow-read", "--allow-env"];

/** An empty directory: the cwd of every run unless a test gives another (no stray uhyve.toml). */
export const EMPTY_CWD: string = Deno.makeTempDirSync({ prefix: "dhyve-cli-options-cwd-" });
globalThis.addEventListener("unload", () => Deno.removeSync(EMPTY_CWD, { recursive: true }));

/** How this file runs `main.ts`: a clean environment, an empty cwd, {@linkcode PERMS}. */
export const RUN_DEFAULTS: DhyveOptions = { perms: PERMS, cwd: EMPTY_CWD, cleanEnv: true };

/** Runs `deno run <perms> main.ts <args>` with a clean environment. */
export function dhyve(args: readonly string[], opts: DhyveOptions = {}): Promise<CliRun> {
  return runDhyve(args, { ...RUN_DEFAULTS, ...opts });
}

/** `text` with the regular-expression metacharacters escaped. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** A fresh temp dir, removed after `fn`. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "dhyve-cli-options-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The `--stats=json` document on stdout (with `-o none`, stdout holds only that). */
export interface StatsDoc {
  bootMs: number;
  runMs: number;
  totalExits: number;
  cpus: { cpu: number; runtimeMs: number | null; exits: number }[];
  exits: { name: string; total: number; perCpu: number[] }[];
}

/** The `--stats=json` document of a successful run. */
export function statsOf(run: CliRun): StatsDoc {
  assert.equal(run.code, 0, describeRun(run));
  return JSON.parse(run.stdout) as StatsDoc;
}

/** A v1 PIE build. */
export const V1: GuestBuild = { iface: 1, pie: true };
/** A v2 PIE build. */
export const V2: GuestBuild = { iface: 2, pie: true };

/** The noop guest (v1, PIE). */
export const noop = (): Promise<string> => buildGuest("noop", V1);

/** Every line the hello guest (v1, PIE) writes. */
export const HELLO_V1: readonly string[] = [
  "Hello from dhyve guest (v1, pie)!",
  "hello via fd 1",
  "hello via fd 2",
  "hello via serial byte",
];
