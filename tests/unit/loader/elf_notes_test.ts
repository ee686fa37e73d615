/**
 * Unit tests of `src/loader/elf.ts`: the notes (Hermit entry version, UHYVEIF,
 * GNU ABI tag), their padding and alignment, and PT_NOTE bounds. Runs with no
 * permissions.
 * @module
 */

import assert from "node:assert/strict";
import {
  encodeNotes,
  gnuNote,
  hermitNote,
  type NoteSpec,
  PT,
  uhyveIfNote,
} from "../../_helpers/elf_builder.ts";
import { assertFormatError, parse } from "../../_helpers/elf_parse.ts";

Deno.test("parseKernel() requires a PT_NOTE", () => {
  assertFormatError(
    () => parse({ notes: null }),
    "Not a Hermit kernel: the ELF has no PT_NOTE segment, so no HERMIT entry-version note",
  );
});

Deno.test("parseKernel() requires the HERMIT entry-version note", () => {
  const msg = "Not a Hermit kernel: the first PT_NOTE segment has no HERMIT entry-version note";
  assertFormatError(() => parse({ notes: [] }), msg);
  assertFormatError(() => parse({ notes: [gnuNote([0, 12, 0]), uhyveIfNote(2)] }), msg);
  // Right name, wrong type; right type, wrong name.
  assertFormatError(() => parse({ notes: [{ ...hermitNote(), type: 0x5a01 }] }), msg);
  assertFormatError(() => parse({ notes: [{ ...hermitNote(), name: "HERMIX" }] }), msg);
});

Deno.test("parseKernel() requires hermit entry version 4", () => {
  assertFormatError(
    () => parse({ notes: [hermitNote(3)] }),
    "Unsupported hermit entry version 3: dhyve supports entry version 4",
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), desc: new Uint8Array(0) }] }),
    /^Malformed HERMIT note at file offset 0x[0-9a-f]+: its descriptor is empty$/,
  );
});

Deno.test("parseKernel() reads the UHYVEIF version as big-endian", () => {
  assert.equal(parse({ notes: [hermitNote(), uhyveIfNote(2)] }).interfaceVersion, 2);
  assert.equal(parse({ notes: [uhyveIfNote(1), hermitNote()] }).interfaceVersion, 1);
  // A little-endian 2 reads as 0x02000000.
  const le = { ...uhyveIfNote(0), desc: new Uint8Array([2, 0, 0, 0]) };
  assertFormatError(
    () => parse({ notes: [hermitNote(), le] }),
    "Unsupported uhyve interface version 33554432: dhyve supports 1, 2 and 3",
  );
});

Deno.test("parseKernel() rejects uhyve interface versions other than 1, 2 and 3", () => {
  for (const v of [0, 4, 0xffffffff]) {
    assertFormatError(
      () => parse({ notes: [hermitNote(), uhyveIfNote(v)] }),
      `Unsupported uhyve interface version ${v}: dhyve supports 1, 2 and 3`,
    );
  }
});

Deno.test("parseKernel() rejects a UHYVEIF note whose descriptor is not 4 bytes", () => {
  assertFormatError(
    () => parse({ notes: [hermitNote(), { ...uhyveIfNote(2), desc: new Uint8Array(8) }] }),
    /^Malformed UHYVEIF note at file offset 0x[0-9a-f]+: its descriptor is 8 bytes, expected 4$/,
  );
});

Deno.test("parseKernel() reads the Hermit version from a little-endian GNU ABI tag", () => {
  const img = parse({ notes: [gnuNote([0, 12, 3]), hermitNote()] });
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 12, patch: 3 });
  assert.equal(img.legacyMapping, false);
});

Deno.test("parseKernel() sets legacyMapping below Hermit 0.10.0 or without a version", () => {
  const cases: [[number, number, number] | null, boolean][] = [
    [null, true],
    [[0, 9, 99], true],
    [[0, 6, 9], true],
    [[0, 10, 0], false],
    [[0, 13, 2], false],
    [[1, 0, 0], false],
  ];
  for (const [v, legacy] of cases) {
    const notes = v === null ? [hermitNote()] : [hermitNote(), gnuNote(v)];
    const img = parse({ notes });
    assert.equal(img.legacyMapping, legacy, JSON.stringify(v));
  }
});

Deno.test("parseKernel() ignores GNU ABI tags that are not Hermit's", () => {
  const linux = gnuNote([3, 2, 0], 0);
  const short = { ...gnuNote([0, 12, 0]), desc: gnuNote([0, 12, 0]).desc.subarray(0, 12) };
  const otherType = { ...gnuNote([0, 12, 0]), type: 3 }; // NT_GNU_BUILD_ID
  for (const n of [linux, short, otherType]) {
    assert.equal(parse({ notes: [hermitNote(), n] }).hermitVersion, null);
  }
  // The first Hermit one wins, after skipping foreign ones.
  const img = parse({ notes: [linux, hermitNote(), gnuNote([0, 11, 1]), gnuNote([0, 12, 0])] });
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 11, patch: 1 });
});

Deno.test("parseKernel() pads note name and descriptor to 4 bytes from the note start", () => {
  // HERMIT (namesz 7 → 8), GNU (namesz 4), UHYVEIF (namesz 8, no padding) and an
  // odd-sized foreign note (namesz 2, descsz 5) between them.
  const odd: NoteSpec = { name: "X", type: 9, desc: new Uint8Array([1, 2, 3, 4, 5]) };
  const notes = [odd, hermitNote(), odd, uhyveIfNote(2), odd, gnuNote([0, 12, 1])];
  const raw = encodeNotes(notes, 4);
  assert.equal(raw.length % 4, 0);
  const img = parse({ rawNotes: raw, notePAlign: 4 });
  assert.equal(img.interfaceVersion, 2);
  assert.deepEqual(img.hermitVersion, { major: 0, minor: 12, patch: 1 });
});

Deno.test("parseKernel() pads notes to 8 bytes when the PT_NOTE has p_align 8", () => {
  const notes = [hermitNote(), { name: "X", type: 9, desc: new Uint8Array(3) }, uhyveIfNote(2)];
  assert.equal(parse({ notes, noteAlign: 8 }).interfaceVersion, 2);
});

Deno.test("parseKernel() treats p_align 0, 1 and 2 of a PT_NOTE as 4", () => {
  for (const a of [0, 1, 2]) {
    assert.equal(
      parse({ notes: [hermitNote(), uhyveIfNote(2)], notePAlign: a }).interfaceVersion,
      2,
    );
  }
});

Deno.test("parseKernel() reads badly padded notes as misplaced descriptors", () => {
  // Padded to 8 but declared as 4-aligned: the HERMIT descriptor is read from padding.
  assertFormatError(
    () => parse({ notes: [hermitNote()], noteAlign: 8, notePAlign: 4 }),
    "Unsupported hermit entry version 0: dhyve supports entry version 4",
  );
  // No padding at all: the descriptor starts one byte early.
  const raw = new Uint8Array([
    7,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0x5a,
    0,
    0,
    ...new TextEncoder().encode("HERMIT\0"),
    4,
  ]);
  assertFormatError(() => parse({ rawNotes: raw }), /^Malformed note at file offset/);
});

Deno.test("parseKernel() rejects PT_NOTE alignments other than ≤4 and 8", () => {
  assertFormatError(
    () => parse({ notePAlign: 16 }),
    "Malformed ELF: the PT_NOTE segment has alignment 16, expected 4 or 8",
  );
});

Deno.test("parseKernel() rejects notes whose name or descriptor runs past the segment", () => {
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), namesz: 0x1000 }] }),
    /^Malformed note at file offset 0x[0-9a-f]+: its name \(namesz 4096\) runs past the end of the PT_NOTE segment$/,
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), descsz: 0xffffffff }] }),
    /^Malformed note at file offset 0x[0-9a-f]+: its descriptor \(descsz 4294967295\) runs past the end/,
  );
  assertFormatError(
    () => parse({ notes: [{ ...hermitNote(), namesz: 0xffffffff }] }),
    /its name \(namesz 4294967295\) runs past/,
  );
});

Deno.test("parseKernel() ignores fewer than 12 trailing bytes and empty-named notes", () => {
  const raw = new Uint8Array([
    ...new Uint8Array(12),
    ...encodeNotes([hermitNote()]),
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
  ]);
  const img = parse({ rawNotes: raw });
  assert.equal(img.interfaceVersion, 1);
});

Deno.test("parseKernel() rejects a PT_NOTE that runs past the end of the file", () => {
  assertFormatError(
    () =>
      parse({
        editPhdrs: (ph) => ph.map((p) => (p.type === PT.NOTE ? { ...p, filesz: 0x100000 } : p)),
      }),
    /^Truncated ELF: the PT_NOTE segment \(program header \d\)/,
  );
});

Deno.test("parseKernel() scans only the first PT_NOTE", () => {
  const notes = [hermitNote(), uhyveIfNote(2)];
  const hermitLen = encodeNotes([hermitNote()]).length;
  const ifLen = encodeNotes([uhyveIfNote(2)]).length;
  // First PT_NOTE: only HERMIT; second: UHYVEIF 2, which must be ignored.
  const split = parse({
    notes,
    editPhdrs: (ph) =>
      ph.flatMap((p) =>
        p.type === PT.NOTE
          ? [
            { ...p, filesz: hermitLen, memsz: hermitLen },
            { ...p, offset: Number(p.offset) + hermitLen, filesz: ifLen, memsz: ifLen },
          ]
          : [p]
      ),
  });
  assert.equal(split.interfaceVersion, 1);
  // First PT_NOTE: only UHYVEIF; the HERMIT note in the second one does not count.
  assertFormatError(
    () =>
      parse({
        notes: [uhyveIfNote(2), hermitNote()],
        editPhdrs: (ph) =>
          ph.flatMap((p) =>
            p.type === PT.NOTE
              ? [
                { ...p, filesz: ifLen, memsz: ifLen },
                { ...p, offset: Number(p.offset) + ifLen, filesz: hermitLen, memsz: hermitLen },
              ]
              : [p]
          ),
      }),
    "Not a Hermit kernel: the first PT_NOTE segment has no HERMIT entry-version note",
  );
});
