/**
 * The host side of a `files` test guest run (`tests/guests/files.c`): the
 * directory mapped at /root/data with what the guest checks (a text file, a
 * symlink inside, two that lead outside, a 1 MiB file and its checksum), a
 * canary beside it, and a separate `--tempdir` parent. Used by
 * `tests/kvm/files_test.ts` and by `deno task profile`'s training run.
 * @module
 */

import assert from "node:assert/strict";

/** What the guest finds in /root/data/hello.txt. */
const HELLO = "hello from the host\n";
/** What the guest leaves in /root/data/new.txt. */
const NEW_TEXT = "written by the guest\n";
/** Size of /root/data/big.bin; must match BIG_SIZE in files.c. */
const BIG_SIZE = 1024 * 1024;
const CANARY = "canary: must stay as it is\n";
const SECRET = "secret outside the map\n";

/** The host side of one files-guest run. */
export interface Fixture {
  /** Mapped at /root/data. */
  readonly data: string;
  /** Outside the map: holds secret.txt, the target of data/escape and data/outdir. */
  readonly other: string;
  /** A file next to the mapped directory, outside the map. */
  readonly canary: string;
  /** `--tempdir`: the parent of the per-VM temp dir. */
  readonly tempParent: string;
  /** The checksum the guest must compute over big.bin (argv[1]). */
  readonly bigSum: string;
  /** Asserts what a passing run leaves behind, then resets for the next run. */
  checkAfterRun(context: string): void;
  /** Removes everything. */
  cleanup(): void;
}

/**
 * The guest's checksum of `bytes`: h = h * 31 + w over little-endian u64
 * words (mod 2^64), folded to 32 bits as (u32)(h ^ (h >> 32)).
 */
function checksum(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let h = 0n;
  for (let i = 0; i + 8 <= bytes.length; i += 8) {
    h = BigInt.asUintN(64, h * 31n + view.getBigUint64(i, true));
  }
  return String(BigInt.asUintN(32, h ^ (h >> 32n)));
}

/** `n` pseudo-random bytes (xorshift32), the same every run. */
function noise(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer);
  let x = 0x2545f491;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return out;
}

/** Whether `path` exists (a dangling symlink counts). */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Builds the mapped directory, the escape targets, a canary and a separate temp parent. */
export function makeFixture(): Fixture {
  const root = Deno.makeTempDirSync({ prefix: "dhyve-files-test-" });
  // Not below `root`: the parent of a writable mapping gets Landlock removal
  // rights, which would hide a missing rule for removing the per-VM temp dir.
  const tempParent = Deno.makeTempDirSync({ prefix: "dhyve-files-tmp-" });
  const data = `${root}/data`;
  const other = `${root}/other`;
  const canary = `${root}/canary.txt`;
  Deno.mkdirSync(data);
  Deno.mkdirSync(other);
  Deno.writeTextFileSync(`${data}/hello.txt`, HELLO);
  Deno.symlinkSync("hello.txt", `${data}/link_in`);
  Deno.writeTextFileSync(`${other}/secret.txt`, SECRET);
  Deno.symlinkSync(`${other}/secret.txt`, `${data}/escape`);
  Deno.symlinkSync(other, `${data}/outdir`);
  const big = noise(BIG_SIZE);
  Deno.writeFileSync(`${data}/big.bin`, big);
  Deno.writeTextFileSync(canary, CANARY);
  const canaryMtime = Deno.statSync(canary).mtime?.getTime();
  const secretMtime = Deno.statSync(`${other}/secret.txt`).mtime?.getTime();
  return {
    data,
    other,
    canary,
    tempParent,
    bigSum: checksum(big),
    checkAfterRun(context: string): void {
      assert.equal(Deno.readTextFileSync(`${data}/new.txt`), NEW_TEXT, `${context}: new.txt`);
      assert.equal(exists(`${data}/gone.txt`), false, `${context}: gone.txt was unlinked`);
      assert.equal(Deno.readTextFileSync(`${data}/hello.txt`), HELLO, context);
      assert.equal(Deno.statSync(`${data}/big.bin`).size, BIG_SIZE, context);
      assert.equal(Deno.readTextFileSync(canary), CANARY, `${context}: canary`);
      assert.equal(Deno.statSync(canary).mtime?.getTime(), canaryMtime, `${context}: canary`);
      assert.equal(Deno.readTextFileSync(`${other}/secret.txt`), SECRET, `${context}: secret`);
      assert.equal(Deno.statSync(`${other}/secret.txt`).mtime?.getTime(), secretMtime, context);
      assert.deepEqual(
        [...Deno.readDirSync(other)].map((e) => e.name),
        ["secret.txt"],
        `${context}: nothing created outside the map`,
      );
      assert.deepEqual(
        [...Deno.readDirSync(root)].map((e) => e.name).sort(),
        ["canary.txt", "data", "other"],
        `${context}: nothing created next to the map`,
      );
      assert.deepEqual(
        [...Deno.readDirSync(tempParent)].map((e) => e.name),
        [],
        `${context}: the per-VM temp dir was removed`,
      );
      Deno.removeSync(`${data}/new.txt`);
    },
    cleanup(): void {
      Deno.removeSync(root, { recursive: true });
      Deno.removeSync(tempParent, { recursive: true });
    },
  };
}
