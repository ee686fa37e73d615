/**
 * `-n/--net` parsing, the guest MAC derived from the TAP's, and the one-line
 * messages (with exit codes) for TAP failures. No permissions.
 * @module
 */

import assert from "node:assert/strict";
import { EXIT_CODE } from "../../../src/exit_codes.ts";
import { TapError } from "../../../src/net/host_io.ts";
import { describeTapError, guestMacFor } from "../../../src/net/net_device.ts";
import { parseMacAddress, parseNetOption } from "../../../src/net/net_option.ts";

Deno.test("parseNetOption() reads tap as tap10 and tap:NAME as NAME", () => {
  assert.deepEqual(parseNetOption("tap"), { mode: "tap", name: "tap10" });
  assert.deepEqual(parseNetOption("tap:dtap0"), { mode: "tap", name: "dtap0" });
  assert.deepEqual(parseNetOption("tap:a23456789012345"), { mode: "tap", name: "a23456789012345" });
});

Deno.test("parseNetOption() rejects other modes, empty, long or odd names with one line", () => {
  for (
    const bad of [
      "",
      "tun",
      "udp:x",
      "tap:",
      "tap:a234567890123456",
      "tap:a b",
      "tap:a/b",
      "tap:..",
    ]
  ) {
    const r = parseNetOption(bad);
    assert.ok("error" in r, `"${bad}" is refused`);
    assert.match(r.error, /--net/);
    assert.ok(!r.error.includes("\n"));
  }
});

Deno.test("guestMacFor() is unicast, locally administered, stable, and differs from the TAP's", () => {
  const tap = new Uint8Array([0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);
  const mac = guestMacFor(tap);
  assert.deepEqual([...mac], [0x9a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5e]);
  assert.deepEqual([...guestMacFor(tap)], [...mac]);
  const odd = guestMacFor(new Uint8Array([0x01, 0, 0, 0, 0, 0]));
  assert.equal(odd[0]! & 1, 0, "unicast");
  assert.equal(odd[0]! & 2, 2, "locally administered");
  assert.notDeepEqual([...guestMacFor(new Uint8Array(6))], [0, 0, 0, 0, 0, 0]);
});

Deno.test("describeTapError() gives the fix and a documented exit code for each errno", () => {
  const cases: [TapError, number, RegExp][] = [
    [new TapError("x", "open", 2), EXIT_CODE.HOST_ERROR, /modprobe tun/],
    [new TapError("x", "open", 13), EXIT_CODE.PERMISSION, /permission denied/],
    [new TapError("x", "attach", 1), EXIT_CODE.PERMISSION, /ip tuntap add dev tapx mode tap/],
    [new TapError("x", "attach", 16), EXIT_CODE.HOST_ERROR, /busy/],
    [new TapError("x", "attach", 22), EXIT_CODE.HOST_ERROR, /not a TAP device/],
    [new TapError("x", "attach", 5), EXIT_CODE.HOST_ERROR, /ip link show tapx/],
  ];
  for (const [error, code, pattern] of cases) {
    const e = describeTapError("tapx", error);
    assert.equal(e.exitCode, code, e.message);
    assert.match(e.message, pattern);
    assert.ok(code < 128);
  }
});

Deno.test("parseMacAddress() reads six hex pairs with : or - and refuses the rest", () => {
  assert.deepEqual([...parseMacAddress("02:00:5E:10:20:ff") as Uint8Array], [
    0x02,
    0x00,
    0x5e,
    0x10,
    0x20,
    0xff,
  ]);
  assert.deepEqual([...parseMacAddress("52-54-00-12-34-56") as Uint8Array], [
    0x52,
    0x54,
    0x00,
    0x12,
    0x34,
    0x56,
  ]);
  for (
    const [bad, why] of [
      ["", "six hex pairs"],
      ["02:00:00:00:00", "six hex pairs"],
      ["02:00:00:00:00:00:00", "six hex pairs"],
      ["02:00:00:00:00:0g", "six hex pairs"],
      ["2:0:0:0:0:1", "six hex pairs"],
      ["03:00:00:00:00:01", "multicast"],
      ["ff:ff:ff:ff:ff:ff", "multicast"],
      ["00:00:00:00:00:00", "all zeroes"],
    ] as const
  ) {
    const r = parseMacAddress(bad);
    assert.ok("error" in r, bad);
    assert.match(r.error, new RegExp(why), bad);
  }
});
