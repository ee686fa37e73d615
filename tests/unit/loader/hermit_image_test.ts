/**
 * Unit tests of `src/loader/hermit_image.ts` on images built in memory:
 * detection, gunzip with its size cap, the tar reader (names, types, bounds,
 * checksums, truncation), `hermit.toml` parsing, applying the image's config
 * to the command line, and a property test that corrupt images only ever
 * give ImageFormatError. Runs with no permissions.
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { ImageFormatError } from "../../../src/loader/errors.ts";
import {
  applyImageConfig,
  DEFAULT_MAX_IMAGE_SIZE,
  type HermitImageConfig,
  isHermitImage,
  parseHermitConfig,
  readHermitImage,
  readTar,
} from "../../../src/loader/hermit_image.ts";
import { cleanGuestPath } from "../../../src/sandbox/file_map.ts";
import {
  buildHermitImage,
  buildTar,
  FAKE_KERNEL,
  gzip,
  hermitToml,
  setTarChecksum,
  type TarEntrySpec,
  tarHeader,
} from "../../_helpers/hermit_image_builder.ts";

const MIB = 1024 * 1024;
const text = new TextDecoder();

/** Asserts that `fn` throws an ImageFormatError whose message matches `message`. */
function assertFormatError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

/** Asserts that `promise` rejects with an ImageFormatError whose message matches `message`. */
async function assertRejectsFormat(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

function config(overrides: Partial<HermitImageConfig> = {}): { config: HermitImageConfig } {
  return {
    config: {
      version: "1",
      kernel: "hello",
      kernelArgs: [],
      appArgs: [],
      envVars: [],
      cpus: 0,
      ...overrides,
    },
  };
}

Deno.test("isHermitImage() recognises gzip+deflate, as uhyve's format detection", () => {
  assert.equal(isHermitImage(buildHermitImage()), true);
  assert.equal(isHermitImage(new Uint8Array([0x1f, 0x8b, 0x08, 0x00])), true);
  assert.equal(isHermitImage(new Uint8Array([0x1f, 0x8b, 0x08])), false);
  assert.equal(isHermitImage(new Uint8Array([0x1f, 0x8b, 0x07, 0x00])), false);
  assert.equal(isHermitImage(FAKE_KERNEL), false);
  assert.equal(isHermitImage(new Uint8Array(0)), false);
});

Deno.test("readHermitImage() unpacks files, config and kernel", async () => {
  const image = await readHermitImage(
    buildHermitImage(
      new Map<string, string | Uint8Array>([
        ["./data/a.txt", "alpha"],
        ["data/sub/b.bin", new Uint8Array([1, 2, 3])],
        ["empty", ""],
      ]),
      {
        toml: hermitToml({
          kernel: "/hello",
          kernelArgs: ["-freq", "2"],
          appArgs: ["x"],
          envVars: ["A=1"],
          memory: "32MiB",
          cpus: 2,
        }),
      },
    ),
  );
  assert.deepEqual([...image.files.keys()], [
    "/hermit.toml",
    "/hello",
    "/data/a.txt",
    "/data/sub/b.bin",
    "/empty",
  ]);
  assert.equal(text.decode(image.files.get("/data/a.txt")), "alpha");
  assert.deepEqual([...image.files.get("/data/sub/b.bin")!], [1, 2, 3]);
  assert.equal(image.files.get("/empty")!.length, 0);
  assert.equal(image.kernelPath, "/hello");
  assert.deepEqual([...image.kernel], [...FAKE_KERNEL]);
  assert.deepEqual(image.config, {
    version: "1",
    kernel: "/hello",
    kernelArgs: ["-freq", "2"],
    appArgs: ["x"],
    envVars: ["A=1"],
    memory: 32 * MIB,
    cpus: 2,
  });
});

Deno.test("readHermitImage() finds the kernel with or without a leading slash, cleaned", async () => {
  for (const kernel of ["hello", "/hello", "./hello", "x/../hello", "//hello"]) {
    const image = await readHermitImage(
      buildHermitImage(new Map(), { toml: hermitToml({ kernel }) }),
    );
    assert.equal(image.kernelPath, "/hello", kernel);
  }
  const nested = await readHermitImage(
    buildHermitImage(new Map([["bin/app", "ELF!"]]), { toml: hermitToml({ kernel: "bin/app" }) }),
  );
  assert.equal(nested.kernelPath, "/bin/app");
  assert.equal(text.decode(nested.kernel), "ELF!");
});

Deno.test("readHermitImage() needs /hermit.toml and the kernel it names", async () => {
  await assertRejectsFormat(
    readHermitImage(gzip(buildTar([{ name: "hello", data: FAKE_KERNEL }]))),
    /^The Hermit image has no hermit\.toml at its root$/,
  );
  await assertRejectsFormat(
    readHermitImage(gzip(buildTar([{ name: "etc/hermit.toml", data: hermitToml() }]))),
    /no hermit\.toml/,
  );
  await assertRejectsFormat(
    readHermitImage(buildHermitImage(new Map(), { toml: hermitToml({ kernel: "missing" }) })),
    /hermit\.toml names the kernel "missing", but the image has no such file/,
  );
  await assertRejectsFormat(
    readHermitImage(
      gzip(buildTar([{ name: "hermit.toml", data: new Uint8Array([0x76, 0xff, 0xfe]) }])),
    ),
    /hermit\.toml in the Hermit image: it is not UTF-8 text/,
  );
  await assertRejectsFormat(
    readHermitImage(buildHermitImage(new Map(), { toml: "version = \n" })),
    /Invalid hermit\.toml in the Hermit image: line 1: /,
  );
});

Deno.test("readHermitImage() rejects what is not a good gzip stream", async () => {
  await assertRejectsFormat(readHermitImage(FAKE_KERNEL), /Not a Hermit image/);
  const good = buildHermitImage();
  await assertRejectsFormat(
    readHermitImage(good.subarray(0, good.length - 10)),
    /^Cannot decompress the Hermit image: /,
  );
  const flipped = good.slice();
  flipped[12] = flipped[12]! ^ 0xff;
  await assertRejectsFormat(readHermitImage(flipped), /^Cannot decompress the Hermit image: /);
  const badCrc = good.slice();
  badCrc[badCrc.length - 6] = badCrc[badCrc.length - 6]! ^ 1;
  await assertRejectsFormat(readHermitImage(badCrc), /^Cannot decompress the Hermit image: /);
});

Deno.test("readHermitImage() caps the decompressed size (gzip bombs)", async () => {
  assert.equal(DEFAULT_MAX_IMAGE_SIZE, 1024 * MIB);
  const bomb = buildHermitImage(new Map([["zeros", new Uint8Array(8 * MIB)]]));
  assert.ok(bomb.length < 64 * 1024, `compressed to ${bomb.length} bytes`);
  await assertRejectsFormat(
    readHermitImage(bomb, { maxSize: 4 * MIB }),
    /^The Hermit image unpacks to more than 4 MiB: refusing it \(it may be a gzip bomb\)$/,
  );
  const image = await readHermitImage(bomb, { maxSize: 16 * MIB });
  assert.equal(image.files.get("/zeros")!.length, 8 * MIB);
});

Deno.test("readTar() joins the ustar prefix and name; GNU and v7 headers have no prefix", () => {
  const long = `${"d".repeat(120)}/${"f".repeat(90)}`;
  const files = readTar(buildTar([
    { name: long, data: "posix" },
    { name: "name", prefix: "pre/fix", data: "explicit" },
    { name: "gnu", prefix: "ignored", format: "gnu", data: "g" },
    { name: "v7", format: "v7", data: "7" },
  ]));
  assert.deepEqual([...files.keys()], [`/${long}`, "/pre/fix/name", "/gnu", "/v7"]);
  assert.equal(text.decode(files.get("/pre/fix/name")), "explicit");
});

Deno.test("readTar() keeps only regular files ('0' and NUL), skipping every other type", () => {
  const files = readTar(buildTar([
    { name: "dir", type: "5" },
    { name: "dir/reg", type: "0", data: "0" },
    { name: "dir/old", type: "\0", data: "nul" },
    { name: "hard", type: "1", linkname: "dir/reg" },
    { name: "sym", type: "2", linkname: "/etc/passwd" },
    { name: "chr", type: "3" },
    { name: "fifo", type: "6" },
    { name: "contig", type: "7", data: "c" },
    { name: "././@PaxHeader", type: "x", data: "30 path=a-very-long-name-here\n" },
    { name: "././@LongLink", type: "L", data: "long/name\0" },
    { name: "olddir/", type: "0" },
    { name: "olddir/f", type: "0", data: "f" },
  ]));
  assert.deepEqual([...files.keys()], ["/dir/reg", "/dir/old", "/olddir/f"]);
  assert.equal(text.decode(files.get("/dir/old")), "nul");
});

Deno.test("readTar() cleans names like the file map does", () => {
  const names = ["top", "./a/b", "a//c", "/abs/x", "x/./y/../z", "../up", "p/q/"];
  const files = readTar(buildTar(names.map((name) => ({ name, data: "x" }))));
  assert.deepEqual([...files.keys()], ["/top", "/a/b", "/a/c", "/abs/x", "/x/z", "/up", "/p/q"]);
});

Deno.test("readTar() name cleaning agrees with cleanGuestPath() (property)", () => {
  const part = fc.constantFrom("a", "b", ".", "..", "", "ü", "x y");
  fc.assert(
    fc.property(fc.array(part, { minLength: 1, maxLength: 8 }), (parts) => {
      const name = parts.join("/");
      const clean = cleanGuestPath(name);
      fc.pre(clean !== "" && !name.endsWith("/") && name.length <= 100);
      const files = readTar(buildTar([{ name, data: "x" }]));
      assert.deepEqual([...files.keys()], [`/${clean}`]);
    }),
    { numRuns: 200 },
  );
});

Deno.test("readTar() refuses conflicting and unusable names", () => {
  assertFormatError(
    () => readTar(buildTar([{ name: "a" }, { name: "./a" }])),
    /^The Hermit image has the file "\/a" twice$/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: "a" }, { name: "a/b" }])),
    /has "\/a" both as a file and as a directory of other files/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: "a/b" }, { name: "a" }])),
    /has "\/a" both as a file and as a directory/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: ".", data: "x" }])),
    /has a file named "\.", which is not a usable path/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: "x", nameBytes: new Uint8Array([0x66, 0xc3, 0x28]) }])),
    /has a file name that is not UTF-8 \(tar entry at byte 0\)/,
  );
});

Deno.test("readTar() bounds-checks sizes and reports truncation clearly", () => {
  const tar = buildTar([{ name: "a", data: "x".repeat(1000) }, { name: "b", data: "b" }]);
  assertFormatError(
    () => readTar(tar.subarray(0, 700)),
    /^The Hermit image is truncated: the tar entry at byte 0 needs 1000 bytes of data, but only 188 are left$/,
  );
  assertFormatError(
    () => readTar(tar.subarray(0, 1536 + 100)),
    /^The Hermit image is truncated: the tar header at byte 1536 is cut off after 100 of 512 bytes$/,
  );
  assertFormatError(
    () => readTar(tar.subarray(0, 2560)),
    /^The Hermit image is truncated: its tar archive ends at byte 2560 without an end-of-archive marker$/,
  );
  assertFormatError(() => readTar(new Uint8Array(0)), /tar archive is empty/);
  const huge = buildTar([{ name: "h", sizeField: "77777777777\0" }]);
  assertFormatError(() => readTar(huge), /needs 8589934591 bytes of data, but only 1024 are left/);
  const lastUnpadded = buildTar([{ name: "a", data: "abc" }], { endBlocks: 0 }).subarray(0, 515);
  assertFormatError(() => readTar(lastUnpadded), /truncated/);
});

Deno.test("readTar() checks header checksums and numeric fields", () => {
  const tar = buildTar([{ name: "a", data: "x" }]);
  const corrupt = tar.slice();
  corrupt[10] = 0x41;
  assertFormatError(
    () => readTar(corrupt),
    /^The Hermit image's tar header at byte 0 has a bad checksum: the archive is corrupt$/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: "a", sizeField: "12x\0" }])),
    /tar header at byte 0 has a size field that is not octal/,
  );
  assertFormatError(
    () => readTar(buildTar([{ name: "a", sizeField: "1 2\0" }])),
    /size field that is not octal/,
  );
  const base256 = tarHeader({ name: "a" });
  base256[124] = 0x80;
  setTarChecksum(base256);
  assertFormatError(
    () => readTar(new Uint8Array([...base256, ...new Uint8Array(1024)])),
    /has a base-256 size field, which dhyve does not accept/,
  );
  // A signed-sum checksum (old tar implementations) is accepted.
  const signed = tarHeader({ name: "é", data: "" });
  let sum = 0;
  signed.fill(0x20, 148, 156);
  for (const b of signed) sum += b < 0x80 ? b : b - 0x100;
  signed.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  assert.deepEqual([...readTar(new Uint8Array([...signed, ...new Uint8Array(1024)])).keys()], [
    "/é",
  ]);
  // Leading spaces and a space terminator in numeric fields are fine.
  assert.equal(readTar(buildTar([{ name: "s", data: "abc", sizeField: "     3 \0" }])).size, 1);
});

Deno.test("readTar() stops at the end marker; one zero block at the very end is enough", () => {
  const entries: TarEntrySpec[] = [{ name: "a", data: "1" }];
  assert.equal(readTar(buildTar(entries, { endBlocks: 1 })).size, 1);
  assert.equal(readTar(buildTar(entries, { endBlocks: 20 })).size, 1);
  const trailing = new Uint8Array([...buildTar(entries), ...new Uint8Array(700).fill(0xaa)]);
  assert.equal(readTar(trailing).size, 1);
  const onlyEnd = buildTar([]);
  assert.equal(readTar(onlyEnd).size, 0);
  // A lone zero block between entries does not end the archive.
  const a = buildTar([{ name: "a", data: "1" }], { endBlocks: 1 });
  const b = buildTar([{ name: "b", data: "2" }]);
  assert.deepEqual([...readTar(new Uint8Array([...a, ...b])).keys()], ["/a", "/b"]);
});

Deno.test("readTar() returns views into the archive, not copies", () => {
  const tar = buildTar([{ name: "a", data: "hello" }]);
  const bytes = readTar(tar).get("/a")!;
  assert.equal(bytes.buffer, tar.buffer);
  assert.equal(bytes.byteOffset, 512);
});

Deno.test("parseHermitConfig() reads a minimal and a full config", () => {
  assert.deepEqual(parseHermitConfig(hermitToml()), config().config);
  assert.deepEqual(
    parseHermitConfig(`version = "1"
kernel = "app"
extra_key = "ignored, as uhyve does"
[input]
kernel_args = ["a"]
app_args = ["b", "c"]
env_vars = ["K=V", "NOEQ"]
[requirements]
memory = 67108864
cpus = 4
`),
    config({
      kernel: "app",
      kernelArgs: ["a"],
      appArgs: ["b", "c"],
      envVars: ["K=V", "NOEQ"],
      memory: 64 * MIB,
      cpus: 4,
    }).config,
  );
  assert.equal(parseHermitConfig(hermitToml({ memory: "1GiB" })).memory, 1024 * MIB);
  assert.equal(parseHermitConfig(hermitToml({ memory: "64 MB" })).memory, 64 * MIB);
  assert.equal(parseHermitConfig(hermitToml({ memory: 0 })).memory, 0);
  assert.equal(parseHermitConfig(hermitToml({ cpus: 0 })).cpus, 0);
});

Deno.test("parseHermitConfig() names what is wrong", () => {
  const cases: [string, RegExp][] = [
    [hermitToml({ version: null }), /there is no version: expected version = "1"/],
    [hermitToml({ version: "2" }), /version is "2": dhyve knows only version = "1"/],
    ['version = 1\nkernel = "k"\n[input]\nkernel_args = []\napp_args = []\n', /version is 1:/],
    [hermitToml({ kernel: null }), /there is no kernel: name the kernel file/],
    [hermitToml({ kernel: "" }), /kernel must be the path of the kernel file/],
    ['version = "1"\nkernel = "k"\n', /there is no \[input\] section/],
    ['version = "1"\nkernel = "k"\ninput = 3\n', /input must be a table/],
    [
      'version = "1"\nkernel = "k"\n[input]\napp_args = []\n',
      /\[input\] kernel_args is missing: write kernel_args = \[\] for none/,
    ],
    ['version = "1"\nkernel = "k"\n[input]\nkernel_args = []\n', /\[input\] app_args is missing/],
    [
      'version = "1"\nkernel = "k"\n[input]\nkernel_args = "a"\napp_args = []\n',
      /\[input\] kernel_args must be an array of strings/,
    ],
    [
      'version = "1"\nkernel = "k"\n[input]\nkernel_args = []\napp_args = [1]\n',
      /\[input\] app_args must be an array of strings/,
    ],
    [
      hermitToml().replace("app_args = []", "app_args = []\nenv_vars = {}"),
      /\[input\] env_vars must be an array of strings/,
    ],
    [
      hermitToml({ memory: "lots" }),
      /\[requirements\] memory "lots" is not a size such as "64MiB"/,
    ],
    [hermitToml({ memory: -1 }), /\[requirements\] memory must be a size/],
    [hermitToml({ memory: 1.5 }), /\[requirements\] memory must be a size/],
    [hermitToml({ cpus: -1 }), /\[requirements\] cpus must be a whole number from 0 to 4294967295/],
    [hermitToml({ cpus: 2 ** 32 }), /cpus must be a whole number/],
    ["requirements = 1\n" + hermitToml(), /requirements must be a table/],
    ['version = "1"\n[input\n', /^Invalid hermit\.toml in the Hermit image: line 2: /],
  ];
  for (const [toml, what] of cases) {
    assertFormatError(() => parseHermitConfig(toml), what);
  }
});

Deno.test("applyImageConfig() takes the image's args only when the command line gave none", () => {
  const image = config({ kernelArgs: ["-k"], appArgs: ["a", "b"] });
  const base = { envVars: [], envHost: false, memorySize: 64 * MIB, cpuCount: 1 };
  assert.deepEqual(applyImageConfig(image, { ...base, args: [] }).args, ["-k", "--", "a", "b"]);
  assert.deepEqual(applyImageConfig(image, { ...base, args: ["mine"] }).args, ["mine"]);
  assert.deepEqual(
    applyImageConfig(config({ kernelArgs: ["-k"] }), { ...base, args: [] }).args,
    ["-k"],
  );
  assert.deepEqual(
    applyImageConfig(config({ appArgs: ["a"] }), { ...base, args: [] }).args,
    ["--", "a"],
  );
  assert.deepEqual(applyImageConfig(config(), { ...base, args: [] }).args, []);
});

Deno.test("applyImageConfig() overlays the command line's env on the image's", () => {
  const image = config({ envVars: ["A=image", "B=image", "NOEQ", "C=x=y", "A=again"] });
  const base = { args: [], memorySize: 64 * MIB, cpuCount: 1 };
  const run = applyImageConfig(image, {
    ...base,
    envHost: false,
    envVars: [["B", "cli"], ["D", "cli"]],
  });
  assert.deepEqual(run.env, [["A", "again"], ["B", "cli"], ["C", "x=y"], ["D", "cli"]]);
  assert.deepEqual(run.notes, []);
  const host = applyImageConfig(image, { ...base, envHost: true, envVars: [["HOME", "/h"]] });
  assert.deepEqual(host.env, [["HOME", "/h"]]);
  assert.deepEqual(host.notes, [
    "Ignoring the Hermit image's environment variables because of -e host",
  ]);
});

Deno.test("applyImageConfig() reports unmet requirements with the flag that fixes them", () => {
  const base = { args: [], envVars: [], envHost: false };
  const ok = applyImageConfig(config({ memory: 64 * MIB, cpus: 2 }), {
    ...base,
    memorySize: 64 * MIB,
    cpuCount: 2,
  });
  assert.deepEqual(ok.errors, []);
  const low = applyImageConfig(config({ memory: 100 * MIB, cpus: 4 }), {
    ...base,
    memorySize: 64 * MIB,
    cpuCount: 1,
  });
  assert.deepEqual(low.errors, [
    "The image needs at least 100 MiB of memory, but the guest has 64 MiB: use -m 100MiB",
    "The image needs at least 4 vCPUs, but the guest has 1: use -c 4",
  ]);
  const odd = applyImageConfig(config({ memory: 100_000_001 }), {
    ...base,
    memorySize: 64 * MIB,
    cpuCount: 1,
  });
  assert.deepEqual(odd.errors, [
    "The image needs at least 100000001 bytes of memory, but the guest has 64 MiB: use -m 96MiB",
  ]);
  const big = applyImageConfig(config({ memory: 2048 * MIB }), {
    ...base,
    memorySize: 64 * MIB,
    cpuCount: 1,
  });
  assert.match(big.errors[0]!, /needs at least 2 GiB of memory.*use -m 2GiB$/);
});

/** Runs `read` and checks it resolves or rejects with an ImageFormatError only. */
async function onlyFormatErrors(bytes: Uint8Array): Promise<"ok" | "format-error"> {
  try {
    await readHermitImage(bytes, { maxSize: 4 * MIB });
    return "ok";
  } catch (error) {
    if (error instanceof ImageFormatError) return "format-error";
    throw new Error(`Not an ImageFormatError: ${String(error)}`, { cause: error });
  }
}

/** A valid archive to mutate: config, kernel, a nested file and a long name. */
function sampleTar(): Uint8Array {
  return buildTar([
    {
      name: "hermit.toml",
      data: hermitToml({ kernelArgs: ["-a"], appArgs: ["b"], envVars: ["K=V"], memory: "32MiB" }),
    },
    { name: "hello", data: FAKE_KERNEL },
    { name: "dir", type: "5" },
    { name: "dir/file", data: "x".repeat(600) },
    { name: `${"p".repeat(110)}/long`, data: "long" },
  ]);
}

const PROPERTY_RUNS = 300;

Deno.test(`readHermitImage() property: corrupt archives only give ImageFormatError (${PROPERTY_RUNS} runs each)`, async (t) => {
  const tar = sampleTar();
  const headers = [0, 1024, 2048, 2560, 3584];
  const outcomes = { ok: 0, "format-error": 0 };

  await t.step("random byte writes into the tar, headers re-checksummed", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            header: fc.constantFrom(...headers),
            offset: fc.integer({ min: 0, max: 511 }),
            value: fc.integer({ min: 0, max: 255 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.boolean(),
        async (writes, fixChecksum) => {
          const mutated = tar.slice();
          for (const w of writes) mutated[w.header + w.offset] = w.value;
          if (fixChecksum) {
            for (const h of headers) setTarChecksum(mutated.subarray(h, h + 512));
          }
          outcomes[await onlyFormatErrors(gzip(mutated))]++;
        },
      ),
      { numRuns: PROPERTY_RUNS },
    );
  });

  await t.step("size fields set to random octal values", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...headers),
        fc.integer({ min: 0, max: 0o77777777777 }),
        async (h, size) => {
          const mutated = tar.slice();
          mutated.set(
            new TextEncoder().encode(`${size.toString(8).padStart(11, "0")}\0`),
            h + 124,
          );
          setTarChecksum(mutated.subarray(h, h + 512));
          outcomes[await onlyFormatErrors(gzip(mutated))]++;
        },
      ),
      { numRuns: PROPERTY_RUNS },
    );
  });

  await t.step("truncated tar and truncated or flipped gzip", async () => {
    const image = gzip(tar);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: tar.length }),
        fc.integer({ min: 4, max: image.length }),
        fc.array(fc.tuple(fc.nat(image.length - 1), fc.integer({ min: 1, max: 255 })), {
          maxLength: 3,
        }),
        async (tarCut, gzCut, flips) => {
          outcomes[await onlyFormatErrors(gzip(tar.subarray(0, tarCut)))]++;
          const gz = image.slice(0, gzCut);
          for (const [i, x] of flips) if (i < gz.length && i > 3) gz[i] = gz[i]! ^ x;
          outcomes[await onlyFormatErrors(gz)]++;
        },
      ),
      { numRuns: PROPERTY_RUNS },
    );
  });

  await t.step("random bytes behind a gzip header, and random tar bodies", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 4096 }), async (bytes) => {
        outcomes[await onlyFormatErrors(new Uint8Array([0x1f, 0x8b, 0x08, ...bytes]))]++;
        outcomes[await onlyFormatErrors(gzip(bytes))]++;
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  // Both outcomes occur, so the properties exercise more than the first check.
  assert.ok(outcomes.ok > 0, JSON.stringify(outcomes));
  assert.ok(outcomes["format-error"] > 0, JSON.stringify(outcomes));
});
