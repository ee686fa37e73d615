/**
 * The entries a directory fd lists: a directory of the map (exactly what the
 * map grants there) or a host directory inside a mapping. Each listing is a
 * snapshot, taken at open and again at a rewind to 0. Host I/O goes through
 * `host_fs.ts` only; like all of `sandbox/`, it never imports KVM, FFI or
 * `src/hypercall/`.
 * @module
 */

import * as posix from "../posix_path.ts";
import { type DirEntry, DirListing, DT } from "./dirents.ts";
import type { FileMap } from "./file_map.ts";
import { direntType, type GuestInodes } from "./guest_attr.ts";
import type { HostFs, HostStat } from "./host_fs.ts";
import { encodeUtf8 } from "../utf8.ts";

/**
 * The entries of map directory `cleanPath`: exactly what `map` grants there.
 * A mapped host path that does not exist (yet) is left out, as is anything
 * the guest unlinked (it is gone from the map). Never throws.
 */
export function mapListing(
  map: FileMap,
  fs: HostFs,
  inodes: GuestInodes,
  cleanPath: string,
): DirListing {
  const entries: DirEntry[] = [];
  const prefix = cleanPath === "" ? "" : `${cleanPath}/`;
  for (const child of map.children(cleanPath) ?? []) {
    const name = encodeUtf8(child.name);
    if (child.kind === "host") {
      let info: HostStat;
      try {
        info = fs.stat(child.hostPath, true);
      } catch {
        continue; // missing or unreachable: nothing to show
      }
      // Followed: a mapped leaf that is a link shows as what it leads to.
      entries.push({
        name,
        type: info.isDirectory ? DT.DIR : direntType(info),
        ino: inodes.ofHost(info),
      });
    } else {
      entries.push({
        name,
        type: child.kind === "directory" ? DT.DIR : DT.REG,
        ino: inodes.virtual(prefix + child.name),
      });
    }
  }
  return new DirListing(entries);
}

/**
 * The entries of host directory `hostPath` (`d_type` and inode from each
 * entry's lstat, so links inside show as links). Throws the host's error when
 * the directory cannot be read; an entry gone since the read is left out.
 */
export function hostListing(fs: HostFs, inodes: GuestInodes, hostPath: string): DirListing {
  const names = fs.readDir(hostPath).map((e) => e.name);
  const entries: DirEntry[] = [];
  for (const name of names) {
    let info: HostStat;
    try {
      info = fs.stat(posix.join(hostPath, name), false);
    } catch {
      continue; // gone since the listing
    }
    entries.push({ name: encodeUtf8(name), type: direntType(info), ino: inodes.ofHost(info) });
  }
  return new DirListing(entries);
}
