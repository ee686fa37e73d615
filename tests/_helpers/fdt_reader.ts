/**
 * A minimal DTB reader for tests: checks the header, walks the structure
 * block and returns the node tree. Strict: any malformed input throws.
 * Test helper only; never imported by src/.
 * @module
 */

/** Parsed DTB header fields. */
export interface FdtHeader {
  /** Magic (0xd00dfeed). */
  magic: number;
  /** Total blob size. */
  totalSize: number;
  /** Offset of the structure block. */
  offDtStruct: number;
  /** Offset of the strings block. */
  offDtStrings: number;
  /** Offset of the memory-reservation block. */
  offMemRsvmap: number;
  /** Version. */
  version: number;
  /** Last compatible version. */
  lastCompVersion: number;
  /** Boot CPU id. */
  bootCpuidPhys: number;
  /** Size of the strings block. */
  sizeDtStrings: number;
  /** Size of the structure block. */
  sizeDtStruct: number;
}

/** One node: its name, properties in order, children in order. */
export interface FdtNode {
  /** Node name ("" for the root). */
  name: string;
  /** Properties by name (Map keeps the written order). */
  props: Map<string, Uint8Array>;
  /** Child nodes in order. */
  children: FdtNode[];
}

/** A parsed blob. */
export interface ParsedFdt {
  /** The header. */
  header: FdtHeader;
  /** Memory reservations before the terminating empty entry. */
  reservations: { address: bigint; size: bigint }[];
  /** The root node. */
  root: FdtNode;
  /** Names of every node in pre-order, as paths ("/", "/chosen", …). */
  paths: string[];
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Parses `blob`; throws Error on anything malformed. */
export function parseFdt(blob: Uint8Array): ParsedFdt {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 40) throw new Error("FDT: blob shorter than the header");
  const u32 = (o: number): number => view.getUint32(o);
  const header: FdtHeader = {
    magic: u32(0),
    totalSize: u32(4),
    offDtStruct: u32(8),
    offDtStrings: u32(12),
    offMemRsvmap: u32(16),
    version: u32(20),
    lastCompVersion: u32(24),
    bootCpuidPhys: u32(28),
    sizeDtStrings: u32(32),
    sizeDtStruct: u32(36),
  };
  if (header.magic !== 0xd00dfeed) throw new Error("FDT: bad magic");
  if (header.totalSize !== blob.length) throw new Error("FDT: totalsize differs from blob size");
  if (header.offDtStruct + header.sizeDtStruct > blob.length) {
    throw new Error("FDT: struct block out of range");
  }
  if (header.offDtStrings + header.sizeDtStrings > blob.length) {
    throw new Error("FDT: strings block out of range");
  }

  const reservations: { address: bigint; size: bigint }[] = [];
  for (let o = header.offMemRsvmap;; o += 16) {
    if (o + 16 > header.offDtStruct) throw new Error("FDT: unterminated reservation map");
    const address = view.getBigUint64(o);
    const size = view.getBigUint64(o + 8);
    if (address === 0n && size === 0n) break;
    reservations.push({ address, size });
  }

  const stringAt = (offset: number): string => {
    const start = header.offDtStrings + offset;
    const end = blob.indexOf(0, start);
    if (
      offset >= header.sizeDtStrings || end < 0 || end >= header.offDtStrings + header.sizeDtStrings
    ) {
      throw new Error(`FDT: bad string offset ${offset}`);
    }
    return decoder.decode(blob.subarray(start, end));
  };

  const structEnd = header.offDtStruct + header.sizeDtStruct;
  let at = header.offDtStruct;
  const align = (): void => {
    at = (at + 3) & ~3;
  };
  const stack: FdtNode[] = [];
  const paths: string[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    if (at + 4 > structEnd) throw new Error("FDT: struct block ends without FDT_END");
    const token = u32(at);
    at += 4;
    if (token === 1) {
      const end = blob.indexOf(0, at);
      if (end < 0 || end >= structEnd) throw new Error("FDT: unterminated node name");
      const node: FdtNode = {
        name: decoder.decode(blob.subarray(at, end)),
        props: new Map(),
        children: [],
      };
      at = end + 1;
      align();
      const parent = stack.at(-1);
      if (parent) parent.children.push(node);
      else if (root) throw new Error("FDT: second root node");
      else root = node;
      const parentPath = stack.map((n) => n.name).join("/");
      paths.push(stack.length === 0 ? "/" : `${parentPath}/${node.name}`);
      stack.push(node);
    } else if (token === 2) {
      if (!stack.pop()) throw new Error("FDT: FDT_END_NODE without a node");
    } else if (token === 3) {
      const node = stack.at(-1);
      if (!node) throw new Error("FDT: property outside a node");
      const len = u32(at);
      const nameOff = u32(at + 4);
      at += 8;
      if (at + len > structEnd) throw new Error("FDT: property value out of range");
      node.props.set(stringAt(nameOff), blob.slice(at, at + len));
      at += len;
      align();
    } else if (token === 4) {
      // FDT_NOP
    } else if (token === 9) {
      if (stack.length !== 0) throw new Error("FDT: FDT_END with open nodes");
      if (at !== structEnd) throw new Error("FDT: data after FDT_END in struct block");
      break;
    } else {
      throw new Error(`FDT: unknown token ${token}`);
    }
  }
  if (!root) throw new Error("FDT: no root node");
  return { header, reservations, root, paths };
}

/** Finds a node by path ("/", "/chosen", "/memory@0"). */
export function findNode(fdt: ParsedFdt, path: string): FdtNode | undefined {
  if (path === "/") return fdt.root;
  let node: FdtNode | undefined = fdt.root;
  for (const part of path.split("/").slice(1)) {
    node = node?.children.find((c) => c.name === part);
  }
  return node;
}

/** Decodes a NUL-terminated string property (exactly one NUL, at the end). */
export function propString(value: Uint8Array | undefined): string {
  if (!value || value.length === 0 || value.at(-1) !== 0) {
    throw new Error("FDT: not a string property");
  }
  const text = value.subarray(0, -1);
  if (text.includes(0)) throw new Error("FDT: string property holds several strings");
  return decoder.decode(text);
}

/** Decodes a string-list property. */
export function propStringList(value: Uint8Array | undefined): string[] {
  if (!value || value.length === 0 || value.at(-1) !== 0) {
    throw new Error("FDT: not a string list property");
  }
  return decoder.decode(value.subarray(0, -1)).split("\0");
}

/** Decodes a single big-endian u32 property. */
export function propU32(value: Uint8Array | undefined): number {
  if (!value || value.length !== 4) throw new Error("FDT: not a u32 property");
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0);
}

/** Decodes a property of big-endian u64 cells. */
export function propU64s(value: Uint8Array | undefined): bigint[] {
  if (!value || value.length % 8 !== 0) throw new Error("FDT: not a u64 array property");
  const view = new DataView(value.buffer, value.byteOffset, value.length);
  return Array.from({ length: value.length / 8 }, (_, i) => view.getBigUint64(i * 8));
}
