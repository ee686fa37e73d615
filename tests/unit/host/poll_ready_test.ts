/**
 * `pollReady` (`src/host/poll.ts`): how the zero-timeout readiness checks of
 * stdin and the output sinks read poll()'s result. A failed poll (-1: EINTR
 * when the run loop's SIGALRM tick lands during the call) must not count as
 * ready, or the caller blocks in a read or write that a stalled pipe never
 * lets return (`tests/kvm/faults_test.ts`, the stalled-reader runs).
 * @module
 */

import assert from "node:assert/strict";
import { pollReady } from "../../../src/host/poll.ts";

Deno.test("pollReady: 1 (ready, or an error condition for the call to report) is ready; 0 and -1 are not", () => {
  assert.equal(pollReady(1), true);
  assert.equal(pollReady(0), false);
  assert.equal(pollReady(-1), false);
});
