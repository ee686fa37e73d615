/**
 * The file map: which guest paths exist and what each one is on the host.
 * Owns parsing `--file-mapping HOST:GUEST[:ro|:rw]`, lexical path cleaning, the
 * tree of guest path components (hermit-abi §6.1–6.3, §6.6) and lookups.
 * Lookups are purely lexical: the symlink containment check is done by the
 * sandbox through `host_fs.ts` (`isConfined`), which keeps this module free
 * of host I/O except the optional `stat`s of {@linkcode FileMap.mounts}. Like
 * all of `sandbox/`, it never imports KVM, FFI (`src/kvm.ts`, `src/host/libc.ts`)
 * or `src/hypercall/`.
 * @module
 */

import * as posix from "../posix_path.ts";
import { cleanGuestPath } from "../guest_path.ts";
import { logger } from "../log.ts";
import { type HostPathKind, hostPathKind } from "./host_fs.ts";

const log = logger("sandbox");

/** A `--file-mapping` that cannot be parsed or added to the map. */
export class FileMapError extends TypeError {
  /** Error name. */
  override name = "FileMapError";
}

/** One parsed `--file-mapping`. */
export interface FileMapping {
  /** Absolute, lexically cleaned host path (it need not exist). */
  readonly hostPath: string;
  /** Cleaned guest path, absolute (`/a/b`). */
  readonly guestPath: string;
  /** `:ro` was given: the guest may read but never write, create, truncate or unlink. */
  readonly readOnly: boolean;
}

/** Re-exported: the file map cleans guest paths with it. */
export { cleanGuestPath };

const MODE_SUFFIX = /:(ro|rw)$/;

/**
 * Parses `HOST:GUEST` (or the dhyve extension `HOST:GUEST:ro` / `:rw`).
 *
 * The spec is split at the first `:` (a host path cannot contain one; uhyve
 * splits at every `:` and ignores extra parts). A trailing `:ro` makes the
 * mapping read-only; `:rw` is the default, spelled out. HOST is made absolute
 * against `cwd` (which must be absolute) and cleaned lexically, without
 * resolving symlinks. GUEST is cleaned with {@linkcode cleanGuestPath}; a
 * leading `/` is optional. Throws {@linkcode FileMapError} for a missing `:`,
 * an empty side, a NUL byte, or a guest path that is the root.
 */
export function parseMapping(spec: string, cwd: string): FileMapping {
  const colon = spec.indexOf(":");
  if (colon < 0) {
    throw new FileMapError(`Cannot parse file mapping "${spec}": expected HOST:GUEST`);
  }
  const host = spec.slice(0, colon);
  let guest = spec.slice(colon + 1);
  const mode = MODE_SUFFIX.exec(guest);
  if (mode !== null) guest = guest.slice(0, mode.index);
  if (host === "") {
    throw new FileMapError(`Cannot parse file mapping "${spec}": the host path is empty`);
  }
  if (guest === "") {
    throw new FileMapError(`Cannot parse file mapping "${spec}": the guest path is empty`);
  }
  if (spec.includes("\0")) {
    throw new FileMapError(`Cannot parse file mapping "${spec}": it contains a NUL byte`);
  }
  if (!posix.isAbsolute(cwd)) {
    throw new FileMapError(`Cannot parse file mapping "${spec}": cwd "${cwd}" is not absolute`);
  }
  const guestPath = cleanGuestPath(guest);
  if (guestPath === "") {
    throw new FileMapError(`Cannot parse file mapping "${spec}": the guest path is the root`);
  }
  return {
    hostPath: posix.resolve(cwd, host),
    guestPath: `/${guestPath}`,
    readOnly: mode?.[1] === "ro",
  };
}

/** What a guest path resolves to; see {@linkcode FileMap.resolve}. */
export type Resolved =
  | {
    /** A host file, or a path inside a mapped host directory. */
    readonly kind: "host";
    /** The host path to use: the mapped path plus any remaining components. */
    readonly hostPath: string;
    /** The mapped host path (the leaf's own). */
    readonly base: string;
    /** The components below the leaf (`""` for the leaf itself). */
    readonly rest: string;
    /** The mapping is read-only. */
    readonly readOnly: boolean;
    /** The leaf is a temp file the guest created. */
    readonly temp: boolean;
  }
  | {
    /** An in-memory, read-only file. */
    readonly kind: "virtual";
    /** Its contents (shared, never written). */
    readonly bytes: Uint8Array;
  }
  | {
    /** A directory of the map itself (the root, or a parent of mappings). */
    readonly kind: "directory";
    /** It holds no entries. */
    readonly empty: boolean;
    /** It is the root. */
    readonly root: boolean;
  }
  | {
    /** Nothing is mapped there. */
    readonly kind: "none";
  };

/** One entry of a map directory; see {@linkcode FileMap.children}. */
export type MapChild =
  | { readonly name: string; readonly kind: "directory" }
  | { readonly name: string; readonly kind: "virtual"; readonly size: number }
  | { readonly name: string; readonly kind: "host"; readonly hostPath: string };

/** A mapped host path, for permission checks and Landlock-like rules. */
export interface HostMapping {
  /** Guest path, absolute. */
  readonly guestPath: string;
  /** Host path, absolute. */
  readonly hostPath: string;
  /** The guest may write, create or unlink there (every mapping unless `:ro`). */
  readonly writable: boolean;
}

type Leaf =
  | {
    readonly kind: "host";
    readonly hostPath: string;
    readonly readOnly: boolean;
    readonly temp: boolean;
  }
  | { readonly kind: "virtual"; readonly bytes: Uint8Array };

interface Dir {
  readonly kind: "dir";
  readonly children: Map<string, Node>;
}

type Node = Leaf | Dir;

const NONE: Resolved = { kind: "none" };

function newDir(): Dir {
  return { kind: "dir", children: new Map() };
}

/**
 * A tree of guest path components: directories are implicit and virtual;
 * leaves are host paths (files or directories) or in-memory files. Insertion
 * order is kept, so {@linkcode mounts} and {@linkcode hostPaths} are stable.
 */
export class FileMap {
  readonly #root: Dir = newDir();

  /** A map of `--file-mapping` specs; throws {@linkcode FileMapError} on the first bad one. */
  static fromSpecs(specs: readonly string[], cwd: string): FileMap {
    const map = new FileMap();
    for (const spec of specs) map.add(parseMapping(spec, cwd));
    return map;
  }

  /** Adds a parsed mapping; throws {@linkcode FileMapError} on a conflict. */
  add(mapping: FileMapping): void {
    this.addHost(mapping.guestPath, mapping.hostPath, { readOnly: mapping.readOnly });
  }

  /**
   * Maps `guestPath` to the absolute host path `hostPath` (a file or a
   * directory; it need not exist). Throws {@linkcode FileMapError} when the
   * guest path is already mapped, lies below a mapped leaf, or is a directory
   * of other mappings.
   */
  addHost(guestPath: string, hostPath: string, options: { readOnly?: boolean } = {}): void {
    if (!posix.isAbsolute(hostPath) || hostPath.includes("\0")) {
      throw new FileMapError(
        `Cannot map "${guestPath}" to "${hostPath}": the host path must be absolute`,
      );
    }
    const leaf: Leaf = {
      kind: "host",
      hostPath: posix.normalize(hostPath),
      readOnly: options.readOnly === true,
      temp: false,
    };
    this.#insertOrThrow(guestPath, leaf);
  }

  /**
   * Adds an in-memory, read-only file (e.g. from a Hermit image). The bytes
   * are kept, not copied. Throws {@linkcode FileMapError} on a conflict.
   */
  addVirtual(guestPath: string, bytes: Uint8Array): void {
    this.#insertOrThrow(guestPath, { kind: "virtual", bytes });
  }

  /**
   * Maps `guestPath` to a temp file the guest is creating (O_CREAT of an
   * unmapped path). Returns false, changing nothing, when the path cannot
   * hold a new leaf: it is the root, taken, or below a mapped file.
   */
  insertTemp(guestPath: string, hostPath: string): boolean {
    return this.#insert(cleanGuestPath(guestPath), {
      kind: "host",
      hostPath,
      readOnly: false,
      temp: true,
    }) ===
      undefined;
  }

  /**
   * Looks a guest path up, lexically (clean, then walk from the root):
   * - a host leaf → `host`, with any components below it appended;
   * - a virtual file, exactly → `virtual` (a path below it → `none`);
   * - a directory of the map → `directory`;
   * - anything else → `none`.
   *
   * Symlinks are not looked at here: the caller must check that a `host`
   * result with a non-empty `rest` stays inside `base` (`isConfined`).
   */
  resolve(guestPath: string): Resolved {
    const parts = splitGuestPath(guestPath);
    let dir = this.#root;
    for (let i = 0; i < parts.length; i++) {
      const node = dir.children.get(parts[i]!);
      if (node === undefined) return NONE;
      if (node.kind === "dir") {
        dir = node;
        continue;
      }
      if (node.kind === "virtual") {
        return i === parts.length - 1 ? { kind: "virtual", bytes: node.bytes } : NONE;
      }
      const rest = parts.slice(i + 1).join("/");
      return {
        kind: "host",
        hostPath: rest === "" ? node.hostPath : posix.join(node.hostPath, rest),
        base: node.hostPath,
        rest,
        readOnly: node.readOnly,
        temp: node.temp,
      };
    }
    return { kind: "directory", empty: dir.children.size === 0, root: parts.length === 0 };
  }

  /**
   * The entries of the map directory at `guestPath` (the root, or a parent of
   * mappings), in insertion order, or null when `guestPath` is not one.
   */
  children(guestPath: string): MapChild[] | null {
    const dir = this.#dirAt(splitGuestPath(guestPath));
    if (dir === undefined) return null;
    return [...dir.children].map(([name, node]): MapChild =>
      node.kind === "dir"
        ? { name, kind: "directory" }
        : node.kind === "virtual"
        ? { name, kind: "virtual", size: node.bytes.length }
        : { name, kind: "host", hostPath: node.hostPath }
    );
  }

  /**
   * Removes the entry at exactly `guestPath`: a leaf of any kind, or an empty
   * directory of the map (uhyve's unlink "veiling"). Returns whether something
   * was removed; the root, a non-empty directory and paths below a leaf are
   * never removed.
   */
  remove(guestPath: string): boolean {
    const parts = splitGuestPath(guestPath);
    const last = parts.pop();
    if (last === undefined) return false;
    const dir = this.#dirAt(parts);
    if (dir === undefined) return false;
    const node = dir.children.get(last);
    if (node === undefined || (node.kind === "dir" && node.children.size > 0)) return false;
    dir.children.delete(last);
    return true;
  }

  /**
   * The guest directories to announce in the FDT `/uhyve,mounts` (hermit-abi
   * §6.6): each host leaf that is a directory, and each directory of the map
   * that directly holds a file (host file, virtual file, or a missing host
   * path whose parent exists). The root is never listed. Host leaves that are
   * neither are logged and skipped. Pre-order, in insertion order.
   * `kindOf` examines host paths (default: `stat` through `host_fs.ts`).
   */
  mounts(kindOf: (hostPath: string) => HostPathKind = hostPathKind): string[] {
    const out: string[] = [];
    const walk = (dir: Dir, prefix: string): void => {
      let holdsFile = false;
      const at = out.length;
      for (const [name, node] of dir.children) {
        const path = `${prefix}/${name}`;
        if (node.kind === "dir") {
          walk(node, path);
        } else if (node.kind === "virtual") {
          holdsFile = true;
        } else {
          const kind = kindOf(node.hostPath);
          if (kind === "directory") out.push(path);
          else if (kind === "file" || kind === "missing") holdsFile = true;
          else {log
              .warn`Mapped host path ${node.hostPath} (guest ${path}) does not exist: not mounted`;}
        }
      }
      if (holdsFile && prefix !== "") out.splice(at, 0, prefix);
    };
    walk(this.#root, "");
    return out;
  }

  /** Every host path the user mapped (temp files are left out), in insertion order. */
  hostPaths(): HostMapping[] {
    const out: HostMapping[] = [];
    const walk = (dir: Dir, prefix: string): void => {
      for (const [name, node] of dir.children) {
        const path = `${prefix}/${name}`;
        if (node.kind === "dir") walk(node, path);
        else if (node.kind === "host" && !node.temp) {
          out.push({ guestPath: path, hostPath: node.hostPath, writable: !node.readOnly });
        }
      }
    };
    walk(this.#root, "");
    return out;
  }

  #insertOrThrow(guestPath: string, leaf: Leaf): void {
    if (guestPath.includes("\0")) {
      throw new FileMapError(`Cannot map guest path "${guestPath}": it contains a NUL byte`);
    }
    const clean = cleanGuestPath(guestPath);
    const problem = this.#insert(clean, leaf);
    if (problem !== undefined) {
      throw new FileMapError(`Cannot map guest path "/${clean}": ${problem}`);
    }
  }

  /** The map directory at `parts` (from the root), or undefined when there is none. */
  #dirAt(parts: readonly string[]): Dir | undefined {
    let dir = this.#root;
    for (const part of parts) {
      const node = dir.children.get(part);
      if (node === undefined || node.kind !== "dir") return undefined;
      dir = node;
    }
    return dir;
  }

  /** Adds a leaf at a clean path; returns why it cannot, or undefined when done. */
  #insert(clean: string, leaf: Leaf): string | undefined {
    if (clean === "") return "it is the root";
    const parts = clean.split("/");
    const name = parts.pop()!;
    // Check the whole path before creating any directory, so a refusal changes nothing.
    let dir: Dir | undefined = this.#root;
    for (let i = 0; i < parts.length && dir !== undefined; i++) {
      const node: Node | undefined = dir.children.get(parts[i]!);
      if (node !== undefined && node.kind !== "dir") {
        const above = parts.slice(0, i + 1).join("/");
        return `"/${above}" is already mapped to a file or host directory, so nothing can be mapped below it`;
      }
      dir = node;
    }
    const existing = dir?.children.get(name);
    if (existing?.kind === "dir") {
      return "it is already a directory of other mappings (map those, or this path, not both)";
    }
    if (existing !== undefined) return "it is already mapped";
    let at = this.#root;
    for (const part of parts) {
      let node = at.children.get(part);
      if (node === undefined) {
        node = newDir();
        at.children.set(part, node);
      }
      at = node as Dir;
    }
    at.children.set(name, leaf);
    return undefined;
  }
}

function splitGuestPath(guestPath: string): string[] {
  const clean = cleanGuestPath(guestPath);
  return clean === "" ? [] : clean.split("/");
}
