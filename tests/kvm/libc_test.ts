/**
 * libc and `--allow-ffi` as a user meets them: the `--allow-ffi` that
 * `--print-permissions` prints is the one a run needs (the printed line runs
 * the guest), `--allow-ffi` scoped to libc's path is not enough (Deno's
 * pointer views need the unscoped grant) and says so in one line, and the
 * libc this host's loader names is the one dhyve finds. Needs /dev/kvm,
 * `--allow-run`, `--allow-read`, `--allow-write` and `--allow-env`.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import {
  LD_SO_CACHE,
  ldCacheLookup,
  LIBC_SONAME,
  libcCandidates,
  readLdCache,
} from "../../src/host/libc_path.ts";
import { assertOneErrorLine, describeRun, runDhyve } from "../_helpers/cli.ts";
import { buildGuest } from "../_helpers/guests.ts";
import { kvmTest } from "../_helpers/kvm.ts";
import { REPO_ROOT } from "../_helpers/repo.ts";
import { testUnless } from "../_helpers/skip.ts";

/** The first candidate path that exists here (what dhyve's dlopen loop opens). */
function hostLibc(): string {
  for (const path of libcCandidates(readLdCache())) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // not here: the next one
    }
  }
  throw new Error("no libc.so.6 among the candidates on this host");
}

kvmTest(
  "--print-permissions prints an unscoped --allow-ffi, and the printed line runs",
  async () => {
    const kernel = await buildGuest("hello", { iface: 2, pie: true });
    const printed = await runDhyve(["--print-permissions", kernel], { perms: ["--allow-read"] });
    assert.equal(printed.code, 0, describeRun(printed));
    const line = printed.stdout.trim();
    assert.match(line, /^deno run --allow-ffi --allow-read=\S+ \S+main\.ts \S+$/, line);
    const ran = await new Deno.Command("sh", {
      args: ["-c", line],
      cwd: REPO_ROOT,
      env: { PATH: `${REPO_ROOT}/node_modules/.bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(ran.stdout);
    assert.equal(ran.code, 0, new TextDecoder().decode(ran.stderr));
    assert.match(stdout, /^Hello from dhyve guest \(v2, pie\)!$/m);
  },
);

kvmTest(
  "--allow-ffi scoped to libc's path exits 77 with one line asking for --allow-ffi",
  async () => {
    const kernel = await buildGuest("hello", { iface: 2, pie: true });
    const run = await runDhyve([kernel], {
      perms: [`--allow-ffi=${hostLibc()}`, `--allow-read=${kernel}`],
    });
    assertOneErrorLine(
      run,
      EXIT_CODE.PERMISSION,
      /load through FFI libc\.so\.6/,
      / --allow-ffi( |$)/,
    );
  },
);

testUnless(
  readLdCache() === null ? `${LD_SO_CACHE} is absent or unreadable here` : null,
  "the libc the loader's cache names for x86-64 is dhyve's first candidate",
  () => {
    const cache = readLdCache()!;
    const fromCache = ldCacheLookup(cache, LIBC_SONAME);
    assert.ok(fromCache.length > 0, "the cache names an x86-64 libc.so.6");
    const [first] = fromCache as [string];
    assert.equal(libcCandidates(cache)[0], first);
    assert.ok(Deno.statSync(first).isFile, first);
  },
);

testUnless(
  readLdCache() === null ? `${LD_SO_CACHE} is absent or unreadable here` : null,
  "ldCacheLookup()'s binary search finds every x86-64 library `ldconfig -p` lists",
  async () => {
    const cache = readLdCache()!;
    const listed = await new Deno.Command("/sbin/ldconfig", { args: ["-p"], stdout: "piped" })
      .output();
    assert.ok(listed.success, "ldconfig -p");
    // "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1"
    const entries = new TextDecoder().decode(listed.stdout).split("\n")
      .map((line) => /^\s+(\S+) \(libc6,x86-64[^)]*\) => (\/\S+)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => ({ soname: m[1]!, path: m[2]! }));
    assert.ok(entries.length > 20, `only ${entries.length} x86-64 entries listed`);
    const missed = entries.filter(({ soname, path }) =>
      !ldCacheLookup(cache, soname).includes(path)
    );
    assert.deepEqual(missed, [], "libraries the lookup did not find");
  },
);
