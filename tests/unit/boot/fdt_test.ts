import assert from "node:assert/strict";
import {
  buildHermitFdt,
  FDT_MAGIC,
  FdtSizeError,
  FdtWriter,
  hermitBootargs,
  type HermitFdtOptions,
  quoteShellWord,
} from "../../../src/boot/fdt.ts";
import {
  findNode,
  parseFdt,
  propString,
  propStringList,
  propU32,
  propU64s,
} from "../../_helpers/fdt_reader.ts";

function options(overrides: Partial<HermitFdtOptions> = {}): HermitFdtOptions {
  return {
    guestAddress: 0,
    memorySize: 0x400_0000,
    tscKhz: null,
    mounts: [],
    args: [],
    env: [],
    ...overrides,
  };
}

function bootargs(blob: Uint8Array): string {
  return propString(findNode(parseFdt(blob), "/chosen")?.props.get("bootargs"));
}

Deno.test("FdtWriter writes vm-fdt's minimal blob byte for byte", () => {
  const fdt = new FdtWriter();
  fdt.beginNode("");
  fdt.endNode();
  const words = [
    0xd00dfeed,
    0x48,
    0x38,
    0x48,
    0x28,
    17,
    16,
    0,
    0,
    0x10, // header
    0,
    0,
    0,
    0, // reservation map terminator
    1,
    0,
    2,
    9, // BEGIN_NODE "" END_NODE END
  ];
  const expected = new Uint8Array(words.length * 4);
  words.forEach((w, i) => new DataView(expected.buffer).setUint32(i * 4, w));
  assert.deepEqual(fdt.finish(), expected);
});

Deno.test("FdtWriter stores each property name once in the strings block", () => {
  const fdt = new FdtWriter();
  fdt.beginNode("");
  fdt.propertyU32("a", 1);
  fdt.beginNode("x");
  fdt.propertyU32("a", 2);
  fdt.propertyString("bb", "v");
  fdt.endNode();
  fdt.endNode();
  const blob = fdt.finish();
  const parsed = parseFdt(blob);
  const strings = blob.subarray(parsed.header.offDtStrings);
  assert.deepEqual(strings, new TextEncoder().encode("a\0bb\0"));
  assert.equal(propU32(parsed.root.props.get("a")), 1);
  assert.equal(propU32(parsed.root.children[0]?.props.get("a")), 2);
});

Deno.test("FdtWriter rejects misuse and NUL characters", () => {
  const fdt = new FdtWriter();
  assert.throws(() => fdt.propertyU32("a", 1), Error);
  assert.throws(() => fdt.endNode(), Error);
  fdt.beginNode("");
  assert.throws(() => fdt.propertyString("p", "a\0b"), TypeError);
  assert.throws(() => fdt.beginNode("n\0"), TypeError);
  assert.throws(() => fdt.propertyU32("p", 2 ** 32), RangeError);
  assert.throws(() => fdt.propertyU64Array("p", [-1]), RangeError);
  assert.throws(() => fdt.finish(), Error); // root still open
  fdt.endNode();
  assert.throws(() => fdt.beginNode("second-root"), Error);
  fdt.finish();
  assert.throws(() => fdt.finish(), Error);
});

Deno.test("buildHermitFdt() writes a v17 header with an empty reservation map", () => {
  const blob = buildHermitFdt(options());
  const { header, reservations } = parseFdt(blob);
  assert.equal(header.magic, FDT_MAGIC);
  assert.equal(header.version, 17);
  assert.equal(header.lastCompVersion, 16);
  assert.equal(header.totalSize, blob.length);
  assert.equal(header.offMemRsvmap, 40);
  assert.equal(header.offDtStruct, 56);
  assert.equal(header.offDtStrings, header.offDtStruct + header.sizeDtStruct);
  assert.equal(header.offDtStrings + header.sizeDtStrings, blob.length);
  assert.equal(header.bootCpuidPhys, 0);
  assert.deepEqual(reservations, []);
  assert.ok(blob.subarray(40, 56).every((b) => b === 0));
});

Deno.test("buildHermitFdt() writes the root, memory and chosen nodes (minimal)", () => {
  const fdt = parseFdt(buildHermitFdt(options()));
  assert.deepEqual(fdt.paths, ["/", "/memory@0", "/chosen"]);
  assert.deepEqual([...fdt.root.props.keys()], ["compatible", "#address-cells", "#size-cells"]);
  assert.equal(propString(fdt.root.props.get("compatible")), "hermit,uhyve");
  assert.equal(propU32(fdt.root.props.get("#address-cells")), 2);
  assert.equal(propU32(fdt.root.props.get("#size-cells")), 2);
  const memory = findNode(fdt, "/memory@0");
  assert.deepEqual([...(memory?.props.keys() ?? [])], ["device_type", "reg"]);
  assert.equal(propString(memory?.props.get("device_type")), "memory");
  assert.deepEqual(propU64s(memory?.props.get("reg")), [0n, 0x400_0000n]);
  assert.equal(bootargs(buildHermitFdt(options())), "");
});

Deno.test("buildHermitFdt() names the memory node in lowercase hex and writes reg big-endian", () => {
  const blob = buildHermitFdt(options({ guestAddress: 0x1_0000_0000, memorySize: 0x1_4000_0000 }));
  const fdt = parseFdt(blob);
  assert.equal(fdt.paths[1], "/memory@100000000");
  const reg = findNode(fdt, "/memory@100000000")?.props.get("reg");
  assert.deepEqual(reg, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0, 0, 0]));
  assert.equal(
    parseFdt(buildHermitFdt(options({ guestAddress: 0x44e0_0000 }))).paths[1],
    "/memory@44e00000",
  );
});

Deno.test("buildHermitFdt() adds /uhyve,mounts and /hermit,tsc in order when given", () => {
  const blob = buildHermitFdt(options({
    guestAddress: 0x44e0_0000,
    tscKhz: 2_300_000,
    mounts: ["/root", "/tmp/data"],
  }));
  const fdt = parseFdt(blob);
  assert.deepEqual(fdt.paths, ["/", "/memory@44e00000", "/uhyve,mounts", "/hermit,tsc", "/chosen"]);
  assert.deepEqual(propStringList(findNode(fdt, "/uhyve,mounts")?.props.get("mounts")), [
    "/root",
    "/tmp/data",
  ]);
  assert.equal(propU32(findNode(fdt, "/hermit,tsc")?.props.get("khz")), 2_300_000);
  // only one of them
  assert.deepEqual(
    parseFdt(buildHermitFdt(options({ mounts: ["/m"] }))).paths,
    ["/", "/memory@0", "/uhyve,mounts", "/chosen"],
  );
  assert.deepEqual(
    parseFdt(buildHermitFdt(options({ tscKhz: 1 }))).paths,
    ["/", "/memory@0", "/hermit,tsc", "/chosen"],
  );
  assert.deepEqual(parseFdt(buildHermitFdt(options({ tscKhz: 0 }))).paths, [
    "/",
    "/memory@0",
    "/chosen",
  ]);
});

Deno.test("hermitBootargs() combines kernel and app arguments as uhyve does", () => {
  assert.equal(hermitBootargs([], []), "");
  assert.equal(hermitBootargs(["--"], []), "");
  assert.equal(hermitBootargs(["-freq", "2000"], []), "-freq 2000");
  assert.equal(hermitBootargs(["-freq", "2000", "--"], []), "-freq 2000");
  assert.equal(hermitBootargs(["--", "a", "b c"], []), "-- a b c");
  assert.equal(hermitBootargs(["k1", "--", "a1", "--", "a2"], []), "k1 -- a1 -- a2");
  // words are not quoted; only env parts are
  assert.equal(hermitBootargs(["it's", "--", "$x y"], []), "it's -- $x y");
  // a leading empty word leaves no trace, later ones keep their space
  assert.equal(hermitBootargs(["", "x", "", "y"], []), "x  y");
  assert.equal(hermitBootargs(["", "--", ""], []), "");
});

Deno.test("hermitBootargs() appends quoted env=KEY=VALUE words to the kernel part", () => {
  assert.equal(hermitBootargs([], [["HOME", "/root"]]), "env=HOME=/root");
  assert.equal(
    hermitBootargs(["--", "app"], [["A", "1"], ["B", "2"]]),
    "env=A=1 env=B=2 -- app",
  );
  assert.equal(
    hermitBootargs(["-freq", "1", "--", "app"], [["MSG", "hello world"]]),
    "-freq 1 env=MSG='hello world' -- app",
  );
  assert.equal(hermitBootargs([], [["Q", "it's"]]), "env=Q='it'\\''s'");
  assert.equal(hermitBootargs([], [["EMPTY", ""]]), "env=EMPTY=''");
  assert.equal(hermitBootargs([], [["K=1", "a=b"]]), "env='K=1'='a=b'");
  assert.equal(hermitBootargs([], [["D", '"quoted"']]), `env=D='"quoted"'`);
  assert.equal(
    bootargs(buildHermitFdt(options({ args: ["--", "x"], env: [["A", "b c"]] }))),
    "env=A='b c' -- x",
  );
});

Deno.test("quoteShellWord() follows shell-words 1.1.1 quote()", () => {
  const cases: [string, string][] = [
    ["", "''"],
    ["abc", "abc"],
    ["/usr/bin:-_.,+@^!{}]", "/usr/bin:-_.,+@^!{}]"],
    ["ümlaut", "ümlaut"],
    ["\u02dc", "\u02dc"], // SMALL TILDE was special before 1.1.1, no longer
    ["a b", "'a b'"],
    ["'", "''\\'''"],
    ["it's", "'it'\\''s'"],
    ["a \n  b", "'a \n  b'"],
    ["X'\nY", "'X'\\''\nY'"],
    ["~", "'~'"],
    ["a=b", "'a=b'"],
    ["%", "'%'"],
    ["$HOME", "'$HOME'"],
    ["tab\there", "'tab\there'"],
    ["a\\b", "'a\\b'"],
    ["x*?[#", "'x*?[#'"],
    ['|&;<>()`"', "'|&;<>()`\"'"],
  ];
  for (const [input, output] of cases) {
    assert.equal(quoteShellWord(input), output, JSON.stringify(input));
  }
});

Deno.test("buildHermitFdt() rejects a blob of 0x4000 bytes or more with a RangeError", () => {
  let largest = 0;
  let error: unknown;
  for (let n = 16_000; n < 16_500 && error === undefined; n++) {
    try {
      largest = buildHermitFdt(options({ args: ["x".repeat(n)] })).length;
    } catch (e) {
      error = e;
    }
  }
  assert.ok(error instanceof FdtSizeError);
  assert.ok(error instanceof RangeError);
  assert.ok(error.size >= 0x4000);
  assert.equal(error.limit, 0x4000);
  assert.ok(largest < 0x4000 && largest > 0x4000 - 8, `largest accepted ${largest}`);
  assert.throws(
    () =>
      buildHermitFdt(
        options({
          env: Array.from({ length: 2000 }, (_, i) => [`K${i}`, "v"] as [string, string]),
        }),
      ),
    FdtSizeError,
  );
});

Deno.test("buildHermitFdt() rejects NUL characters and bad numbers", () => {
  assert.throws(() => buildHermitFdt(options({ args: ["a\0b"] })), TypeError);
  assert.throws(() => buildHermitFdt(options({ mounts: ["/a\0"] })), TypeError);
  assert.throws(() => buildHermitFdt(options({ tscKhz: 2 ** 32 })), RangeError);
  assert.throws(() => buildHermitFdt(options({ memorySize: -1 })), RangeError);
});
