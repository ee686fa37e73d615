/**
 * The supervisor's clock and waits, now built on `src/host/sleep.ts` (a
 * non-blocking FFI poll) instead of timers, and the raw-syscall wrappers of
 * `src/host/libc.ts`: -1 and the errno on failure, as the libc functions.
 * Needs `--allow-ffi` (no KVM).
 * @module
 */

import assert from "node:assert/strict";
import { ERRNO } from "../../src/errno.ts";
import { EXIT_CODE } from "../../src/exit_codes.ts";
import { errno, libc, MAP_FAILED } from "../../src/host/libc.ts";
import { MAX_SLEEP_MS, sleep, yieldTurn } from "../../src/host/sleep.ts";
import { Supervisor } from "../../src/machine/supervisor.ts";
import { VmStop } from "../../src/hypercall/context.ts";

/** Waits (in sleeps) until `done()` holds; fails after `limitMs`. */
async function until(done: () => boolean, limitMs = 10_000): Promise<void> {
  const end = performance.now() + limitMs;
  while (!done()) {
    assert.ok(performance.now() < end, "the condition never held");
    await sleep(5);
  }
}

Deno.test("--timeout's clock stops the run with the time-limit stop, longer than one sleep", async () => {
  const limit = MAX_SLEEP_MS + 20; // at least two slices
  const started = performance.now();
  using supervisor = new Supervisor({ timeoutMs: limit });
  await until(() => supervisor.stop !== null);
  assert.ok(performance.now() - started >= limit, "stopped before its limit");
  assert.equal(supervisor.stop!.code, EXIT_CODE.TIMEOUT);
});

Deno.test("a disposed supervisor's clock never stops anything", async () => {
  const limit = 20;
  const supervisor = new Supervisor({ timeoutMs: limit });
  supervisor[Symbol.dispose]();
  const deadline = performance.now() + limit;
  // Past the deadline and one whole slice more: the clock has looked at least once since.
  await until(() => performance.now() > deadline + MAX_SLEEP_MS);
  await sleep(MAX_SLEEP_MS);
  assert.equal(supervisor.stop, null);
});

Deno.test("wait() ends at a claim, and the first stop wins", async () => {
  using supervisor = new Supervisor();
  const waiting = supervisor.wait(60_000);
  await yieldTurn();
  assert.ok(supervisor.claim(new VmStop("exit", 3, "")));
  await waiting;
  assert.equal(supervisor.claim(new VmStop("exit", 4, "")), false);
  assert.equal(supervisor.stop!.code, 3);
});

Deno.test("raw-syscall wrappers return -1 and set errno like libc", () => {
  const c = libc();
  assert.equal(c.close(-1), -1);
  assert.equal(errno(), ERRNO.EBADF);
  assert.equal(c.fstat(-1, new Uint8Array(144)), -1);
  assert.equal(errno(), ERRNO.EBADF);
  assert.equal(c.mmap(0, 0, 3, 0x22, -1, 0n), MAP_FAILED); // a zero length: EINVAL
  assert.equal(errno(), ERRNO.EINVAL);
  assert.equal(c.open(new TextEncoder().encode("/nonexistent/x\0"), 0, 0), -1);
  assert.equal(errno(), ERRNO.ENOENT);
  const fd = c.open(new TextEncoder().encode("/dev/null\0"), 0o2000000, 0);
  assert.ok(fd >= 0);
  const st = new Uint8Array(144);
  assert.equal(c.fstat(fd, st), 0);
  const mode = new DataView(st.buffer).getUint32(24, true);
  assert.equal(mode & 0o170000, 0o020000, "/dev/null is a character device");
  assert.equal(c.close(fd), 0);
});
