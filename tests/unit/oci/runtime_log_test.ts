/**
 * `formatLogLine()`: error entries in runc's log formats, which Podman and
 * containerd parse after a failed create.
 * @module
 */

import assert from "node:assert/strict";
import { formatLogLine } from "../../../src/oci/runtime_log.ts";

const time = new Date("2026-12-06T07:00:00.000Z");

Deno.test("formatLogLine() writes runc's JSON entry: level, msg, time, one line", () => {
  const line = formatLogLine("json", { level: "error", msg: 'bad "value"', time });
  assert.ok(line.endsWith("\n"));
  assert.equal(line.split("\n").length, 2);
  assert.deepEqual(JSON.parse(line), {
    level: "error",
    msg: 'bad "value"',
    time: "2026-12-06T07:00:00.000Z",
  });
});

Deno.test("formatLogLine() writes logrus's text entry with quoted values", () => {
  assert.equal(
    formatLogLine("text", { level: "error", msg: 'no "x"', time }),
    'time="2026-12-06T07:00:00.000Z" level=error msg="no \\"x\\""\n',
  );
});
