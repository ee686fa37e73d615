/**
 * The x86-64 register set the stub offers GDB: the `org.gnu.gdb.i386.core`,
 * `org.gnu.gdb.i386.sse` and `org.gnu.gdb.i386.segments` (fs_base, gs_base)
 * features, in GDB's standard order. One table
 * gives both the target description XML and the `g` packet layout, so the two
 * cannot disagree. Pure data.
 * @module
 */

/** One register as GDB sees it. */
export interface GdbRegister {
  /** GDB's name for it. */
  readonly name: string;
  /** Width in bits. */
  readonly bits: 32 | 64 | 80 | 128;
  /** GDB type name (a built-in or one defined in the XML). */
  readonly type: string;
  /** Register group, where GDB wants one. */
  readonly group?: "float" | "vector";
  /** Feature it belongs to. */
  readonly feature: "core" | "sse" | "segments";
}

function reg(
  name: string,
  bits: GdbRegister["bits"],
  type: string,
  feature: GdbRegister["feature"] = "core",
  group?: GdbRegister["group"],
): GdbRegister {
  return group === undefined ? { name, bits, type, feature } : { name, bits, type, feature, group };
}

const GENERAL = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rbp",
  "rsp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
] as const;

/** Every register, in GDB register-number order (index = number in `p`/`P`). */
export const GDB_REGISTERS: readonly GdbRegister[] = [
  ...GENERAL.map((n) => reg(n, 64, n === "rbp" || n === "rsp" ? "data_ptr" : "int64")),
  reg("rip", 64, "code_ptr"),
  reg("eflags", 32, "i386_eflags"),
  ...["cs", "ss", "ds", "es", "fs", "gs"].map((n) => reg(n, 32, "int32")),
  ...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => reg(`st${i}`, 80, "i387_ext", "core", "float")),
  ...["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"].map((n) =>
    reg(n, 32, "int", "core", "float")
  ),
  ...Array.from({ length: 16 }, (_, i) => reg(`xmm${i}`, 128, "vec128", "sse", "vector")),
  reg("mxcsr", 32, "i386_mxcsr", "sse", "vector"),
  // FS/GS bases last: Hermit keeps thread-local storage at FS.
  reg("fs_base", 64, "int", "segments"),
  reg("gs_base", 64, "int", "segments"),
];

/** Register numbers by name. */
export const REGISTER_NUMBER: Readonly<Record<string, number>> = Object.fromEntries(
  GDB_REGISTERS.map((r, i) => [r.name, i]),
);

/** Byte offset of each register in the `g` packet's binary form. */
export const REGISTER_OFFSETS: readonly number[] = (() => {
  const offsets: number[] = [];
  let at = 0;
  for (const r of GDB_REGISTERS) {
    offsets.push(at);
    at += r.bits / 8;
  }
  return offsets;
})();

/** Size in bytes of all registers (the `g` packet is twice this in hex digits). */
export const REGISTER_FILE_SIZE: number = GDB_REGISTERS.reduce((n, r) => n + r.bits / 8, 0);

const EFLAGS_FIELDS: readonly [string, number][] = [
  ["CF", 0],
  ["", 1],
  ["PF", 2],
  ["AF", 4],
  ["ZF", 6],
  ["SF", 7],
  ["TF", 8],
  ["IF", 9],
  ["DF", 10],
  ["OF", 11],
  ["NT", 14],
  ["RF", 16],
  ["VM", 17],
  ["AC", 18],
  ["VIF", 19],
  ["VIP", 20],
  ["ID", 21],
];

const MXCSR_FIELDS: readonly [string, number][] = [
  ["IE", 0],
  ["DE", 1],
  ["ZE", 2],
  ["OE", 3],
  ["UE", 4],
  ["PE", 5],
  ["DAZ", 6],
  ["IM", 7],
  ["DM", 8],
  ["ZM", 9],
  ["OM", 10],
  ["UM", 11],
  ["PM", 12],
  ["FZ", 15],
];

function flags(id: string, size: number, fields: readonly [string, number][]): string {
  const body = fields.map(([name, bit]) =>
    `    <field name="${name}" start="${bit}" end="${bit}"/>`
  );
  return `  <flags id="${id}" size="${size}">\n${body.join("\n")}\n  </flags>`;
}

function registerLines(feature: GdbRegister["feature"]): string {
  return GDB_REGISTERS.map((r, i) => ({ r, i }))
    .filter(({ r }) => r.feature === feature)
    .map(({ r, i }) =>
      `  <reg name="${r.name}" bitsize="${r.bits}" type="${r.type}" regnum="${i}"` +
      (r.group === undefined ? "" : ` group="${r.group}"`) + "/>"
    )
    .join("\n");
}

/** The target description GDB reads with `qXfer:features:read:target.xml`. */
export const TARGET_XML: string = `<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<feature name="org.gnu.gdb.i386.core">
${flags("i386_eflags", 4, EFLAGS_FIELDS)}
${registerLines("core")}
</feature>
<feature name="org.gnu.gdb.i386.sse">
  <vector id="v8bf16" type="bfloat16" count="8"/>
  <vector id="v8h" type="ieee_half" count="8"/>
  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/>
  <vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/>
  <vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
    <field name="v8_bfloat16" type="v8bf16"/>
    <field name="v8_half" type="v8h"/>
    <field name="v4_float" type="v4f"/>
    <field name="v2_double" type="v2d"/>
    <field name="v16_int8" type="v16i8"/>
    <field name="v8_int16" type="v8i16"/>
    <field name="v4_int32" type="v4i32"/>
    <field name="v2_int64" type="v2i64"/>
    <field name="uint128" type="uint128"/>
  </union>
${flags("i386_mxcsr", 4, MXCSR_FIELDS)}
${registerLines("sse")}
</feature>
<feature name="org.gnu.gdb.i386.segments">
${registerLines("segments")}
</feature>
</target>
`;
